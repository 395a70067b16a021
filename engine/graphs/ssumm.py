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

Implementation. One numba kernel holds the state the official Java code holds: the supernode graph as a
single open-addressing hash table keyed by the supernode pair (edge count + dense/sparse flag, deleted by
backward shift so it never needs rehashing), per-supernode neighbour lists of (id, edge count) entries whose
stale ids are resolved through a union-find and compacted lazily (counts add under merging, so a list stays
exact without being touched when its neighbours merge, and scoring a pair needs no hash lookups), and
per-supernode data and model costs updated incrementally on every merge. Saving and merge cost
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
from dataclasses import dataclass, field
from types import SimpleNamespace

import numba as nb
import numpy as np

from engine.graphs.costs import Summary, drop_cost, errors, finalize, input_bits, sparsify, summary_bits
from engine.graphs.io import Graph
from engine.registry import InputError, Method, Paper, Param, register
from engine.results import Provenance, Result

__all__ = ["SSUMM_PAPER", "SSumMConfig", "GraphSummaryResult", "ssumm", "summarize", "graph_methods"]

SSUMM_PAPER = Paper(
    "SSumM: Sparse Summarization of Massive Graphs",
    2020,
    "KDD 2020",
    "https://doi.org/10.1145/3394486.3403057",
)
GROUP_MAX = 500  # the official divThreshold


@dataclass(frozen=True)
class SSumMConfig:
    budget: float = 0.2  # target summary size as a fraction of the input's 2|E| log2|V| bits
    error: str = "l2"  # "l2" (SSumM) or "l1" (the official ReOne variant)
    iterations: int = 20  # T: merge iterations; theta(t) = 1/(1+t), 0 in the last
    hashes: int = 10  # min-hash functions per iteration (signature length)


@dataclass
class GraphSummaryResult(Result):
    """A summary of a graph and its metrics. ``summary`` holds the arrays (see :class:`Summary`)."""

    method: str
    graph_name: str
    nodes: int
    edges: int
    supernodes: int
    superedges: int
    input_bits: float
    size_bits: float
    budget: float
    budget_bits: float
    error: str
    l1_error: float
    l2_error: float
    seconds: float
    notices: list[str] = field(default_factory=list)
    summary: Summary | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        keys = (
            "nodes",
            "edges",
            "supernodes",
            "superedges",
            "input_bits",
            "size_bits",
            "l1_error",
            "l2_error",
        )
        out = {k: getattr(self, k) for k in keys}
        out["size_fraction"] = self.size_bits / self.input_bits
        out["seconds"] = self.seconds
        return out

    def tables(self) -> dict[str, list[dict]]:
        s = self.summary
        return {
            "node_to_supernode": [{"node": i, "supernode": int(x)} for i, x in enumerate(s.labels)],
            "superedges": [
                {"a": int(a), "b": int(b), "edges": int(c), "pairs": float(p), "density": float(c / p)}
                for a, b, c, p in zip(s.se_a, s.se_b, s.se_count, s.se_pairs)
            ],
        }

    def summary_dict(self, labels: np.ndarray | None = None) -> dict:
        """The summary graph as plain JSON: supernodes with their members, superedges with weights."""
        s = self.summary
        order = np.argsort(s.labels, kind="stable")
        bounds = np.r_[0, np.cumsum(s.sizes)]
        names = labels if labels is not None else np.arange(s.labels.size)
        members = [[str(names[i]) for i in order[bounds[j] : bounds[j + 1]]] for j in range(s.n_super)]
        return {
            "method": self.method,
            "graph": self.graph_name,
            "metrics": self.metrics(),
            "supernodes": [
                {"id": j, "size": int(s.sizes[j]), "members": members[j]} for j in range(s.n_super)
            ],
            "superedges": [
                {"a": int(a), "b": int(b), "edges": int(c), "density": float(c / p)}
                for a, b, c, p in zip(s.se_a, s.se_b, s.se_count, s.se_pairs)
            ],
            "provenance": self.to_dict()["provenance"],
        }


# ------------------------------------------------------------------------------------------------ kernel
# Scalars of the state live in one int64 array so the kernels can update them in place.
_NUM_S, _NUM_P, _MAX_W, _USED, _STAMP, _SHIFT = range(6)
_GOLDEN = np.uint64(11400714819323198485)


@nb.njit(cache=True, inline="always")
def _slot(key, shift):
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@nb.njit(cache=True)
def _hfind(hk, key, shift):
    """Slot of ``key`` or -(empty slot + 1) where it would go (linear probing)."""
    mask = hk.size - 1
    i = _slot(key, shift)
    while hk[i] != -1:
        if hk[i] == key:
            return i
        i = (i + 1) & mask
    return -(i + 1)


@nb.njit(cache=True)
def _hdel(hk, hc, hd, i, shift):
    """Delete slot ``i`` by backward shift, so no tombstones accumulate."""
    mask = hk.size - 1
    j = i
    while True:
        j = (j + 1) & mask
        if hk[j] == -1:
            break
        k = _slot(hk[j], shift)
        if i <= j:
            stays = i < k <= j
        else:
            stays = k > i or k <= j
        if not stays:
            hk[i] = hk[j]
            hc[i] = hc[j]
            hd[i] = hd[j]
            i = j
    hk[i] = -1


@nb.njit(cache=True)
def _key(a, b, n):
    return a * n + b if a <= b else b * n + a


@nb.njit(cache=True)
def _entropy(p):
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


@nb.njit(cache=True)
def _pairs(sa, sb, same):
    if same:
        return sa * (sa - 1.0) / 2.0
    return sa * sb


@nb.njit(cache=True)
def _pair_cost(cnt, dense, pairs, sparse_cost):
    """Data cost of a pair as it stands: entropy-coded block if a superedge, else its edges as corrections."""
    if cnt == 0:
        return 0.0
    if dense:
        return _entropy(cnt / pairs) * pairs
    return sparse_cost * cnt


@nb.njit(cache=True)
def _merge_cost(cnt, pairs, sup_cost, sparse_cost, mode):
    """(cost, dense) of a block of the merged supernode: the cheaper of dense and sparse encodings.

    ``mode``: 0 = SSumM (L2), 1 = ReOne (L1), 2 = every nonempty block a superedge (k-Gs / SAA-Gs)."""
    if cnt == 0:
        return 0.0, 0
    if mode == 2:
        return 0.0, 1
    w = cnt / pairs
    sparse = sparse_cost * cnt
    if mode == 1 and w < 0.5:  # ReOne: a superedge of density < 1/2 only adds L1 error
        return sparse, 0
    if sup_cost > sparse:  # dense >= sup_cost: skip the entropy (same answer, cheaper)
        return sparse, 0
    dense = sup_cost + _entropy(w) * pairs
    if dense <= sparse:
        return dense, 1
    return sparse, 0


@nb.njit(cache=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@nb.njit(cache=True)
def _compact(v, pool, pcnt, nstart, nlen, parent, mark, posb, sc):
    """Rewrite v's neighbour list with current, distinct supernode ids and their edge counts.

    Entries are (id, count). Counts add under merging (|E_v,AuB| = |E_vA| + |E_vB|), so entries that now
    resolve to the same supernode are summed, and the list stays exact without being touched on merges.
    """
    sc[_STAMP] += 1
    st = sc[_STAMP]
    s0 = nstart[v]
    w = s0
    for i in range(s0, s0 + nlen[v]):
        r = _find(parent, pool[i])
        if r == v:
            continue
        if mark[r] != st:
            mark[r] = st
            posb[r] = w
            pool[w] = r
            pcnt[w] = pcnt[i]
            w += 1
        else:
            pcnt[posb[r]] += pcnt[i]
    nlen[v] = w - s0


@nb.njit(cache=True)
def _gather(a, b, st_arrays):
    """Union of a's and b's neighbours (excluding a, b) into ubuf, with each one's edge count to a and b."""
    pool, nstart, nlen, parent, mark, mark_a, mark_b, ca, cb, da, db, ubuf, sc, pcnt, posb = st_arrays
    _compact(a, pool, pcnt, nstart, nlen, parent, mark, posb, sc)
    _compact(b, pool, pcnt, nstart, nlen, parent, mark, posb, sc)
    sc[_STAMP] += 1
    st = sc[_STAMP]
    k = 0
    for i in range(nstart[a], nstart[a] + nlen[a]):
        x = pool[i]
        if x == b:
            continue
        ca[x] = pcnt[i]
        mark_a[x] = st
        ubuf[k] = x
        k += 1
    for i in range(nstart[b], nstart[b] + nlen[b]):
        x = pool[i]
        if x == a:
            continue
        cb[x] = pcnt[i]
        mark_b[x] = st
        if mark_a[x] != st:
            ubuf[k] = x
            k += 1
    return k, st


@nb.njit(cache=True)
def _get(hk, hc, hd, key, shift):
    j = _hfind(hk, key, shift)
    if j >= 0:
        return hc[j], hd[j]
    return 0, 0


@nb.njit(cache=True)
def _saving(a, b, st_arrays, hk, hc, hd, size, data, model, n, shift, sup_cost, sparse_cost, mode):
    """SSumM's saving of merging a and b: 1 - Cost(a u b) / (Cost(a) + Cost(b) - Cost(a, b))."""
    k, st = _gather(a, b, st_arrays)
    ca, cb, mark_a, mark_b, ubuf = st_arrays[7], st_arrays[8], st_arrays[5], st_arrays[6], st_arrays[11]
    sa = float(size[a])
    sb = float(size[b])
    sm = sa + sb
    e_ab, d_ab = _get(hk, hc, hd, _key(a, b, n), shift)
    den = sup_cost * (model[a] + model[b] - d_ab) + data[a] + data[b]
    den -= _pair_cost(e_ab, d_ab, _pairs(sa, sb, False), sparse_cost)
    if den <= 0.0:
        return -np.inf
    num = 0.0
    for i in range(k):
        x = ubuf[i]
        e = 0
        if mark_a[x] == st:
            e += ca[x]
        if mark_b[x] == st:
            e += cb[x]
        c, _ = _merge_cost(e, sm * size[x], sup_cost, sparse_cost, mode)
        num += c
    e_aa, _ = _get(hk, hc, hd, _key(a, a, n), shift)
    e_bb, _ = _get(hk, hc, hd, _key(b, b, n), shift)
    c, _ = _merge_cost(e_aa + e_bb + e_ab, sm * (sm - 1.0) / 2.0, sup_cost, sparse_cost, mode)
    num += c
    return 1.0 - num / den


@nb.njit(cache=True)
def _hset(hk, hc, hd, key, cnt, dense, shift):
    j = _hfind(hk, key, shift)
    if j < 0:
        j = -j - 1
        hk[j] = key
    hc[j] = cnt
    hd[j] = dense


@nb.njit(cache=True)
def _hremove(hk, hc, hd, key, shift):
    j = _hfind(hk, key, shift)
    if j >= 0:
        _hdel(hk, hc, hd, j, shift)


@nb.njit(cache=True)
def _gc_pool(pool, pcnt, nstart, nlen, ncap, alive, sc):
    """Move every live neighbour list to the front of the pool (in start order), freeing the rest."""
    ids = np.flatnonzero(alive)
    order = np.argsort(nstart[ids])
    w = 0
    for t in range(ids.size):
        v = ids[order[t]]
        s0 = nstart[v]
        for i in range(nlen[v]):
            pool[w + i] = pool[s0 + i]
            pcnt[w + i] = pcnt[s0 + i]
        nstart[v] = w
        ncap[v] = nlen[v]
        w += nlen[v]
    sc[_USED] = w


@nb.njit(cache=True)
def _merge(a, b, st_arrays, hk, hc, hd, size, data, model, alive, ncap, n, shift, sparse_cost, mode, sc):
    """Merge supernode b into a, updating the pair table, costs, counts and a's neighbour list."""
    k, st = _gather(a, b, st_arrays)
    pool, nstart, nlen, parent, pcnt = st_arrays[0], st_arrays[1], st_arrays[2], st_arrays[3], st_arrays[13]
    mark_a, mark_b, ca, cb, da, ubuf = (
        st_arrays[5],
        st_arrays[6],
        st_arrays[7],
        st_arrays[8],
        st_arrays[9],
        st_arrays[11],
    )
    sa = float(size[a])
    sb = float(size[b])
    sm = sa + sb
    sup_cost = 2.0 * np.log2(sc[_NUM_S]) + np.log2(max(sc[_MAX_W], 1))
    tmp_max = 0
    for i in range(k):
        x = ubuf[i]
        sx = float(size[x])
        ea, fa, eb, fb = 0, 0, 0, 0
        if mark_a[x] == st:
            ea = ca[x]
            fa = hd[_hfind(hk, _key(a, x, n), shift)]
        if mark_b[x] == st:
            eb = cb[x]
            jb = _hfind(hk, _key(b, x, n), shift)
            fb = hd[jb]
            _hdel(hk, hc, hd, jb, shift)
        data[x] -= _pair_cost(ea, fa, sa * sx, sparse_cost) + _pair_cost(eb, fb, sb * sx, sparse_cost)
        model[x] -= fa + fb
        sc[_NUM_P] -= fa + fb
        e = ea + eb
        tmp_max = max(tmp_max, e)
        _, f = _merge_cost(e, sm * sx, sup_cost, sparse_cost, mode)
        sc[_NUM_P] += f
        model[x] += f
        _hset(hk, hc, hd, _key(a, x, n), e, f, shift)
        ca[x] = e  # the merged pair, reused below and as a's new list
        da[x] = f
    e_aa, f_aa = _get(hk, hc, hd, _key(a, a, n), shift)
    e_bb, f_bb = _get(hk, hc, hd, _key(b, b, n), shift)
    e_ab, f_ab = _get(hk, hc, hd, _key(a, b, n), shift)
    sc[_NUM_P] -= f_aa + f_bb + f_ab
    e = e_aa + e_bb + e_ab
    tmp_max = max(tmp_max, e)
    _hremove(hk, hc, hd, _key(b, b, n), shift)
    _hremove(hk, hc, hd, _key(a, b, n), shift)
    f_self = 0
    if e > 0:
        _, f_self = _merge_cost(e, sm * (sm - 1.0) / 2.0, sup_cost, sparse_cost, mode)
        _hset(hk, hc, hd, _key(a, a, n), e, f_self, shift)
        sc[_NUM_P] += f_self
    if tmp_max > sc[_MAX_W]:
        sc[_MAX_W] = tmp_max
    # b is gone
    size[a] = size[a] + size[b]
    size[b] = 0
    parent[b] = a
    alive[b] = False
    sc[_NUM_S] -= 1
    # recompute a's costs, add the new pair costs to its neighbours
    d_a = _pair_cost(e, f_self, sm * (sm - 1.0) / 2.0, sparse_cost)
    m_a = f_self
    for i in range(k):
        x = ubuf[i]
        c = _pair_cost(ca[x], da[x], sm * size[x], sparse_cost)
        d_a += c
        m_a += da[x]
        data[x] += c
    data[a] = d_a
    model[a] = m_a
    data[b] = 0.0
    model[b] = 0
    # a's neighbour list becomes the union
    if k > ncap[a]:
        if k <= ncap[b]:
            nstart[a] = nstart[b]
            ncap[a] = ncap[b]
        else:
            want = k + k // 2 + 4
            if sc[_USED] + want > pool.size:
                nlen[b] = 0
                _gc_pool(pool, pcnt, nstart, nlen, ncap, alive, sc)
            nstart[a] = sc[_USED]
            ncap[a] = want
            sc[_USED] += want
    s0 = nstart[a]
    for i in range(k):
        x = ubuf[i]
        pool[s0 + i] = x
        pcnt[s0 + i] = ca[x]
    nlen[a] = k
    nlen[b] = 0
    ncap[b] = 0


@nb.njit(cache=True)
def _bitlen(x):
    c = 0
    while x > 0:
        x >>= 1
        c += 1
    return c


@nb.njit(cache=True)
def _merge_step(
    groups,
    offsets,
    threshold,
    st_arrays,
    hk,
    hc,
    hd,
    size,
    data,
    model,
    alive,
    ncap,
    n,
    shift,
    mode,
    target,
    sc,
):
    """One iteration over the candidate groups; returns 0 once the summary fits the target size."""
    sparse_cost = 2.0 * np.log2(n)
    dup = np.zeros((GROUP_MAX, GROUP_MAX), dtype=np.int64)
    uniq = 0
    merges = 0
    for g in range(offsets.size - 1):
        grp = groups[offsets[g] : offsets[g + 1]].copy()
        length = grp.size
        if length < 2:
            continue
        until = _bitlen(_bitlen(length - 1) - 1)  # about log2 log2 |group| rounds without a merge
        inside = 0
        while inside < until:
            uniq += 1
            if length < 2:
                break
            sup_cost = 2.0 * np.log2(sc[_NUM_S]) + np.log2(max(sc[_MAX_W], 1))
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
                sv = _saving(
                    grp[s],
                    grp[d],
                    st_arrays,
                    hk,
                    hc,
                    hd,
                    size,
                    data,
                    model,
                    n,
                    shift,
                    sup_cost,
                    sparse_cost,
                    mode,
                )
                if max_saving < sv:
                    max_saving = sv
                    best_s = s
                    best_d = d
            if max_saving < threshold or best_s < 0:
                inside += 1
                continue
            inside = 0
            _merge(
                grp[best_s], grp[best_d], st_arrays, hk, hc, hd, size, data, model, alive, ncap, n, shift,
                sparse_cost, mode, sc,
            )  # fmt: skip
            merges += 1
            length -= 1
            grp[best_d] = grp[length]
            ls = np.log2(sc[_NUM_S])
            if n * ls + sc[_NUM_P] * (2.0 * ls + np.log2(max(sc[_MAX_W], 1))) <= target:
                return 0, merges
    return 1, merges


@nb.njit(cache=True)
def _seed(seed):
    np.random.seed(seed)


@nb.njit(cache=True)
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
            r = rank[_find(parent, v)]
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


@nb.njit(cache=True)
def _labels(parent):
    out = np.empty(parent.size, dtype=np.int64)
    for v in range(parent.size):
        out[v] = _find(parent, v)
    return out


def _init_state(graph: Graph) -> SimpleNamespace:
    """The merge state of the trivial summary: one supernode per node, one superedge (weight 1) per edge."""
    n, m = graph.n, graph.m
    adj = graph.adjacency
    indptr, indices = adj.indptr.astype(np.int64), adj.indices.astype(np.int64)
    bits = max(4, int(np.ceil(np.log2(2 * (m + n)))) + 1)
    hk = np.full(1 << bits, -1, dtype=np.int64)
    hc = np.zeros(1 << bits, dtype=np.int64)
    hd = np.zeros(1 << bits, dtype=np.int8)
    shift = 64 - bits
    _fill_table(hk, hc, hd, graph.edges[:, 0] * n + graph.edges[:, 1], shift)
    pool = np.empty(4 * indices.size + 64, dtype=np.int64)
    pool[: indices.size] = indices
    pcnt = np.zeros(pool.size, dtype=np.int64)
    pcnt[: indices.size] = 1
    nstart = indptr[:-1].copy()
    nlen = np.diff(indptr)
    ncap = nlen.copy()
    parent = np.arange(n, dtype=np.int64)
    size = np.ones(n, dtype=np.int64)
    alive = np.ones(n, dtype=np.bool_)
    data = np.zeros(n)  # every edge starts as a superedge of density 1: no correction cost
    model = nlen.copy()  # superedges incident to each supernode
    sc = np.zeros(6, dtype=np.int64)
    sc[_NUM_S], sc[_NUM_P], sc[_MAX_W], sc[_USED], sc[_SHIFT] = n, m, 1, indices.size, shift
    st_arrays = (
        pool,
        nstart,
        nlen,
        parent,
        np.zeros(n, dtype=np.int64),  # mark (compaction)
        np.zeros(n, dtype=np.int64),  # mark_a
        np.zeros(n, dtype=np.int64),  # mark_b
        np.zeros(n, dtype=np.int64),  # ca
        np.zeros(n, dtype=np.int64),  # cb
        np.zeros(n, dtype=np.int8),  # da
        np.zeros(n, dtype=np.int8),  # db
        np.zeros(n, dtype=np.int64),  # ubuf
        sc,
        pcnt,  # edge count of each neighbour-list entry
        np.zeros(n, dtype=np.int64),  # posb (compaction)
    )
    return SimpleNamespace(
        indptr=indptr,
        indices=indices,
        hk=hk,
        hc=hc,
        hd=hd,
        shift=shift,
        ncap=ncap,
        parent=parent,
        size=size,
        alive=alive,
        data=data,
        model=model,
        sc=sc,
        st_arrays=st_arrays,
    )


def _run(graph: Graph, cfg: SSumMConfig, seed: int, timings: dict) -> tuple[Summary, int]:
    """The SSumM search and sparsification; returns the summary and the iterations run."""
    n, m = graph.n, graph.m
    t0 = time.perf_counter()
    st = _init_state(graph)
    indptr, indices, st_arrays, sc = st.indptr, st.indices, st.st_arrays, st.sc
    hk, hc, hd, shift = st.hk, st.hc, st.hd, st.shift
    size, data, model, alive, ncap, parent = st.size, st.data, st.model, st.alive, st.ncap, st.parent
    target = cfg.budget * input_bits(n, m)
    mode = 1 if cfg.error == "l1" else 0
    _seed(int(seed) % (2**32))
    timings["setup"] = time.perf_counter() - t0
    timings["signatures"] = timings["merge"] = 0.0
    it_run = 0
    fits = False
    for t in range(1, cfg.iterations + 1):
        theta = 1.0 / (1 + t) if t != cfg.iterations else 0.0
        t1 = time.perf_counter()
        sig, ids = _signatures(indptr, indices, parent, alive, cfg.hashes)
        order = np.lexsort(tuple(sig[:, c] for c in range(sig.shape[1] - 1, -1, -1)))
        groups, offsets = _groups(sig, ids, order, GROUP_MAX)
        t2 = time.perf_counter()
        status, _ = _merge_step(
            groups,
            offsets,
            theta,
            st_arrays,
            hk,
            hc,
            hd,
            size,
            data,
            model,
            alive,
            ncap,
            n,
            shift,
            mode,
            target,
            sc,
        )
        timings["signatures"] += t2 - t1
        timings["merge"] += time.perf_counter() - t2
        it_run = t
        if status == 0:
            fits = True
            break
    t3 = time.perf_counter()
    labels = _labels(parent)
    live = hk != -1
    keys, cnt, dense = hk[live], hc[live], hd[live] == 1
    se_a, se_b, se_c = keys[dense] // n, keys[dense] % n, cnt[dense]
    # sparsify: sparse pairs are already dropped; isolated supernodes merge into one
    roots = np.flatnonzero(alive)
    touched = np.zeros(n, dtype=bool)
    touched[se_a] = True
    touched[se_b] = True
    n_iso = int((~touched[roots]).sum())
    s_now = roots.size - n_iso + (n_iso > 0)
    if not fits:
        cost = drop_cost(se_c, _pairs_np(size, se_a, se_b), cfg.error)
        keep = sparsify(
            n,
            s_now,
            se_a,
            se_b,
            cost,
            target_bits=target,
            w_max=int(sc[_MAX_W]),
            has_isolated=n_iso > 0,
        )
        se_a, se_b, se_c = se_a[keep], se_b[keep], se_c[keep]
    summary = finalize(labels, se_a, se_b, se_c, merge_isolated=True)
    timings["sparsify"] = time.perf_counter() - t3
    return summary, it_run


def _pairs_np(size, a, b):
    sa, sb = size[a].astype(np.float64), size[b].astype(np.float64)
    return np.where(a == b, sa * (sa - 1) / 2, sa * sb)


@nb.njit(cache=True)
def _fill_table(hk, hc, hd, keys, shift):
    for i in range(keys.size):
        j = -_hfind(hk, keys[i], shift) - 1
        hk[j] = keys[i]
        hc[j] = 1
        hd[j] = 1


def _check(graph: Graph, budget: float, error: str) -> None:
    if not isinstance(graph, Graph):
        raise InputError(f"expected an engine.graphs.io.Graph, got {type(graph).__name__}")
    if not (0.0 < budget <= 1.0) or budget != budget:
        raise InputError(f"budget must be a fraction of the input size in (0, 1], got {budget}")
    if error not in ("l1", "l2"):
        raise InputError(f"error must be 'l1' or 'l2', got {error!r}")


def make_result(
    method: str, graph: Graph, summary: Summary, *, params: dict, seed: int | None, timings: dict, notices=()
) -> GraphSummaryResult:
    """Metrics and provenance around a :class:`Summary` (shared by SSumM and the baselines)."""
    t0 = time.perf_counter()
    l1, l2 = errors(graph, summary)
    timings["errors"] = time.perf_counter() - t0
    ib = input_bits(graph.n, graph.m)
    seconds = sum(v for k, v in timings.items() if k != "errors")
    return GraphSummaryResult(
        provenance=Provenance(method, dict(params), graph.fingerprint, seed, "cpu", dict(timings)),
        method=method,
        graph_name=graph.name,
        nodes=graph.n,
        edges=graph.m,
        supernodes=summary.n_super,
        superedges=summary.n_superedges,
        input_bits=ib,
        size_bits=summary_bits(graph.n, summary.n_super, summary.n_superedges, summary.w_max),
        budget=float(params.get("budget", 0.0)),
        budget_bits=float(params.get("budget", 0.0)) * ib,
        error=str(params.get("error", "l2")),
        l1_error=l1,
        l2_error=l2,
        seconds=seconds,
        notices=list(graph.notices) + list(notices),
        summary=summary,
    )


@register(
    "ssumm",
    family="graphs",
    paper=SSUMM_PAPER,
    summary="Merges supernodes chosen by min-hash groups and an MDL saving threshold, then sparsifies "
    "superedges, to the best L1/L2 reconstruction within a bit budget.",
    params=[
        Param("budget", 0.2, low=0.01, high=1.0, help="summary size / input size (2|E| log2|V| bits)"),
        Param("error", "l2", choices=("l1", "l2"), help="error the summary minimises (l1 = official ReOne)"),
        Param("iterations", 20, low=1, high=100, help="T: merge iterations, theta(t) = 1/(1+t)"),
        Param("hashes", 10, low=1, high=32, help="min-hash functions per iteration"),
    ],
)
def ssumm(
    graph: Graph,
    *,
    budget: float = 0.2,
    error: str = "l2",
    iterations: int = 20,
    hashes: int = 10,
    seed: int = 0,
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
    _check(graph, budget, error)
    cfg = SSumMConfig(budget=float(budget), error=error, iterations=int(iterations), hashes=int(hashes))
    timings: dict[str, float] = {}
    summary, it_run = _run(graph, cfg, seed, timings)
    params = {"budget": cfg.budget, "error": error, "iterations": cfg.iterations, "hashes": cfg.hashes}
    notices = [] if summary.bits() <= cfg.budget * input_bits(graph.n, graph.m) + 1e-6 else ["over budget"]
    res = make_result("ssumm", graph, summary, params=params, seed=seed, timings=timings, notices=notices)
    res.provenance.params["iterations_run"] = it_run
    return res


def graph_methods() -> dict[str, Method]:
    """The registered graph summarisers, by name.

    Imports only this family's modules, so a broken module of another family (the registry's
    ``_load_all`` imports every family) cannot take the graph tab or CLI down.
    """
    import engine.graphs.baselines  # noqa: F401 - registers random-merge and saa-gs
    from engine import registry

    return {name: m for name, m in registry._REGISTRY.items() if m.family == "graphs"}


def summarize(graph: Graph, method: str = "ssumm", *, seed: int = 0, **params) -> GraphSummaryResult:
    """Run any registered graph summariser by name with validated parameters."""
    methods = graph_methods()
    if method not in methods:
        raise InputError(f"unknown method {method!r}; graph methods: {sorted(methods)}")
    meth = methods[method]
    return meth(graph, seed=seed, **meth.validate(params))
