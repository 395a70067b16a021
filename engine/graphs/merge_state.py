"""The merge state shared by the greedy graph summarisers (SSumM and SAA-Gs): supernodes, their pair table
and neighbour lists, updated in place by numba kernels as supernodes merge.

It holds what the official SSumM Java code holds (Lee et al., KDD 2020; https://github.com/KyuhanLee/SSumM):

- the supernode graph as one open-addressing hash table keyed by the supernode pair ``a * n + b`` (a <= b),
  holding each pair's edge count and a dense/sparse flag (1 = the block is a superedge); entries are deleted
  by backward shift, so the table never fills with tombstones and never needs rehashing;
- per-supernode neighbour lists of (id, edge count) entries in one pool; stale ids are resolved through a
  union-find and compacted lazily (counts add under merging, |E_v,AuB| = |E_vA| + |E_vB|, so a list stays
  exact without being touched when its neighbours merge, and scoring a pair needs no hash lookups);
- per-supernode data cost (corrections, in bits) and model count (superedges incident to it), updated
  incrementally on every merge.

Merging costs O(deg A + deg B); nothing loops per edge in Python. How a merged block is encoded (``mode``) is
the only thing the summarisers change: :data:`MODE_L2` (SSumM: the cheaper of superedge + entropy-coded
corrections and plain corrections), :data:`MODE_L1` (the official ReOne: also no superedge below density
1/2), :data:`MODE_ALL` (k-Gs / SAA-Gs: every nonempty block is a superedge).

The state is a :class:`MergeState` named tuple of arrays, which numba takes as one argument and reads by
field name; its few scalars live in the int64 array ``sc``, indexed by :data:`NUM_S`, :data:`NUM_P`,
:data:`MAX_W`, :data:`USED`, :data:`STAMP` and :data:`SHIFT`, so the kernels update them in place.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from engine.graphs.io import Graph

__all__ = [
    "MergeState",
    "NUM_S",
    "NUM_P",
    "MAX_W",
    "USED",
    "STAMP",
    "SHIFT",
    "MODE_L2",
    "MODE_L1",
    "MODE_ALL",
    "CHUNK_S",
    "init_state",
    "seed",
    "labels",
    "pair_key",
    "table_find",
    "table_delete",
    "table_get",
    "pair_get",
    "entropy",
    "pair_cost",
    "merge_cost",
    "superedge_cost",
    "size_bits",
    "find",
    "compact",
    "gather",
    "merge",
]

# indices into MergeState.sc
NUM_S = 0  # live supernodes |S|
NUM_P = 1  # superedges |P| (pairs flagged dense)
MAX_W = 2  # running maximum superedge weight w_max (the official code's)
USED = 3  # pool entries handed out to neighbour lists
STAMP = 4  # generation counter for the mark arrays (no clearing between calls)
SHIFT = 5  # 64 - log2(table size), for the multiplicative hash

MODE_L2, MODE_L1, MODE_ALL = 0, 1, 2  # how merge_cost encodes a block (see the module docstring)
CHUNK_S = 0.25  # seconds of merging between two progress reports (the summarisers size their chunks to it)

_GOLDEN = np.uint64(11400714819323198485)


class MergeState(NamedTuple):
    """Arrays of the merge state; n = nodes, H = table slots (a power of two), Q = neighbour-list pool size."""

    indptr: np.ndarray  # [n + 1] int64, CSR of the input graph (for min-hash signatures)
    indices: np.ndarray  # [2m] int64
    hk: np.ndarray  # [H] int64, pair key a * n + b (a <= b), -1 = empty slot
    hc: np.ndarray  # [H] int64, |E_ab|: edges between the pair
    hd: np.ndarray  # [H] int8, 1 = the block is a superedge (dense), 0 = its edges are corrections
    pool: np.ndarray  # [Q] int64, neighbour ids (possibly stale: resolve with find)
    pcnt: np.ndarray  # [Q] int64, edge count of each pool entry
    nstart: np.ndarray  # [n] int64, start of each supernode's list in the pool
    nlen: np.ndarray  # [n] int64, entries in use
    ncap: np.ndarray  # [n] int64, entries reserved
    parent: np.ndarray  # [n] int64, union-find over supernode ids
    size: np.ndarray  # [n] int64, members of each live supernode (0 once merged away)
    alive: np.ndarray  # [n] bool, live supernodes
    data: np.ndarray  # [n] float64, data cost (bits of corrections) of the pairs incident to each supernode
    model: np.ndarray  # [n] int64, superedges incident to each supernode
    mark: np.ndarray  # [n] int64, scratch stamp (compaction)
    posb: np.ndarray  # [n] int64, scratch position (compaction)
    mark_a: np.ndarray  # [n] int64, scratch stamp: neighbour of a (gather)
    mark_b: np.ndarray  # [n] int64, scratch stamp: neighbour of b (gather)
    ca: np.ndarray  # [n] int64, edges to a (gather), then to a u b (merge)
    cb: np.ndarray  # [n] int64, edges to b (gather)
    da: np.ndarray  # [n] int8, dense flag of the merged pair (merge)
    ubuf: np.ndarray  # [n] int64, the union of a's and b's neighbours (gather)
    sc: np.ndarray  # [6] int64, scalars indexed by NUM_S, NUM_P, MAX_W, USED, STAMP, SHIFT


# ------------------------------------------------------------------------------------------- pair table


@nb.njit(cache=True, inline="always")
def _slot(key, shift):
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(shift))


@nb.njit(cache=True)
def table_find(hk, key, shift):
    """Slot of ``key`` or -(empty slot + 1) where it would go (linear probing)."""
    mask = hk.size - 1
    i = _slot(key, shift)
    while hk[i] != -1:
        if hk[i] == key:
            return i
        i = (i + 1) & mask
    return -(i + 1)


@nb.njit(cache=True)
def table_delete(hk, hc, hd, i, shift):
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
def pair_key(a, b, n):
    return a * n + b if a <= b else b * n + a


@nb.njit(cache=True)
def table_get(hk, hc, hd, key, shift):
    """(edge count, dense flag) stored under ``key``, (0, 0) when absent."""
    j = table_find(hk, key, shift)
    if j >= 0:
        return hc[j], hd[j]
    return 0, 0


@nb.njit(cache=True)
def pair_get(st, a, b):
    """(|E_ab|, dense flag) of supernodes a and b."""
    return table_get(st.hk, st.hc, st.hd, pair_key(a, b, st.parent.size), st.sc[SHIFT])


@nb.njit(cache=True)
def _table_set(hk, hc, hd, key, cnt, dense, shift):
    j = table_find(hk, key, shift)
    if j < 0:
        j = -j - 1
        hk[j] = key
    hc[j] = cnt
    hd[j] = dense


@nb.njit(cache=True)
def _table_remove(hk, hc, hd, key, shift):
    j = table_find(hk, key, shift)
    if j >= 0:
        table_delete(hk, hc, hd, j, shift)


@nb.njit(cache=True)
def _fill_table(hk, hc, hd, keys, shift):
    for i in range(keys.size):
        j = -table_find(hk, keys[i], shift) - 1
        hk[j] = keys[i]
        hc[j] = 1
        hd[j] = 1


# ------------------------------------------------------------------------------------------------- costs


@nb.njit(cache=True)
def entropy(p):
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))


@nb.njit(cache=True)
def _pairs(sa, sb, same):
    if same:
        return sa * (sa - 1.0) / 2.0
    return sa * sb


@nb.njit(cache=True)
def pair_cost(cnt, dense, pairs, sparse_cost):
    """Data cost of a pair as it stands: entropy-coded block if a superedge, else its edges as corrections."""
    if cnt == 0:
        return 0.0
    if dense:
        return entropy(cnt / pairs) * pairs
    return sparse_cost * cnt


@nb.njit(cache=True)
def merge_cost(cnt, pairs, sup_cost, sparse_cost, mode):
    """(cost, dense) of a block of the merged supernode: the cheaper of dense and sparse encodings.

    ``mode``: MODE_L2 = SSumM, MODE_L1 = ReOne, MODE_ALL = every nonempty block a superedge (k-Gs / SAA-Gs)."""
    if cnt == 0:
        return 0.0, 0
    if mode == MODE_ALL:
        return 0.0, 1
    w = cnt / pairs
    sparse = sparse_cost * cnt
    if mode == MODE_L1 and w < 0.5:  # ReOne: a superedge of density < 1/2 only adds L1 error
        return sparse, 0
    if sup_cost > sparse:  # dense >= sup_cost: skip the entropy (same answer, cheaper)
        return sparse, 0
    dense = sup_cost + entropy(w) * pairs
    if dense <= sparse:
        return dense, 1
    return sparse, 0


@nb.njit(cache=True)
def superedge_cost(st):
    """Bits of one superedge now: 2 log2|S| + log2 w_max."""
    return 2.0 * np.log2(st.sc[NUM_S]) + np.log2(max(st.sc[MAX_W], 1))


@nb.njit(cache=True)
def size_bits(st):
    """Bits of the summary as it stands: |V| log2|S| + |P| (2 log2|S| + log2 w_max)."""
    ls = np.log2(st.sc[NUM_S])
    return st.parent.size * ls + st.sc[NUM_P] * (2.0 * ls + np.log2(max(st.sc[MAX_W], 1)))


# ------------------------------------------------------------------------------------- neighbour lists


@nb.njit(cache=True)
def find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@nb.njit(cache=True)
def compact(st, v):
    """Rewrite v's neighbour list with current, distinct supernode ids and their edge counts.

    Entries are (id, count). Counts add under merging (|E_v,AuB| = |E_vA| + |E_vB|), so entries that now
    resolve to the same supernode are summed, and the list stays exact without being touched on merges.
    """
    pool, pcnt, parent, mark, posb = st.pool, st.pcnt, st.parent, st.mark, st.posb
    st.sc[STAMP] += 1
    stamp = st.sc[STAMP]
    s0 = st.nstart[v]
    w = s0
    for i in range(s0, s0 + st.nlen[v]):
        r = find(parent, pool[i])
        if r == v:
            continue
        if mark[r] != stamp:
            mark[r] = stamp
            posb[r] = w
            pool[w] = r
            pcnt[w] = pcnt[i]
            w += 1
        else:
            pcnt[posb[r]] += pcnt[i]
    st.nlen[v] = w - s0


@nb.njit(cache=True)
def gather(st, a, b):
    """Union of a's and b's neighbours (excluding a, b) into ``ubuf``, with each one's edge count to a (``ca``,
    where ``mark_a`` holds the returned stamp) and to b (``cb``, ``mark_b``); returns (count, stamp)."""
    pool, pcnt, nstart, nlen = st.pool, st.pcnt, st.nstart, st.nlen
    mark_a, mark_b, ca, cb, ubuf = st.mark_a, st.mark_b, st.ca, st.cb, st.ubuf
    compact(st, a)
    compact(st, b)
    st.sc[STAMP] += 1
    stamp = st.sc[STAMP]
    k = 0
    for i in range(nstart[a], nstart[a] + nlen[a]):
        x = pool[i]
        if x == b:
            continue
        ca[x] = pcnt[i]
        mark_a[x] = stamp
        ubuf[k] = x
        k += 1
    for i in range(nstart[b], nstart[b] + nlen[b]):
        x = pool[i]
        if x == a:
            continue
        cb[x] = pcnt[i]
        mark_b[x] = stamp
        if mark_a[x] != stamp:
            ubuf[k] = x
            k += 1
    return k, stamp


@nb.njit(cache=True)
def _gc_pool(st):
    """Move every live neighbour list to the front of the pool (in start order), freeing the rest."""
    pool, pcnt, nstart, nlen, ncap = st.pool, st.pcnt, st.nstart, st.nlen, st.ncap
    ids = np.flatnonzero(st.alive)
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
    st.sc[USED] = w


# -------------------------------------------------------------------------------------------------- merge


@nb.njit(cache=True)
def merge(st, a, b, sparse_cost, mode):
    """Merge supernode b into a, updating the pair table, costs, counts and a's neighbour list."""
    k, stamp = gather(st, a, b)
    hk, hc, hd, sc = st.hk, st.hc, st.hd, st.sc
    pool, pcnt, nstart, nlen, ncap = st.pool, st.pcnt, st.nstart, st.nlen, st.ncap
    size, data, model = st.size, st.data, st.model
    mark_a, mark_b, ca, cb, da, ubuf = st.mark_a, st.mark_b, st.ca, st.cb, st.da, st.ubuf
    n = st.parent.size
    shift = sc[SHIFT]
    sa = float(size[a])
    sb = float(size[b])
    sm = sa + sb
    sup_cost = superedge_cost(st)
    tmp_max = 0
    for i in range(k):
        x = ubuf[i]
        sx = float(size[x])
        ea, fa, eb, fb = 0, 0, 0, 0
        if mark_a[x] == stamp:
            ea = ca[x]
            fa = hd[table_find(hk, pair_key(a, x, n), shift)]
        if mark_b[x] == stamp:
            eb = cb[x]
            jb = table_find(hk, pair_key(b, x, n), shift)
            fb = hd[jb]
            table_delete(hk, hc, hd, jb, shift)
        data[x] -= pair_cost(ea, fa, sa * sx, sparse_cost) + pair_cost(eb, fb, sb * sx, sparse_cost)
        model[x] -= fa + fb
        sc[NUM_P] -= fa + fb
        e = ea + eb
        tmp_max = max(tmp_max, e)
        _, f = merge_cost(e, sm * sx, sup_cost, sparse_cost, mode)
        sc[NUM_P] += f
        model[x] += f
        _table_set(hk, hc, hd, pair_key(a, x, n), e, f, shift)
        ca[x] = e  # the merged pair, reused below and as a's new list
        da[x] = f
    e_aa, f_aa = pair_get(st, a, a)
    e_bb, f_bb = pair_get(st, b, b)
    e_ab, f_ab = pair_get(st, a, b)
    sc[NUM_P] -= f_aa + f_bb + f_ab
    e = e_aa + e_bb + e_ab
    tmp_max = max(tmp_max, e)
    _table_remove(hk, hc, hd, pair_key(b, b, n), shift)
    _table_remove(hk, hc, hd, pair_key(a, b, n), shift)
    f_self = 0
    if e > 0:
        _, f_self = merge_cost(e, sm * (sm - 1.0) / 2.0, sup_cost, sparse_cost, mode)
        _table_set(hk, hc, hd, pair_key(a, a, n), e, f_self, shift)
        sc[NUM_P] += f_self
    if tmp_max > sc[MAX_W]:
        sc[MAX_W] = tmp_max
    # b is gone
    size[a] = size[a] + size[b]
    size[b] = 0
    st.parent[b] = a
    st.alive[b] = False
    sc[NUM_S] -= 1
    # recompute a's costs, add the new pair costs to its neighbours
    d_a = pair_cost(e, f_self, sm * (sm - 1.0) / 2.0, sparse_cost)
    m_a = f_self
    for i in range(k):
        x = ubuf[i]
        c = pair_cost(ca[x], da[x], sm * size[x], sparse_cost)
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
            if sc[USED] + want > pool.size:
                nlen[b] = 0
                _gc_pool(st)
            nstart[a] = sc[USED]
            ncap[a] = want
            sc[USED] += want
    s0 = nstart[a]
    for i in range(k):
        x = ubuf[i]
        pool[s0 + i] = x
        pcnt[s0 + i] = ca[x]
    nlen[a] = k
    nlen[b] = 0
    ncap[b] = 0


# ------------------------------------------------------------------------------------- start and finish


@nb.njit(cache=True)
def seed(value):
    """Seed numba's own random state (the kernels draw with np.random inside nopython code)."""
    np.random.seed(value)


@nb.njit(cache=True)
def labels(parent):
    """Node -> root supernode id."""
    out = np.empty(parent.size, dtype=np.int64)
    for v in range(parent.size):
        out[v] = find(parent, v)
    return out


def init_state(graph: Graph) -> MergeState:
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
    nlen = np.diff(indptr)
    sc = np.zeros(6, dtype=np.int64)
    sc[NUM_S], sc[NUM_P], sc[MAX_W], sc[USED], sc[SHIFT] = n, m, 1, indices.size, shift
    return MergeState(
        indptr=indptr,
        indices=indices,
        hk=hk,
        hc=hc,
        hd=hd,
        pool=pool,
        pcnt=pcnt,
        nstart=indptr[:-1].copy(),
        nlen=nlen,
        ncap=nlen.copy(),
        parent=np.arange(n, dtype=np.int64),
        size=np.ones(n, dtype=np.int64),
        alive=np.ones(n, dtype=np.bool_),
        data=np.zeros(n),  # every edge starts as a superedge of density 1: no correction cost
        model=nlen.copy(),  # superedges incident to each supernode
        mark=np.zeros(n, dtype=np.int64),
        posb=np.zeros(n, dtype=np.int64),
        mark_a=np.zeros(n, dtype=np.int64),
        mark_b=np.zeros(n, dtype=np.int64),
        ca=np.zeros(n, dtype=np.int64),
        cb=np.zeros(n, dtype=np.int64),
        da=np.zeros(n, dtype=np.int8),
        ubuf=np.zeros(n, dtype=np.int64),
        sc=sc,
    )
