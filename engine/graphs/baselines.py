"""Baselines for SSumM, run at the same bit budget so a size-vs-error curve compares like with like.

- ``random-merge``: nodes are merged into supernodes uniformly at random; every nonempty block is a
  superedge, then SSumM's own sparsification drops the least useful superedges until the summary fits. The
  number of supernodes is the best of a small geometric grid (best by the chosen error), so the baseline is
  not handicapped by a bad choice of |S|.
- ``saa-gs``: SAA-Gs, the sampling variant of k-Gs (LeFevre & Terzi, "GraSS: Graph Structure Summarization",
  SDM 2010). Greedy agglomeration: at each step sample ``samples`` random pairs of supernodes and merge the
  pair whose merge raises the reconstruction error (L2: sum over blocks of |E| - |E|^2/|Pi|; L1:
  2|E|(1 - |E|/|Pi|)) the least. A k-Gs summary keeps every nonempty block as a weighted superedge, so merging
  continues until that summary fits the bit budget (|S| = k is set by the budget, as in the SSumM paper's
  comparison). It runs on the merge state SSumM uses (:mod:`engine.graphs.merge_state`: pair table,
  neighbour lists) in ``MODE_ALL``.

For L1, superedges of density below 1/2 are dropped by both baselines (they only add L1 error).
"""

from __future__ import annotations

import time

import numba as nb
import numpy as np

from engine.graphs import merge_state as ms
from engine.graphs.costs import (
    Summary,
    block_counts,
    block_pairs,
    drop_cost,
    errors,
    finalize,
    input_bits,
    sparsify,
)
from engine.graphs.io import Graph
from engine.graphs.summary import GraphSummaryResult, check_inputs, make_result
from engine.registry import Paper, Param, register

__all__ = ["random_merge", "saa_gs", "GRASS_PAPER"]

GRASS_PAPER = Paper(
    "GraSS: Graph Structure Summarization",
    2010,
    "SDM 2010",
    "https://doi.org/10.1137/1.9781611972801.40",
    ("LeFevre, Kristen", "Terzi, Evimaria"),
)


def _fit(
    n: int, labels: np.ndarray, a, b, cnt, error: str, target: float, w_max: int | None = None
) -> Summary:
    """Keep the superedges (a, b, cnt) that fit ``target`` bits, dropping the least useful first."""
    uniq = np.unique(labels)
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    pairs = block_pairs(size[a], size[b], a == b)
    cost = drop_cost(cnt, pairs, error)
    if error == "l1":
        ok = cost >= 0
        a, b, cnt, cost = a[ok], b[ok], cnt[ok], cost[ok]
    touched = np.zeros(size.size, dtype=bool)
    touched[a] = True
    touched[b] = True
    n_iso = int((~touched[uniq]).sum())
    s_now = uniq.size - n_iso + (n_iso > 0)
    wm = int(w_max if w_max is not None else (cnt.max() if cnt.size else 1))
    keep = sparsify(n, s_now, a, b, cost, target_bits=target, w_max=wm, has_isolated=n_iso > 0)
    return finalize(labels, a[keep], b[keep], cnt[keep], merge_isolated=True)


@register(
    "random-merge",
    family="graphs",
    paper=None,
    summary="Merges nodes into supernodes uniformly at random (best |S| of a small grid), then sparsifies "
    "superedges like SSumM until the summary fits the budget.",
    params=[
        Param("budget", 0.2, low=0.01, high=1.0, help="summary size / input size"),
        Param("error", "l2", choices=("l1", "l2"), help="error used to rank superedges and pick |S|"),
        Param("grid", 8, low=1, high=32, help="numbers of supernodes tried (geometric grid)"),
    ],
    role="summarize",
)
def random_merge(
    graph: Graph, *, budget: float = 0.2, error: str = "l2", grid: int = 8, seed: int = 0, progress=None
) -> GraphSummaryResult:
    """Random-merge baseline at ``budget`` x the input bits (see the module docstring). ``progress(frac,
    desc)`` hears about every size of the grid tried."""
    check_inputs(graph, budget, error)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    n = graph.n
    target = budget * input_bits(n, graph.m)
    s_max = int(min(n, 2 ** min(60.0, target / n)))
    sizes = (
        np.unique(np.geomspace(2, max(s_max, 2), int(grid)).astype(np.int64)) if s_max >= 2 else np.array([1])
    )
    best, best_err = None, np.inf
    for i, s in enumerate(sizes):
        if progress is not None:
            progress(0.9 * i / len(sizes), f"random-merge: {int(s):,} supernodes ({i + 1} of {len(sizes)})")
        labels = rng.integers(0, int(s), n)
        a, b, cnt = block_counts(graph, labels, int(s))
        summ = _fit(n, labels, a, b, cnt, error, target)
        err = errors(graph, summ)[0 if error == "l1" else 1]
        if err < best_err:
            best, best_err = summ, err
    timings = {"search": time.perf_counter() - t0}
    params = {"budget": float(budget), "error": error, "grid": int(grid)}
    return make_result("random-merge", graph, best, params=params, seed=seed, timings=timings)


@nb.njit(cache=True)
def _block_err(e, pairs, l1):
    if e == 0 or pairs <= 0:
        return 0.0
    if l1:
        return 2.0 * e * (1.0 - e / pairs)
    return e - e * e / pairs


@nb.njit(cache=True)
def _err_increase(st, a, b, l1):
    """Increase of the L1/L2 reconstruction error if a and b merge (every nonempty block a superedge)."""
    k, stamp = ms.gather(st, a, b)
    mark_a, mark_b, ca, cb, ubuf, size = st.mark_a, st.mark_b, st.ca, st.cb, st.ubuf, st.size
    sa = float(size[a])
    sb = float(size[b])
    sm = sa + sb
    inc = 0.0
    for i in range(k):
        x = ubuf[i]
        sx = float(size[x])
        ea = ca[x] if mark_a[x] == stamp else 0
        eb = cb[x] if mark_b[x] == stamp else 0
        inc += _block_err(ea + eb, sm * sx, l1) - _block_err(ea, sa * sx, l1) - _block_err(eb, sb * sx, l1)
    e_aa, _ = ms.pair_get(st, a, a)
    e_bb, _ = ms.pair_get(st, b, b)
    e_ab, _ = ms.pair_get(st, a, b)
    inc += _block_err(e_aa + e_bb + e_ab, sm * (sm - 1.0) / 2.0, l1)
    inc -= _block_err(e_aa, sa * (sa - 1.0) / 2.0, l1) + _block_err(e_bb, sb * (sb - 1.0) / 2.0, l1)
    inc -= _block_err(e_ab, sa * sb, l1)
    return inc


@nb.njit(cache=True, nogil=True)  # other requests run while it works
def _saa_loop(st, samples, l1, target, live, nl, max_merges):
    """At most ``max_merges`` merges among the ``nl`` live supernodes ``live[:nl]``; returns (nl, done), done
    once the summary fits or one supernode is left. Called in chunks (progress between them); the random
    stream and so the summary are the same however the merges are chunked."""
    sparse_cost = 2.0 * np.log2(st.parent.size)
    merges = 0
    while nl >= 2:
        if ms.size_bits(st) <= target:
            return nl, True
        if merges >= max_merges:
            return nl, False
        best = np.inf
        bi = 0
        bj = 1
        for _ in range(samples):
            i = np.random.randint(0, nl)
            j = np.random.randint(0, nl - 1)
            if j >= i:
                j += 1
            inc = _err_increase(st, live[i], live[j], l1)
            if inc < best:
                best = inc
                bi = i
                bj = j
        ms.merge(st, live[bi], live[bj], sparse_cost, ms.MODE_ALL)
        merges += 1
        live[bj] = live[nl - 1]
        nl -= 1
    return nl, True


@register(
    "saa-gs",
    family="graphs",
    paper=GRASS_PAPER,
    summary="SAA-Gs (sampling k-Gs): greedily merges, among sampled supernode pairs, the pair that raises the "
    "reconstruction error least, until the summary with all nonempty blocks as superedges fits the budget.",
    params=[
        Param("budget", 0.2, low=0.01, high=1.0, help="summary size / input size"),
        Param("error", "l2", choices=("l1", "l2"), help="reconstruction error the merges minimise"),
        Param("samples", 64, low=1, high=4096, help="random supernode pairs scored per merge"),
    ],
    role="summarize",
    control="random-merge",
)
def saa_gs(
    graph: Graph, *, budget: float = 0.2, error: str = "l2", samples: int = 64, seed: int = 0, progress=None
) -> GraphSummaryResult:
    """SAA-Gs baseline (LeFevre & Terzi, SDM 2010) at ``budget`` x the input bits. ``progress(frac, desc)``
    hears about every ~0.25 s of merging (what it raises ends the run); it does not change the summary."""
    check_inputs(graph, budget, error)
    say = progress or (lambda frac, desc: None)
    t0 = time.perf_counter()
    n = graph.n
    target = budget * input_bits(n, graph.m)
    say(0.0, f"saa-gs: setting up {n:,} supernodes")
    st = ms.init_state(graph)
    ms.seed(int(seed) % (2**32))
    live = np.flatnonzero(st.alive)
    nl, done, chunk = live.size, False, 256
    while not done:
        tc = time.perf_counter()
        nl, done = _saa_loop(st, int(samples), error == "l1", target, live, nl, chunk)
        chunk = int(min(max(chunk * ms.CHUNK_S / max(time.perf_counter() - tc, 1e-4), 1), 2 * chunk + 1))
        say(0.9 * (1 - nl / max(n, 1)), f"saa-gs: {nl:,} supernodes, size "
            f"{ms.size_bits(st) / max(target, 1e-12):.2f} x budget")  # fmt: skip
    t1 = time.perf_counter()
    labels = ms.labels(st.parent)
    live = st.hk != -1
    keys, cnt = st.hk[live], st.hc[live]
    summ = _fit(n, labels, keys // n, keys % n, cnt, error, target, w_max=int(st.sc[ms.MAX_W]))
    timings = {"merge": t1 - t0, "sparsify": time.perf_counter() - t1}
    params = {"budget": float(budget), "error": error, "samples": int(samples)}
    return make_result("saa-gs", graph, summ, params=params, seed=seed, timings=timings)
