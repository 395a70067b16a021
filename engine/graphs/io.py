"""Graph input: an undirected simple :class:`Graph` from built-ins, generators or an uploaded edge list.

Every source ends in :func:`from_edges`, which maps arbitrary ids to ``0..n-1``, drops self-loops and
duplicate (or reversed) edges, and records a notice for each thing it changed, so the app and the CLI can
tell the user exactly what was read. Sizes are capped by :data:`engine.config.LIMITS` (``max_graph_edges``,
``max_upload_bytes``); every bad input raises :class:`engine.registry.InputError` with a message naming it.

Generators are vectorised (R-MAT, SBM) so a million-edge graph is built in about a second; Barabási–Albert
and LFR use networkx and are capped lower because networkx builds them in Python.

Serving. A graph over :data:`HEAVY_EDGES` edges is heavy work: building or parsing it (and summarising it,
:mod:`engine.graphs.compare`) runs inside :func:`heavy`, which first refuses a request whose memory estimate
(:func:`graph_bytes`, :func:`parse_bytes`) the server cannot give, then takes one of the server's heavy-job
slots (:func:`engine.admission.heavy_slot`). A small graph (the karate club) never takes a slot, so it never
waits behind a two-million-edge job.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from engine.admission import check_memory, heavy_slot
from engine.cache import ResultCache
from engine.config import LIMITS
from engine.registry import InputError
from engine.results import fingerprint
from engine.uploads import gunzip_capped

__all__ = [
    "Graph",
    "BUILTINS",
    "GENERATORS",
    "GENERATOR_LABELS",
    "HEAVY_EDGES",
    "heavy",
    "graph_bytes",
    "parse_bytes",
    "max_text_bytes",
    "from_edges",
    "builtin",
    "generate",
    "rmat",
    "sbm",
    "parse_edge_list",
    "load_edge_list",
    "cached_builtin",
    "cached_generate",
    "cached_edge_list",
]

MIN_EDGES = 2  # a summary of one edge is meaningless (log2 |V| = 1 bit); ask for a real graph
MIN_NODES = 3

Progress = Callable[[float, str], None]

# --------------------------------------------------------------------------------------------- admission

HEAVY_EDGES = 50_000  # a graph with more edges is heavy work (a slot); SSumM on 50k edges takes a few seconds
GRAPH_BYTES_PER_EDGE = 200  # peak bytes per edge while a graph is built (ids, sort keys, edges)
PARSE_BYTES_PER_CHAR = 40  # peak bytes per character while an edge list is parsed (~35 measured, pandas)
TEXT_BYTES_PER_EDGE = 48  # decompressed bytes allowed per edge of the cap (a line 'u v' of two long ids)

_HELD = threading.local()


def graph_bytes(m: int) -> int:
    """Estimated peak memory of building a graph of ``m`` edges."""
    return int(m) * GRAPH_BYTES_PER_EDGE


def parse_bytes(chars: int) -> int:
    """Estimated peak memory of parsing an edge list of ``chars`` characters."""
    return int(chars) * PARSE_BYTES_PER_CHAR


def max_text_bytes() -> int:
    """Most bytes an edge list may hold once decompressed: the upload cap, or what the edge cap needs."""
    return max(LIMITS.max_upload_bytes, TEXT_BYTES_PER_EDGE * LIMITS.max_graph_edges)


@contextmanager
def heavy(
    m: int, what: str, *, memory: int = 0, expect_s: float = 60.0, progress: Progress | None = None
) -> Iterator[None]:
    """Run the body as heavy work when the graph has more than :data:`HEAVY_EDGES` edges (``m``).

    For a big graph: refuse at once when ``memory`` (estimated bytes) is more than the server can give
    (:func:`engine.admission.check_memory`), then hold one heavy-job slot for the body (waiting for one,
    telling ``progress``). A small graph runs at once, without either. Re-entrant within a thread: a
    comparison holds one slot for all its runs, and the summaries inside it do not ask for a second.
    """
    if m <= HEAVY_EDGES or getattr(_HELD, "on", False):
        yield
        return
    if memory:
        check_memory(memory, what)
    with heavy_slot(what, expect_s=expect_s, progress=progress):
        _HELD.on = True
        try:
            yield
        finally:
            _HELD.on = False


@dataclass
class Graph:
    """An undirected simple graph on nodes ``0..n-1``.

    Attributes
    ----------
    n : int
        Number of nodes.
    edges : ndarray, shape [m, 2], int64
        Each undirected edge once, ``edges[:, 0] < edges[:, 1]``, sorted.
    name : str
        Where it came from (``"karate"``, ``"rmat(m=100000, seed=0)"``, the file name).
    labels : ndarray [n] of str, or None
        Original node ids when they were not ``0..n-1``.
    notices : list of str
        What the loader changed (self-loops, duplicates, ignored weights, mapped ids).
    """

    n: int
    edges: np.ndarray
    name: str = "graph"
    labels: np.ndarray | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def m(self) -> int:
        return int(self.edges.shape[0])

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint("graph", self.n, self.edges)

    @cached_property
    def adjacency(self) -> sp.csr_matrix:
        """Symmetric 0/1 CSR adjacency, shape [n, n], int8."""
        u, v = self.edges[:, 0], self.edges[:, 1]
        data = np.ones(2 * self.m, dtype=np.int8)
        a = sp.csr_matrix((data, (np.r_[u, v], np.r_[v, u])), shape=(self.n, self.n))
        a.sort_indices()
        return a

    def degrees(self) -> np.ndarray:
        return np.bincount(self.edges.ravel(), minlength=self.n)

    def label(self, i: int) -> str:
        return str(self.labels[i]) if self.labels is not None else str(i)


def from_edges(u, v, *, n: int | None = None, name: str = "graph", notices: list[str] | None = None) -> Graph:
    """Build a :class:`Graph` from two id arrays (any hashable ids), undirected and simple.

    Ids that are not already ``0..n-1`` integers are mapped (``labels`` keeps the originals). Self-loops and
    duplicate or reversed edges are removed, each with a notice. Raises :class:`InputError` for graphs that
    are too small or over ``LIMITS.max_graph_edges``.
    """
    notices = list(notices or [])
    u = np.asarray(u)
    v = np.asarray(v)
    if u.shape != v.shape or u.ndim != 1:
        raise InputError("edge endpoints must be two 1-D arrays of the same length")
    if u.size > 4 * LIMITS.max_graph_edges:
        raise InputError(f"{u.size:,} edges is over the cap of {LIMITS.max_graph_edges:,} edges")
    labels = None
    if u.dtype.kind in "iu" and (n is not None or u.size == 0 or min(u.min(), v.min()) >= 0):
        u = u.astype(np.int64)
        v = v.astype(np.int64)
        if n is None:
            top = int(max(u.max(), v.max())) if u.size else -1
            if top < 8 * (u.size + v.size) + 1024:  # dense ids: relabel with a lookup table, no sort
                present = np.zeros(top + 1, dtype=bool)
                present[u] = True
                present[v] = True
                ids = np.flatnonzero(present)
                remap = np.cumsum(present) - 1
                u, v = remap[u], remap[v]
            else:
                ids, inv = np.unique(np.r_[u, v], return_inverse=True)
                u, v = inv[: u.size], inv[u.size :]
            if ids.size and ids[-1] != ids.size - 1:
                labels = ids.astype(str)
                notices.append(f"node ids relabelled to 0..{ids.size - 1} (the ids were not contiguous)")
            n = int(ids.size)
    else:
        ids, inv = np.unique(np.r_[u.astype(str), v.astype(str)], return_inverse=True)
        labels = ids
        n = int(ids.size)
        u, v = inv[: u.size].astype(np.int64), inv[u.size :].astype(np.int64)
        notices.append(f"{n:,} non-integer or negative node ids mapped to 0..{n - 1}")
    loops = u == v
    if loops.any():
        notices.append(f"{int(loops.sum()):,} self-loop(s) removed")
        u, v = u[~loops], v[~loops]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    key = np.sort(lo * np.int64(n) + hi)
    key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
    if key.size < lo.size:
        notices.append(f"{lo.size - key.size:,} duplicate or reversed edge(s) removed (graph is undirected)")
    edges = np.stack([key // n, key % n], axis=1).astype(np.int64)
    if edges.shape[0] > LIMITS.max_graph_edges:
        raise InputError(
            f"the graph has {edges.shape[0]:,} edges, over the cap of {LIMITS.max_graph_edges:,} "
            "(REDEX_MAX_GRAPH_EDGES raises it)"
        )
    if edges.shape[0] < MIN_EDGES or n < MIN_NODES:
        raise InputError(
            f"the graph has {n} node(s) and {edges.shape[0]} edge(s) after cleaning; summarising needs at "
            f"least {MIN_NODES} nodes and {MIN_EDGES} edges"
        )
    deg = np.bincount(edges.ravel(), minlength=n)
    if (deg == 0).any():
        # Nodes that only had self-loops: keep the graph simple and connected to its edge list.
        keep = np.flatnonzero(deg > 0)
        remap = np.full(n, -1, dtype=np.int64)
        remap[keep] = np.arange(keep.size)
        edges = remap[edges]
        labels = (labels if labels is not None else np.arange(n).astype(str))[keep]
        notices.append(f"{n - keep.size:,} node(s) without edges dropped")
        n = int(keep.size)
    return Graph(n=int(n), edges=edges, name=name, labels=labels, notices=notices)


# --------------------------------------------------------------------------------------------- built-ins


def _nx_graph(g, name: str) -> Graph:
    nodes = list(g.nodes())
    index = {x: i for i, x in enumerate(nodes)}
    e = np.array([(index[a], index[b]) for a, b in g.edges()], dtype=np.int64).reshape(-1, 2)
    graph = from_edges(e[:, 0], e[:, 1], n=len(nodes), name=name)
    graph.labels = np.array([str(x) for x in nodes])
    return graph


def _builtin_nx(name: str):
    import networkx as nx

    return {
        "karate": nx.karate_club_graph,
        "les_miserables": nx.les_miserables_graph,
        "florentine_families": nx.florentine_families_graph,
        "davis_southern_women": nx.davis_southern_women_graph,
        "relaxed_caveman": lambda: nx.relaxed_caveman_graph(12, 8, 0.1, seed=7),
    }[name]()


BUILTINS: dict[str, str] = {
    "karate": "Zachary's karate club (34 nodes, 78 edges)",
    "les_miserables": "Les Misérables co-appearances (77 nodes, 254 edges)",
    "florentine_families": "Florentine families marriages (15 nodes, 20 edges)",
    "davis_southern_women": "Davis Southern women, bipartite (32 nodes, 89 edges)",
    "relaxed_caveman": "relaxed caveman, 12 caves of 8 (seed 7), clear communities",
}


def builtin(name: str) -> Graph:
    """One of :data:`BUILTINS` (networkx's real graphs, offline)."""
    if name not in BUILTINS:
        raise InputError(f"unknown built-in graph {name!r}; choose one of {sorted(BUILTINS)}")
    return _nx_graph(_builtin_nx(name), name)


# -------------------------------------------------------------------------------------------- generators


def rmat(
    m: int,
    *,
    seed: int = 0,
    a: float = 0.57,
    b: float = 0.19,
    c: float = 0.19,
    progress: Progress | None = None,
) -> Graph:
    """R-MAT graph (Chakrabarti, Zhan & Faloutsos, SDM 2004) with about ``m`` distinct undirected edges.

    Vectorised: each of ``log2 n`` levels picks a quadrant for every edge at once; ``n = m / 8`` rounded to a
    power of two (average degree about 16 before deduplication). Oversamples until ``m`` distinct edges.
    ``progress(frac, desc)`` is called once per level (it does not touch the random stream).
    """
    m = int(m)
    rng = np.random.default_rng(seed)
    scale = max(4, int(np.ceil(np.log2(max(m / 8, 16)))))
    n = 1 << scale
    p = np.array([a, b, c, 1 - a - b - c])
    keys = np.empty(0, dtype=np.int64)
    want = m
    for _ in range(8):
        k = int(want * 1.3) + 64
        u = np.zeros(k, dtype=np.int64)
        v = np.zeros(k, dtype=np.int64)
        for level in range(scale):
            if progress is not None:
                progress(min(0.9, level / scale), f"R-MAT level {level + 1} of {scale}")
            q = rng.choice(4, size=k, p=p)
            u = (u << 1) | (q >> 1)
            v = (v << 1) | (q & 1)
        # permute ids so degree is not correlated with id
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        ok = lo != hi
        keys = np.unique(np.r_[keys, lo[ok] * n + hi[ok]])
        if keys.size >= m:
            break
        want = m - keys.size
    keys = rng.permutation(keys)[:m]
    perm = rng.permutation(n)
    u, v = perm[keys // n], perm[keys % n]
    return from_edges(u, v, name=f"rmat(m={m}, seed={seed})")


def sbm(
    m: int, *, blocks: int = 20, p_in_share: float = 0.8, seed: int = 0, progress: Progress | None = None
) -> Graph:
    """Stochastic block model with about ``m`` edges: ``blocks`` equal blocks, a share ``p_in_share`` of the
    edges inside blocks. Vectorised: endpoints are drawn uniformly per block pair, then deduplicated."""
    m = int(m)
    rng = np.random.default_rng(seed)
    n = max(blocks * 4, int(m / 8))
    size = n // blocks
    n = size * blocks
    keys = np.empty(0, dtype=np.int64)
    want = m
    for round_ in range(8):
        if progress is not None:
            progress(min(0.9, round_ / 4), f"SBM sampling round {round_ + 1}")
        k = int(want * 1.1) + 64
        inside = rng.random(k) < p_in_share
        bu = rng.integers(0, blocks, k)
        bv = np.where(inside, bu, (bu + rng.integers(1, blocks, k)) % blocks)
        u = bu * size + rng.integers(0, size, k)
        v = bv * size + rng.integers(0, size, k)
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        ok = lo != hi
        keys = np.unique(np.r_[keys, lo[ok] * n + hi[ok]])
        if keys.size >= m:
            break
        want = m - keys.size
    keys = rng.permutation(keys)[:m]
    return from_edges(keys // n, keys % n, name=f"sbm(m={m}, blocks={blocks}, seed={seed})")


def _ba(m: int, *, seed: int = 0) -> Graph:
    import networkx as nx

    k = 4
    n = max(k + 2, m // k)
    return _nx_graph(nx.barabasi_albert_graph(n, k, seed=seed), f"barabasi_albert(n={n}, k={k}, seed={seed})")


def _lfr(m: int, *, seed: int = 0) -> Graph:
    """LFR benchmark via networkx (tau1 = 3, tau2 = 1.5, mu = 0.1, average degree 5). networkx's generator
    often fails to converge for a given seed, so up to five consecutive seeds are tried (deterministically)."""
    import networkx as nx

    n = max(250, int(m / 2.15))
    for s in range(seed, seed + 5):
        try:
            g = nx.LFR_benchmark_graph(
                n, 3, 1.5, 0.1, average_degree=5, min_community=20, max_community=max(50, n // 10), seed=s,
                max_iters=1000,
            )  # fmt: skip
        except nx.ExceededMaxIterations:
            continue
        return _nx_graph(nx.Graph(g), f"lfr(n={n}, mu=0.1, seed={s})")
    raise InputError(
        f"the LFR generator did not converge for n={n} (seeds {seed}..{seed + 4}); try another size"
    )


# name -> (function, largest edge count allowed, description)
GENERATORS: dict[str, tuple] = {
    "rmat": (rmat, None, "R-MAT (a, b, c) = (0.57, 0.19, 0.19), skewed degrees"),
    "sbm": (sbm, None, "stochastic block model, 20 blocks, 80% of edges inside blocks"),
    "barabasi_albert": (_ba, 200_000, "Barabási–Albert preferential attachment, 4 edges per new node"),
    "lfr": (_lfr, 25_000, "LFR benchmark (tau1 = 3, tau2 = 1.5, mu = 0.1), planted communities"),
}
# short names for a dropdown (the descriptions above say the parameters)
GENERATOR_LABELS: dict[str, str] = {
    "rmat": "R-MAT (skewed degrees)",
    "sbm": "Block model (20 blocks)",
    "barabasi_albert": "Barabási–Albert",
    "lfr": "LFR (planted communities)",
}


def generator_cap(name: str) -> int:
    """Most edges generator ``name`` takes (its own cap, within ``LIMITS.max_graph_edges``)."""
    return min(GENERATORS[name][1] or LIMITS.max_graph_edges, LIMITS.max_graph_edges)


def check_generator(name: str, m) -> int:
    """The edge count ``m`` as an int, or :class:`InputError` naming what is wrong with ``name`` or ``m``."""
    if not isinstance(name, str) or name not in GENERATORS:
        raise InputError(f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    try:
        f = float(m)
    except (TypeError, ValueError):
        raise InputError(f"edge count must be a whole number, got {m!r}") from None
    if f != f or not f.is_integer():
        raise InputError(f"edge count must be a whole number, got {m!r}")
    m = int(f)
    cap = generator_cap(name)
    if m < 10 or m > cap:
        raise InputError(f"generator {name!r} takes 10 to {cap:,} edges, got {m:,}")
    return m


def generate(name: str, m: int, *, seed: int = 0, progress: Progress | None = None) -> Graph:
    """Generate about ``m`` edges with generator ``name`` (see :data:`GENERATORS`)."""
    m = check_generator(name, m)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise InputError(f"generator seed must be a whole number in [0, 2**32), got {seed!r}")
    fn = GENERATORS[name][0]
    graph = fn(m, seed=int(seed), progress=progress) if fn in (rmat, sbm) else fn(m, seed=int(seed))
    graph.notices = []  # relabelling a generator's ids is not news to the user
    return graph


# ----------------------------------------------------------------------------------------- edge lists


def _decode(data: bytes, name: str, notices: list[str]) -> str:
    if data[:2] == b"\x1f\x8b":
        # streamed, so a gzip bomb is refused at the cap instead of being inflated whole first
        data = gunzip_capped(data, max_bytes=max_text_bytes(), what=name)
    if not data.strip():
        raise InputError(f"{name}: the file is empty; expected an edge list, one 'u v' pair per line")
    head = data[:65536]
    if b"\x00" in head or sum(ch < 9 or 13 < ch < 32 for ch in head) > len(head) // 100:
        raise InputError(f"{name}: this is a binary file, not a text edge list ('u v' per line)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        notices.append(f"the file is not UTF-8 (byte {e.start:,}); it was read as Latin-1")
        return data.decode("latin-1")  # decodes any byte: ids stay distinct, names may look odd


def _parse_numeric(pd, text: str, names: list, name: str, notices: list[str]) -> Graph | None:
    """The common case (non-negative integer ids, optional weights) without per-cell string objects;
    ``None`` sends anything else (headers, string or negative ids, odd rows) to the general parser."""
    try:
        df = pd.read_csv(
            io.StringIO(text), sep=r"\s+", header=None, names=names, comment="#", dtype=np.float64
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    short = df.iloc[:, 1].isna().to_numpy()
    if df.shape[0] == 0 or short.any():  # a missing id or a NaN written out: the general parser tells which
        return None
    nu, nv = df.iloc[:, 0].to_numpy(), df.iloc[:, 1].to_numpy()
    ok = np.isfinite(nu).all() and np.isfinite(nv).all() and min(nu.min(), nv.min()) >= 0
    if not (ok and (nu % 1 == 0).all() and (nv % 1 == 0).all() and max(nu.max(), nv.max()) < 2**53):
        return None
    notices = list(notices)
    if df.shape[1] == 3 and df.iloc[:, 2].notna().any():
        notices.append("third column (weights) ignored: SSumM summarises unweighted graphs")
    return from_edges(nu.astype(np.int64), nv.astype(np.int64), name=name, notices=notices)


def _refuse_nan_ids(name: str, nu: np.ndarray, nv: np.ndarray, u_raw: np.ndarray, v_raw: np.ndarray) -> None:
    """Refuse ids that read as NaN or infinity when the other ids are numbers (a broken export, not names)."""
    both = np.r_[nu, nv]
    bad = np.isnan(both) & np.isin(np.char.lower(np.r_[u_raw, v_raw].astype(str)), ("nan", "+nan", "-nan"))
    bad |= np.isinf(both)
    if bad.any() and np.isfinite(both).sum() >= both.size / 2:
        i = int(np.flatnonzero(bad)[0])
        raw = np.r_[u_raw, v_raw][i]
        raise InputError(
            f"{name}: edge {i % nu.size + 1:,} has node id {raw!r}, which reads as NaN or infinity; "
            f"node ids are whole numbers or names ({int(bad.sum()):,} such id(s) in the file)"
        )


def parse_edge_list(data: bytes | str, *, name: str = "upload", progress: Progress | None = None) -> Graph:
    """Parse an edge list: one edge per line, ``u v`` separated by spaces, tabs or commas.

    Lines starting with ``#`` or ``%`` are comments; a header line of non-numeric column names is skipped
    when the rest is numeric; a third (weight) column is ignored with a notice; string ids are mapped. A
    square 0/1 table (an adjacency matrix) is recognised and refused with a message saying how to convert it.
    ``.gz`` content is decompressed (streamed, within :func:`max_text_bytes`). Ids that read as NaN or infinity
    among numeric ids are refused. A file of more than :data:`HEAVY_EDGES` lines is parsed as heavy work
    (:func:`heavy`: memory estimate, then a slot).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > LIMITS.max_upload_bytes:
        raise InputError(f"{name}: {len(data):,} bytes is over the upload cap of {LIMITS.max_upload_bytes:,}")
    notices: list[str] = []
    text = _decode(data, name, notices)
    del data
    n_lines = text.count("\n") + 1
    if n_lines > 2 * LIMITS.max_graph_edges + 10:
        raise InputError(f"{name}: {n_lines:,} lines is over the cap of {LIMITS.max_graph_edges:,} edges")
    what = f"parsing {name} ({n_lines:,} lines)"
    with heavy(n_lines, what, memory=parse_bytes(len(text)), expect_s=5 + n_lines / 2e5, progress=progress):
        if progress is not None:
            progress(0.1, what)
        return _parse_text(text, name, notices, progress or (lambda frac, desc: None))


def _skip_matrix_market_size(text: str, notices: list[str]) -> str:
    """A Matrix Market file's first data line is its size ('rows cols entries'), not an edge: drop it (its
    numbers are not trusted either: the entries that follow are what is read)."""
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end].strip()
        if line and not line.startswith("%"):
            notices.append(f"Matrix Market size line {line[:60]!r} skipped (the entries themselves are read)")
            return text[:pos] + text[end + 1 :]
        pos = end + 1
    return text


def _parse_text(text: str, name: str, notices: list[str], progress: Progress) -> Graph:
    import pandas as pd

    if text.startswith("%%MatrixMarket"):
        text = _skip_matrix_market_size(text, notices)
    text = text.replace(",", " ").replace(";", " ").replace("\n%", "\n#")
    if text.startswith("%"):
        text = "#" + text[1:]
    sample = [ln.split() for ln in text[:200_000].splitlines()[:500] if ln.strip() and ln.lstrip()[0] != "#"]
    ncols = max((len(t) for t in sample), default=2)
    names = list(range(max(ncols, 2)))
    if ncols <= 3:  # fast path: plain numeric ids, parsed straight to floats by pandas' C reader
        fast = _parse_numeric(pd, text, names, name, notices)
        if fast is not None:
            return fast
    progress(0.25, f"{name}: ids are not all plain numbers; reading them as names")
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=r"\s+",
            header=None,
            names=names,
            comment="#",
            dtype=str,
            engine="c",
            on_bad_lines="error",
            keep_default_na=False,  # 'nan', 'NA', 'null' are ids (names, or refused below), not missing cells
            na_values=[""],
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{name}: no edges found (only comments or blank lines)") from None
    except pd.errors.ParserError as e:
        raise InputError(f"{name}: rows have different numbers of columns ({str(e).strip()[:120]})") from None
    if df.shape[0] == 0:
        raise InputError(f"{name}: no edges found (only comments or blank lines)")
    progress(0.4, f"{name}: {df.shape[0]:,} rows read; checking the ids")
    notices = list(notices)
    short = df.iloc[:, 1].isna().to_numpy()
    if short.all():
        raise InputError(f"{name}: each line needs two node ids ('u v'); found one column")
    if short.any():
        notices.append(f"{int(short.sum()):,} line(s) with fewer than two ids skipped")
        df = df[~short]
    if df.shape[1] > 2 and df.iloc[:, 2:].isna().all().all():
        df = df.iloc[:, :2]
    numeric = df.apply(pd.to_numeric, errors="coerce")
    if df.shape[0] > 1 and numeric.iloc[0].isna().all() and numeric.iloc[1:, :2].notna().all().all():
        notices.append(f"header line {' '.join(df.iloc[0].astype(str))!r} skipped")
        df, numeric = df.iloc[1:], numeric.iloc[1:]
    if df.shape[1] > 3:
        vals = numeric.to_numpy()
        if not np.isnan(vals).any() and np.isin(vals, (0, 1)).all() and abs(df.shape[0] - df.shape[1]) <= 1:
            raise InputError(
                f"{name}: this looks like a {df.shape[0]}x{df.shape[1]} adjacency matrix, not an edge list; "
                "write one 'u v' line per nonzero entry (e.g. numpy: np.savetxt(f, np.argwhere(A), fmt='%d'))"
            )
        raise InputError(f"{name}: expected 2 or 3 columns (u v [weight]), found {df.shape[1]}")
    if df.shape[1] == 3:
        notices.append("third column (weights) ignored: SSumM summarises unweighted graphs")
    u_raw, v_raw = df.iloc[:, 0].to_numpy(), df.iloc[:, 1].to_numpy()
    nu, nv = numeric.iloc[:, 0].to_numpy(), numeric.iloc[:, 1].to_numpy()
    _refuse_nan_ids(name, nu, nv, u_raw, v_raw)
    progress(0.7, f"{name}: mapping node ids")
    integer = (
        not np.isnan(nu).any() and not np.isnan(nv).any() and (nu % 1 == 0).all() and (nv % 1 == 0).all()
    )
    if integer and min(nu.min(), nv.min()) >= 0 and max(nu.max(), nv.max()) < 2**62:
        u, v = nu.astype(np.int64), nv.astype(np.int64)
    else:
        u, v = u_raw.astype(str), v_raw.astype(str)
    return from_edges(u, v, name=name, notices=notices)


def load_edge_list(path: str | Path, *, progress: Progress | None = None) -> Graph:
    """Read and parse an edge-list file (see :func:`parse_edge_list`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    size = path.stat().st_size
    if size > LIMITS.max_upload_bytes:
        raise InputError(f"{path.name}: {size:,} bytes is over the upload cap of {LIMITS.max_upload_bytes:,}")
    return parse_edge_list(path.read_bytes(), name=path.name, progress=progress)


# ------------------------------------------------------------------------------------------------- cached

_graphs = ResultCache("graph-input", maxsize=6)  # memory only: a generated 1M-edge graph is built once


def cached_builtin(name: str) -> Graph:
    """:func:`builtin`, built once per name (the app asks for the same graph on every click)."""
    return _graphs.get_or_compute(("builtin", name), lambda: builtin(name))


def cached_generate(name: str, m: int, *, seed: int = 0, progress: Progress | None = None) -> Graph:
    """:func:`generate`, built once per (generator, edges, seed); a big one is built as heavy work."""
    m = check_generator(name, m)

    def build() -> Graph:
        what = f"generating {name} with {m:,} edges"
        with heavy(m, what, memory=graph_bytes(m), expect_s=2 + m / 2e5, progress=progress):
            return generate(name, m, seed=seed, progress=progress)

    return _graphs.get_or_compute(("generate", name, m, seed), build)


def cached_edge_list(path: str | Path, *, progress: Progress | None = None) -> Graph:
    """:func:`load_edge_list`, parsed once per file content (an upload is keyed by its bytes, not its name)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("the uploaded file could not be read; upload it again")
    size = path.stat().st_size
    if size > LIMITS.max_upload_bytes:
        raise InputError(f"{path.name} is {size:,} bytes, over the cap of {LIMITS.max_upload_bytes:,}")
    data = path.read_bytes()
    return _graphs.get_or_compute(
        ("edges", fingerprint(data)), lambda: parse_edge_list(data, name=path.name, progress=progress)
    )
