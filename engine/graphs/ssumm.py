"""SSumM: Sparse Summarization of Massive Graphs (Lee, Jo, Ko, Lim & Shin, KDD 2020).

Given a graph G = (V, E) and a budget k (a fraction of the input's 2|E| log2|V| bits), SSumM finds a summary
graph -- supernodes S partitioning V and weighted superedges P -- of at most k bits that reconstructs G with
small L1 or L2 error. It greedily merges supernodes and sparsifies superedges, both guided by the minimum
description length (MDL) of the summary plus the "corrections" needed to restore G:

- the cost of a supernode pair {A, B} is the cheaper of
  *dense*  2 log2|S| + log2 w_max + |Pi_AB| H2(|E_AB| / |Pi_AB|)  (a superedge plus an entropy-coded
  correction of its block), and *sparse* |E_AB| 2 log2|V| (no superedge; the edges listed as corrections);
- the saving of merging A and B is 1 - Cost(A u B) / (Cost(A) + Cost(B) - Cost(A, B)), where Cost(X) sums the
  cost of every pair incident to X plus the superedges it holds;
- candidates: each iteration draws k = 10 min-hash functions; a node's shingle is the minimum hashed id over
  {v} u N(v), a supernode's the minimum over its members; supernodes are sorted by their signatures and
  grouped by equal first shingle, groups over 500 split recursively by the next shingle;
- in each group, draw |group| random pairs, merge the best if its saving is at least theta(t) = 1 / (1 + t)
  (theta = 0 in the last of T = 20 iterations); give up on the group after about log2 log2 |group| rounds in a
  row without a merge; stop everything as soon as the summary fits the budget;
- sparsification: drop the superedges that are cheaper as corrections ("sparse"), merge supernodes left
  without superedges into one, then drop the superedges of least |E_AB|^2 / |Pi_AB| (L2) or
  (2 |E_AB| / |Pi_AB| - 1) |E_AB| (L1) until the summary fits.

The L1 variant (the official code's ``ReOne``) also stores a block as a superedge only when its density is at
least 1/2, since a sparser superedge raises the L1 error.

Implementation. The state the official Java code holds (the supernode pair table, neighbour lists, per-
supernode data and model costs, all updated incrementally on every merge) is the shared merge state of
:mod:`engine.graphs.merge_state`; this module adds SSumM's search on top of it: min-hash signatures and
candidate groups, the MDL saving of a pair, and the merge loop with its threshold. Saving and merge cost
O(deg A + deg B); nothing loops per edge in Python. Runs repeat exactly for a given ``seed``; a pair's cost
skips the entropy when the superedge overhead alone exceeds the sparse cost (same decision, fewer logs).

Deviations from the official code, each on purpose:

- a group whose 10 shingles all agree and that still has over 500 supernodes is cut into chunks of 500 (the
  paper's "split to at most 500"); the official code's recursion turns such a group into singletons, which
  never merge;
- the further-sparsification cost of a superedge inside one supernode uses |Pi_AA| = |A|(|A|-1)/2 as the
  paper defines it (the official code uses |A|(|A|-1), halving that cost);
- the reported size uses w_max over the superedges kept; the search uses the official running maximum, so the
  reported size is never above what the official code would report.

References
----------
K. Lee, H. Jo, J. Ko, S. Lim, K. Shin. "SSumM: Sparse Summarization of Massive Graphs". KDD 2020.
Official code: https://github.com/KyuhanLee/SSumM
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numba as nb
import numpy as np

from engine.graphs import merge_state as ms
from engine.graphs.costs import block_pairs, drop_cost, finalize, input_bits, sparsify
from engine.graphs.io import Graph
from engine.graphs.summary import GraphSummaryResult, check_inputs, make_result
from engine.registry import Paper, Param, register

__all__ = ["SSUMM_PAPER", "SSumMConfig", "ssumm"]

SSUMM_PAPER = Paper(
    "SSumM: Sparse Summarization of Massive Graphs",
    2020,
    "KDD 2020",
    "https://doi.org/10.1145/3394486.3403057",
    ("Lee, Kyuhan", "Jo, Hyeonsoo", "Ko, Jihoon", "Lim, Sungsu", "Shin, Kijung"),
)
GROUP_MAX = 500  # the official divThreshold


@dataclass(frozen=True)
class SSumMConfig:
    budget: float = 0.2  # target summary size as a fraction of the input's 2|E| log2|V| bits
    error: str = "l2"  # "l2" (SSumM) or "l1" (the official ReOne variant)
    iterations: int = 20  # T: merge iterations; theta(t) = 1/(1+t), 0 in the last
    hashes: int = 10  # min-hash functions per iteration (signature length)


# ------------------------------------------------------------------------------------------------ search


@nb.njit(cache=True)
def _saving(st, a, b, sup_cost, sparse_cost, mode):
    """SSumM's saving of merging a and b: 1 - Cost(a u b) / (Cost(a) + Cost(b) - Cost(a, b))."""
    k, stamp = ms.gather(st, a, b)
    ca, cb, mark_a, mark_b, ubuf, size = st.ca, st.cb, st.mark_a, st.mark_b, st.ubuf, st.size
    sa = float(size[a])
    sb = float(size[b])
    sm = sa + sb
    e_ab, d_ab = ms.pair_get(st, a, b)
    den = sup_cost * (st.model[a] + st.model[b] - d_ab) + st.data[a] + st.data[b]
    den -= ms.pair_cost(e_ab, d_ab, sa * sb, sparse_cost)
    if den <= 0.0:
        return -np.inf
    num = 0.0
    for i in range(k):
        x = ubuf[i]
        e = 0
        if mark_a[x] == stamp:
            e += ca[x]
        if mark_b[x] == stamp:
            e += cb[x]
        c, _ = ms.merge_cost(e, sm * size[x], sup_cost, sparse_cost, mode)
        num += c
    e_aa, _ = ms.pair_get(st, a, a)
    e_bb, _ = ms.pair_get(st, b, b)
    c, _ = ms.merge_cost(e_aa + e_bb + e_ab, sm * (sm - 1.0) / 2.0, sup_cost, sparse_cost, mode)
    num += c
    return 1.0 - num / den


@nb.njit(cache=True)
def _bitlen(x):
    c = 0
    while x > 0:
        x >>= 1
        c += 1
    return c


# where a paused _merge_step resumes: indices into its ``pos`` array
_G, _LEN, _INSIDE, _UNTIL, _UNIQ = 0, 1, 2, 3, 4


@nb.njit(cache=True, nogil=True)  # other requests run while it works
def _merge_step(groups, offsets, threshold, st, mode, target, dup, pos, grp, budget):
    """Merge within the candidate groups of one iteration, for at most about ``budget`` units of work (the
    neighbour-list entries the scored and merged pairs touch); returns 0 once the summary fits the target
    size, 1 when the iteration is done, 2 when paused by the budget.

    It can pause anywhere and resume where it stopped: ``pos`` (int64 [5]) holds the group, its live length
    (-1 = not started), the rounds without a merge, their limit and the sampled-pair stamp; ``grp`` holds the
    group being worked on. Pausing draws no random numbers, so the summary is the same however the work is
    split (the caller reports progress between the pieces)."""
    sparse_cost = 2.0 * np.log2(st.parent.size)
    g, length, inside, until, uniq = pos[_G], pos[_LEN], pos[_INSIDE], pos[_UNTIL], pos[_UNIQ]
    nlen = st.nlen
    work = 0
    status = 1
    while g < offsets.size - 1:
        if length < 0:  # start group g
            length = offsets[g + 1] - offsets[g]
            if length < 2:
                g += 1
                length = -1
                continue
            grp[:length] = groups[offsets[g] : offsets[g + 1]]
            until = _bitlen(_bitlen(length - 1) - 1)  # about log2 log2 |group| rounds without a merge
            inside = 0
        paused = False
        while inside < until:
            if work >= budget:
                paused = True
                break
            uniq += 1
            if length < 2:
                break
            sup_cost = ms.superedge_cost(st)
            best_s = -1
            best_d = -1
            max_saving = -1.0
            for _ in range(length):
                rn = np.random.randint(0, length * (length - 1))
                s = rn // (length - 1)
                d = rn % (length - 1)
                if s <= d:
                    d += 1
                if dup[s, d] == uniq:
                    continue
                dup[s, d] = uniq
                work += nlen[grp[s]] + nlen[grp[d]] + 1
                sv = _saving(st, grp[s], grp[d], sup_cost, sparse_cost, mode)
                if max_saving < sv:
                    max_saving = sv
                    best_s = s
                    best_d = d
            if max_saving < threshold or best_s < 0:
                inside += 1
                continue
            inside = 0
            work += nlen[grp[best_s]] + nlen[grp[best_d]] + 1
            ms.merge(st, grp[best_s], grp[best_d], sparse_cost, mode)
            length -= 1
            grp[best_d] = grp[length]
            if ms.size_bits(st) <= target:
                status = 0
                break
        if status == 0 or paused:
            if paused:
                status = 2
            break
        g += 1
        length = -1
    pos[_G], pos[_LEN], pos[_INSIDE], pos[_UNTIL], pos[_UNIQ] = g, length, inside, until, uniq
    return status


@nb.njit(cache=True, nogil=True)
def _signatures(indptr, indices, parent, alive, n_hashes):
    """[S, n_hashes] min-hash shingles of the live supernodes (and their ids), one permutation per hash."""
    n = indptr.size - 1
    ids = np.flatnonzero(alive)
    rank = np.full(n, -1, dtype=np.int64)
    for t in range(ids.size):
        rank[ids[t]] = t
    sig = np.empty((ids.size, n_hashes), dtype=np.int64)
    for h in range(n_hashes):
        perm = np.random.permutation(n)
        col = np.full(ids.size, n, dtype=np.int64)
        for v in range(n):
            m = perm[v]
            for i in range(indptr[v], indptr[v + 1]):
                p = perm[indices[i]]
                if p < m:
                    m = p
            r = rank[ms.find(parent, v)]
            if m < col[r]:
                col[r] = m
        sig[:, h] = col
    return sig, ids


@nb.njit(cache=True)
def _groups(sig, ids, order, limit):
    """Split the signature-sorted supernodes into groups of at most ``limit``: equal first shingle, then
    recursively equal next shingle for groups still too big, then chunks of ``limit``."""
    s, k = sig.shape
    groups = ids[order]
    cut = np.zeros(s + 1, dtype=np.bool_)
    cut[0] = True
    cut[s] = True
    stack = [(0, s, 0)]  # (start, end, column to split by)
    while len(stack) > 0:
        a, b, c = stack.pop()
        if c >= k:  # every shingle agrees and the group is still too big: chunks of `limit`
            for x in range(a, b, limit):
                cut[x] = True
            continue
        x = a
        while x < b:  # runs of equal sig[:, c] inside [a, b)
            y = x + 1
            v = sig[order[x], c]
            while y < b and sig[order[y], c] == v:
                y += 1
            cut[x] = True
            cut[y] = True
            if y - x > limit:
                stack.append((x, y, c + 1))
            x = y
    return groups, np.flatnonzero(cut).astype(np.int64)


def _merge_iteration(groups, offsets, theta, st, mode, target, report) -> int:
    """One iteration's merges, in pieces of work sized to take about :data:`ms.CHUNK_S` each, calling
    ``report(fraction of the groups done)`` between pieces; returns 0 once the summary fits, else 1."""
    dup = np.zeros((GROUP_MAX, GROUP_MAX), dtype=np.int64)
    grp = np.empty(max(GROUP_MAX, int(np.diff(offsets).max(initial=0))), dtype=np.int64)
    pos = np.array([0, -1, 0, 0, 0], dtype=np.int64)
    budget = 100_000
    n_groups = max(offsets.size - 1, 1)
    while True:
        tc = time.perf_counter()
        status = _merge_step(groups, offsets, theta, st, mode, target, dup, pos, grp, budget)
        if status != 2:
            return status
        dt = time.perf_counter() - tc
        budget = int(min(max(budget * ms.CHUNK_S / max(dt, 1e-4), 1000), 2 * budget))
        report(pos[_G] / n_groups)


def _run(graph: Graph, cfg: SSumMConfig, seed: int, timings: dict, progress=None) -> tuple:
    """The SSumM search and sparsification; returns the summary and the iterations run. ``progress(frac,
    desc)`` hears from every iteration, and from within one every ~0.25 s (what it raises ends the run)."""
    n, m = graph.n, graph.m
    say = progress or (lambda frac, desc: None)
    t0 = time.perf_counter()
    say(0.0, f"ssumm: setting up {n:,} supernodes")
    st = ms.init_state(graph)
    target = cfg.budget * input_bits(n, m)
    mode = ms.MODE_L1 if cfg.error == "l1" else ms.MODE_L2
    ms.seed(int(seed) % (2**32))
    timings["setup"] = time.perf_counter() - t0
    timings["signatures"] = timings["merge"] = 0.0
    it_run = 0
    fits = False
    T = cfg.iterations
    for t in range(1, T + 1):
        theta = 1.0 / (1 + t) if t != T else 0.0

        def report(done: float, t: int = t) -> None:
            size = ms.size_bits(st) / max(target, 1e-12)
            say(0.9 * (t - 1 + done) / T, f"ssumm iteration {t} of {T}: {int(st.sc[ms.NUM_S]):,} supernodes, "
                f"size {size:.2f} x budget")  # fmt: skip

        report(0.0)
        t1 = time.perf_counter()
        sig, ids = _signatures(st.indptr, st.indices, st.parent, st.alive, cfg.hashes)
        order = np.lexsort(tuple(sig[:, c] for c in range(sig.shape[1] - 1, -1, -1)))
        groups, offsets = _groups(sig, ids, order, GROUP_MAX)
        t2 = time.perf_counter()
        status = _merge_iteration(groups, offsets, theta, st, mode, target, report)
        timings["signatures"] += t2 - t1
        timings["merge"] += time.perf_counter() - t2
        it_run = t
        if status == 0:
            fits = True
            break
    say(0.9, "ssumm: sparsifying superedges")
    t3 = time.perf_counter()
    labels = ms.labels(st.parent)
    live = st.hk != -1
    keys, cnt, dense = st.hk[live], st.hc[live], st.hd[live] == 1
    se_a, se_b, se_c = keys[dense] // n, keys[dense] % n, cnt[dense]
    # sparsify: sparse pairs are already dropped; isolated supernodes merge into one
    roots = np.flatnonzero(st.alive)
    touched = np.zeros(n, dtype=bool)
    touched[se_a] = True
    touched[se_b] = True
    n_iso = int((~touched[roots]).sum())
    s_now = roots.size - n_iso + (n_iso > 0)
    if not fits:
        cost = drop_cost(se_c, block_pairs(st.size[se_a], st.size[se_b], se_a == se_b), cfg.error)
        keep = sparsify(
            n,
            s_now,
            se_a,
            se_b,
            cost,
            target_bits=target,
            w_max=int(st.sc[ms.MAX_W]),
            has_isolated=n_iso > 0,
        )
        se_a, se_b, se_c = se_a[keep], se_b[keep], se_c[keep]
    summary = finalize(labels, se_a, se_b, se_c, merge_isolated=True)
    timings["sparsify"] = time.perf_counter() - t3
    return summary, it_run


@register(
    "ssumm",
    family="graphs",
    paper=SSUMM_PAPER,
    summary="Merges supernodes chosen by min-hash groups and an MDL saving threshold, then sparsifies "
    "superedges, to the best L1/L2 reconstruction within a bit budget.",
    params=[
        Param(
            "budget",
            0.2,
            low=0.01,
            high=1.0,
            step=0.01,
            label="Budget (summary bits / input bits)",
            help="summary size / input size (2|E| log2|V| bits)",
        ),
        Param(
            "error",
            "l2",
            choices=("l1", "l2"),
            label="Error to minimise",
            help="error the summary minimises (l1 = official ReOne)",
        ),
        Param(
            "iterations",
            20,
            low=1,
            high=100,
            label="T (iterations; theta(t) = 1/(1+t))",
            help="T: merge iterations, theta(t) = 1/(1+t)",
        ),
        Param(
            "hashes",
            10,
            low=1,
            high=32,
            label="Min-hash functions per iteration",
            help="min-hash functions per iteration",
        ),
    ],
    role="summarize",
    control="random-merge",
)
def ssumm(
    graph: Graph,
    *,
    budget: float = 0.2,
    error: str = "l2",
    iterations: int = 20,
    hashes: int = 10,
    seed: int = 0,
    progress=None,
) -> GraphSummaryResult:
    """Summarise ``graph`` with SSumM within ``budget`` x its input bits.

    Parameters
    ----------
    graph : Graph
        Undirected simple graph (see :mod:`engine.graphs.io`).
    budget : float in (0, 1]
        Target size as a fraction of 2|E| log2|V| bits.
    error : {"l2", "l1"}
        The error to minimise; "l1" runs the official ReOne variant.
    iterations : int
        T; the merge threshold is 1/(1+t) for t < T and 0 at t = T.
    hashes : int
        Min-hash functions per iteration (the official code uses 10).
    seed : int
        Seeds the permutations and the pair sampling; equal seeds give equal summaries.
    progress : callable(frac, desc), optional
        Told about every iteration and, within one, every ~0.25 s; an exception it raises (a Stop) ends the
        run. It does not change the summary.

    Returns
    -------
    GraphSummaryResult

    Raises
    ------
    InputError
        For a budget outside (0, 1] or an unknown error.

    Examples
    --------
    >>> from engine.graphs.io import builtin
    >>> r = ssumm(builtin("karate"), budget=0.5)
    >>> r.size_bits <= r.budget_bits
    True
    """
    check_inputs(graph, budget, error)
    cfg = SSumMConfig(budget=float(budget), error=error, iterations=int(iterations), hashes=int(hashes))
    timings: dict[str, float] = {}
    summary, it_run = _run(graph, cfg, seed, timings, progress)
    params = {"budget": cfg.budget, "error": error, "iterations": cfg.iterations, "hashes": cfg.hashes}
    notices = [] if summary.bits() <= cfg.budget * input_bits(graph.n, graph.m) + 1e-6 else ["over budget"]
    res = make_result("ssumm", graph, summary, params=params, seed=seed, timings=timings, notices=notices)
    res.provenance.params["iterations_run"] = it_run
    return res
