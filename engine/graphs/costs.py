"""Bit costs, sparsification and reconstruction errors shared by every graph summariser.

A summary of a graph G = (V, E) is a partition of V into supernodes S and a set P of superedges; superedge
{A, B} carries its edge count |E_AB|. Its reconstruction is A_hat[u, v] = |E_AB| / |Pi_AB| for u in A,
v in B, u != v, when {A, B} is in P, and 0 otherwise, where Pi_AB is the set of node pairs between A and B
(|A||B| pairs for A != B, |A|(|A|-1)/2 inside A).

Sizes in bits (Lee et al., KDD 2020, Sec. 3):

- input graph: 2 |E| log2 |V|;
- summary: |V| log2 |S| (node -> supernode map) + |P| (2 log2 |S| + log2 w_max) (superedges and weights).

Errors over ordered pairs u != v, as the official code prints them:
L1 = sum |A - A_hat| / (|V|(|V|-1)), L2 = sqrt(sum (A - A_hat)^2) / (|V|(|V|-1)).
:func:`errors` computes them in O(|E| + |P|) from block statistics; :func:`reference_errors_dense` is its
dense twin for small graphs (tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.graphs.io import Graph

__all__ = [
    "Summary",
    "input_bits",
    "summary_bits",
    "block_pairs",
    "block_counts",
    "drop_cost",
    "sparsify",
    "finalize",
    "errors",
    "reconstruct_dense",
    "reference_errors_dense",
]


def _log2(x) -> np.ndarray | float:
    return np.log2(np.maximum(x, 1))


def input_bits(n: int, m: int) -> float:
    """Bits of the input graph as an edge list: 2 |E| log2 |V|."""
    return float(2 * m * np.log2(n))


def summary_bits(n: int, s: int, p: int, w_max: int) -> float:
    """Bits of a summary: |V| log2 |S| + |P| (2 log2 |S| + log2 w_max)."""
    return float(n * _log2(s) + p * (2 * _log2(s) + _log2(w_max)))


def block_pairs(size_a: np.ndarray, size_b: np.ndarray, same: np.ndarray) -> np.ndarray:
    """|Pi_AB|: |A||B| for A != B, |A|(|A|-1)/2 for A == B (float64, exact below 2**53)."""
    size_a = np.asarray(size_a, dtype=np.float64)
    size_b = np.asarray(size_b, dtype=np.float64)
    return np.where(same, size_a * (size_a - 1) / 2, size_a * size_b)


def block_counts(graph: Graph, labels: np.ndarray, n_super: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blocks with at least one edge: (a, b, |E_ab|) with a <= b, from node -> supernode ``labels``."""
    la, lb = labels[graph.edges[:, 0]], labels[graph.edges[:, 1]]
    lo, hi = np.minimum(la, lb), np.maximum(la, lb)
    keys, counts = np.unique(lo * np.int64(n_super) + hi, return_counts=True)
    return keys // n_super, keys % n_super, counts.astype(np.int64)


def drop_cost(count: np.ndarray, pairs: np.ndarray, error: str) -> np.ndarray:
    """Increase of the error if superedge {A, B} is dropped (SSumM's further sparsification).

    L2: |E_AB|^2 / |Pi_AB| (the squared error of the block goes from |E| - |E|^2/|Pi| to |E|);
    L1: (2 |E_AB| / |Pi_AB| - 1) |E_AB| (the absolute error goes from 2|E|(1 - |E|/|Pi|) to |E|).
    The official code uses the ordered pair count |A|(|A|-1) for blocks inside one supernode, which halves
    their cost; we use |Pi_AB| as the paper defines it, so self-blocks are ranked by their true error.
    """
    count = count.astype(np.float64)
    if error == "l2":
        return count * count / pairs
    return (2 * count / pairs - 1) * count


@dataclass
class Summary:
    """A summary graph.

    Attributes
    ----------
    labels : [n] int64, node -> supernode in 0..S-1
    sizes : [S] int64, members per supernode
    se_a, se_b : [P] int64, superedge endpoints, se_a <= se_b
    se_count : [P] int64, |E_AB| (undirected edges in the block)
    se_pairs : [P] float64, |Pi_AB|
    """

    labels: np.ndarray
    sizes: np.ndarray
    se_a: np.ndarray
    se_b: np.ndarray
    se_count: np.ndarray
    se_pairs: np.ndarray

    @property
    def n_super(self) -> int:
        return int(self.sizes.size)

    @property
    def n_superedges(self) -> int:
        return int(self.se_a.size)

    @property
    def w_max(self) -> int:
        return int(self.se_count.max()) if self.se_count.size else 1

    def bits(self) -> float:
        return summary_bits(self.labels.size, self.n_super, self.n_superedges, self.w_max)


def sparsify(
    n: int,
    n_super: int,
    se_a: np.ndarray,
    se_b: np.ndarray,
    cost: np.ndarray,
    *,
    target_bits: float,
    w_max: int,
    has_isolated: bool,
) -> np.ndarray:
    """Drop the lowest-``cost`` superedges until the summary fits ``target_bits``; return a keep mask.

    Supernodes left without superedges are merged into one isolated supernode (as the official code does),
    which lowers |S| and so the bits of every remaining element; the size after dropping the j cheapest
    superedges is computed for every j at once, and the smallest j that fits is taken.

    Parameters
    ----------
    n : number of nodes; n_super : supernodes that still have a superedge (+ 1 if ``has_isolated``)
    se_a, se_b, cost : [P] superedges and their drop costs
    w_max : the weight bound used in the size (the official code's running maximum)
    has_isolated : whether an isolated supernode already exists
    """
    p = se_a.size
    keep = np.ones(p, dtype=bool)
    if summary_bits(n, n_super, p, w_max) <= target_bits or p == 0:
        return keep
    order = np.argsort(cost, kind="stable")
    rank = np.empty(p, dtype=np.int64)
    rank[order] = np.arange(p)
    # A supernode becomes isolated when its last superedge (highest rank) is dropped.
    ends = np.r_[se_a, se_b]
    last = np.full(int(ends.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(last, ends, np.r_[rank, rank])
    last = last[last >= 0]
    newly = np.bincount(last + 1, minlength=p + 1)[: p + 1].cumsum()  # newly[j]: isolated after j drops
    j = np.arange(p + 1)
    iso = (newly > 0) | has_isolated
    s = n_super - has_isolated - newly + iso
    sizes = n * _log2(s) + (p - j) * (2 * _log2(s) + _log2(w_max))
    fits = np.flatnonzero(sizes <= target_bits)
    n_drop = int(fits[0]) if fits.size else p
    keep[order[:n_drop]] = False
    return keep


def finalize(
    labels: np.ndarray,
    se_a: np.ndarray,
    se_b: np.ndarray,
    se_count: np.ndarray,
    *,
    merge_isolated: bool = True,
) -> Summary:
    """Compact supernode ids to 0..S-1 and (optionally) merge supernodes without superedges into one."""
    labels = np.asarray(labels, dtype=np.int64)
    uniq, labels = np.unique(labels, return_inverse=True)
    big = uniq.size
    if se_a.size:
        se_a = np.searchsorted(uniq, se_a)
        se_b = np.searchsorted(uniq, se_b)
    if merge_isolated:
        touched = np.zeros(big, dtype=bool)
        touched[se_a] = True
        touched[se_b] = True
        if (~touched).sum() > 1:
            iso = np.flatnonzero(~touched)
            remap = np.arange(big)
            remap[iso] = iso[0]
            labels = remap[labels]
            uniq2, labels = np.unique(labels, return_inverse=True)
            se_a = np.searchsorted(uniq2, remap[se_a])
            se_b = np.searchsorted(uniq2, remap[se_b])
    sizes = np.bincount(labels).astype(np.int64)
    lo, hi = np.minimum(se_a, se_b), np.maximum(se_a, se_b)
    order = np.lexsort((hi, lo))
    lo, hi, cnt = lo[order].astype(np.int64), hi[order].astype(np.int64), np.asarray(se_count)[order]
    pairs = block_pairs(sizes[lo], sizes[hi], lo == hi)
    return Summary(labels.astype(np.int64), sizes, lo, hi, cnt.astype(np.int64), pairs)


def errors(graph: Graph, summary: Summary) -> tuple[float, float]:
    """(L1, L2) reconstruction errors of ``summary`` over ordered pairs u != v, in O(|E| + |P|).

    For each edge (u, v) whose block is a superedge of density w, the error terms change from w^2 (or w)
    to (1 - w)^2 (or 1 - w); every superedge contributes w^2 |Pi| (or w |Pi| = |E_AB|) in total.
    """
    n = graph.n
    s = summary.n_super
    w = summary.se_count / summary.se_pairs
    la, lb = summary.labels[graph.edges[:, 0]], summary.labels[graph.edges[:, 1]]
    key = np.minimum(la, lb) * np.int64(s) + np.maximum(la, lb)
    se_key = summary.se_a * np.int64(s) + summary.se_b  # sorted by (a, b) in finalize
    pos = np.searchsorted(se_key, key)
    pos = np.minimum(pos, max(se_key.size - 1, 0))
    hit = se_key.size > 0
    we = np.where(hit & (se_key[pos] == key), w[pos], 0.0) if hit else np.zeros(key.size)
    l2_sq = 2 * (np.sum((1 - we) ** 2 - we**2) + np.sum(w * w * summary.se_pairs))
    l1 = 2 * (np.sum(1 - 2 * we) + np.sum(summary.se_count))
    denom = float(n) * (n - 1)
    return float(l1 / denom), float(np.sqrt(max(l2_sq, 0.0)) / denom)


def reconstruct_dense(n: int, summary: Summary) -> np.ndarray:
    """A_hat as a dense [n, n] float64 matrix (small graphs only): block densities, zero diagonal."""
    s = summary.n_super
    w = np.zeros((s, s))
    d = summary.se_count / summary.se_pairs
    w[summary.se_a, summary.se_b] = d
    w[summary.se_b, summary.se_a] = d
    a_hat = w[summary.labels][:, summary.labels]
    np.fill_diagonal(a_hat, 0.0)
    return a_hat


def reference_errors_dense(graph: Graph, summary: Summary) -> tuple[float, float]:
    """Dense twin of :func:`errors` (small graphs only): builds A and A_hat and sums over u != v."""
    a = graph.adjacency.toarray().astype(np.float64)
    diff = a - reconstruct_dense(graph.n, summary)
    np.fill_diagonal(diff, 0.0)
    denom = float(graph.n) * (graph.n - 1)
    return float(np.abs(diff).sum() / denom), float(np.sqrt((diff**2).sum()) / denom)
