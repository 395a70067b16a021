"""Information flow through attention: rollout, attention flow, per-layer entropy and relay tokens.

Abnar & Zuidema, "Quantifying Attention Flow in Transformers" (ACL 2020, arXiv:2005.00928), official code
samiraabnar/attention_flow. Both methods model the residual connection by mixing each layer's head-averaged
attention ``A_l`` with the identity and re-normalising the rows:

    A_hat_l = normalise_rows(0.5 * A_l + 0.5 * I)                                       # [T, T]

- **Attention rollout**: ``R_l = A_hat_l @ R_{l-1}``, ``R_0 = I``; ``R_L[o, j]`` is how much output token ``o``
  draws on input token ``j``.
- **Attention flow**: the layered graph with a node per (layer, token) and an edge ``(l-1, j) -> (l, i)`` of
  capacity ``A_hat_l[i, j]``; the importance of input ``j`` for output ``o`` is the value of the maximum flow
  from ``(0, j)`` to ``(L, o)``. :func:`attention_flow` solves it with ``scipy.sparse.csgraph.maximum_flow``
  (Dinic, integer capacities at 1e-6 resolution); :func:`_reference_attention_flow` solves it with networkx as
  the official code does, for the parity test. Deviation: with ``top_k`` set, each node keeps only its
  ``top_k`` strongest incoming edges (and its own residual edge), which bounds the cost; the values are then
  lower bounds of the exact flows. ``top_k=None`` is the exact method.

Beyond the paper (definitions stated here, since no paper fixes them):

- **Edge flow** (what the graph draws): rollout decomposed over edges. With ``b_L = e_o`` and
  ``b_{l-1} = b_l @ A_hat_l``, node ``(l, t)`` carries ``b_l[t]`` of the output and edge ``(l-1, j) -> (l, i)``
  carries ``b_l[i] * A_hat_l[i, j]``; the edges into a node sum to its share, the edges out of it to its
  share one layer down.
- **Relay score** of node ``(l, t)``: ``b_l[t] * (1 - R_l[t, t])``, the share of the output that passes
  through the node times the share of the node's content that came from *other* input tokens. FlowCut
  (Tong et al., 2025, arXiv:2505.19536) observes that the CLS token acts as such a relay: patches are read into
  CLS, which other tokens then read.
- **Attention entropy** per layer: the Shannon entropy (bits) of attention rows, mean over heads and query
  tokens, and separately for the output token's row. Low entropy = concentrated attention, where FlowCut
  sees redundancy emerge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engine.config import LIMITS
from engine.registry import InputError, Paper, Param, Settings, register
from engine.results import Provenance, Result, Stopwatch, fingerprint

__all__ = [
    "ABNAR_PAPER",
    "FLOW_PARAMS",
    "FlowGraph",
    "augment",
    "rollout",
    "attention_flow",
    "edge_flow",
    "relay_scores",
    "attention_entropy",
    "run_rollout",
    "run_attention_flow",
]

ABNAR_PAPER = Paper("Quantifying Attention Flow in Transformers", 2020, "arXiv:2005.00928",
                    "https://arxiv.org/abs/2005.00928", ("Abnar, Samira", "Zuidema, Willem"))  # fmt: skip
_SCALE = 1_000_000  # capacity resolution of the integer max-flow

# The family's parameters, declared once: each method takes the ones it uses, and FLOW_PARAMS (display order) is
# what the tab's controls and the CLI's flags are built from.
RESIDUAL = Param("residual", 0.5, low=0.0, high=1.0, step=0.05, label="Residual weight (paper: 0.5)",
                 help="weight of the identity (residual) in A_hat")  # fmt: skip
TOP_K = Param("top_k", 16, low=1, high=4096, label="Attention flow: in-edges kept per node",
              help="incoming edges kept per node (bounds the cost)")  # fmt: skip
# The one bound on the drawn graph: the engine keeps at most this many edges and the figure draws every kept one.
TOP_EDGES = Param("top_edges", 300, low=10, high=LIMITS.max_drawn_elements, step=10,
                  label="Edges kept (and drawn) for the graph",
                  help="strongest cross-token edges kept for the graph; the figure draws all of them")  # fmt: skip
FLOW_PARAMS = Settings("flow graph", (RESIDUAL, TOP_K, TOP_EDGES))


def _check(attn: np.ndarray) -> np.ndarray:
    attn = np.asarray(attn, dtype=np.float64)
    if attn.ndim == 4:  # [L, H, T, T] -> head mean
        attn = attn.mean(1)
    if attn.ndim != 3 or attn.shape[1] != attn.shape[2]:
        raise InputError(f"attention must be [L, T, T] or [L, H, T, T], got shape {attn.shape}")
    if not np.isfinite(attn).all():
        raise InputError("attention contains NaN or infinite values")
    if (attn < -1e-6).any():
        raise InputError("attention has negative weights")
    return attn


def augment(attn: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """``A_hat`` [L, T, T]: ``(1 - residual) * A + residual * I`` with rows re-normalised."""
    a = _check(attn)
    if not 0.0 <= residual <= 1.0:
        raise InputError(f"residual must be in [0, 1], got {residual}")
    a = (1.0 - residual) * a + residual * np.eye(a.shape[-1])[None]
    return a / np.maximum(a.sum(-1, keepdims=True), 1e-12)


def rollout(attn: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Cumulative rollout ``R`` [L+1, T, T] with ``R[0] = I`` and ``R[l] = A_hat_l @ R[l-1]``."""
    a = augment(attn, residual)
    L, T, _ = a.shape
    out = np.empty((L + 1, T, T))
    out[0] = np.eye(T)
    for layer in range(L):  # L matrix products (layers, not tokens)
        out[layer + 1] = a[layer] @ out[layer]
    return out


def _target(output, T: int) -> np.ndarray:
    """Weights [T] of the output node(s): one token index, or weights over several tokens (summing to 1)."""
    if np.ndim(output) == 0:
        if not 0 <= int(output) < T:
            raise InputError(f"output token {output} is outside 0..{T - 1}")
        w = np.zeros(T)
        w[int(output)] = 1.0
        return w
    w = np.asarray(output, dtype=np.float64).reshape(-1)
    if w.shape != (T,) or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"output weights must be {T} non-negative numbers with a positive sum")
    return w / w.sum()


def edge_flow(a_hat: np.ndarray, output) -> tuple[np.ndarray, np.ndarray]:
    """Node shares ``b`` [L+1, T] and edge flows ``E`` [L, T, T] (``E[l-1, i, j]``: edge (l-1, j) -> (l, i)).

    ``output``: a token index, or weights [T] over several output tokens (e.g. all patches)."""
    L, T, _ = a_hat.shape
    b = np.zeros((L + 1, T))
    b[L] = _target(output, T)
    for layer in range(L, 0, -1):
        b[layer - 1] = b[layer] @ a_hat[layer - 1]
    return b, b[1:, :, None] * a_hat


def relay_scores(r: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Relay score [L+1, T] from rollout ``r`` [L+1, T, T] and node shares ``b`` [L+1, T]."""
    own = np.diagonal(r, axis1=1, axis2=2)  # [L+1, T]: R_l[t, t]
    return b * (1.0 - own)


def attention_entropy(attn: np.ndarray, query=None) -> dict[str, np.ndarray]:
    """Row entropy in bits: ``mean`` [L] over heads and queries, ``per_head`` [L, H], ``query`` [L] (one row).

    ``attn`` is [L, H, T, T] (or [L, T, T], one head). Rows of a causal model have zeros above the diagonal,
    which contribute nothing (0 log 0 = 0).
    """
    a = np.asarray(attn, dtype=np.float32)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise InputError(f"attention must be [L, H, T, T], got shape {a.shape}")
    p = np.clip(a, 0.0, None)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-12)
    h = -(p * np.log2(np.where(p > 0, p, 1.0))).sum(-1)  # [L, H, T]
    out = {"mean": h.mean((1, 2)), "per_head": h.mean(2)}
    if query is not None:  # one token index, or weights over tokens
        w = np.asarray(query, dtype=np.float64)
        out["query"] = h[:, :, int(query)].mean(1) if w.ndim == 0 else (h.mean(1) * w).sum(-1) / w.sum()
    return out


def attention_flow(
    attn: np.ndarray,
    *,
    output: int = 0,
    residual: float = 0.5,
    top_k: int | None = 16,
    sources=None,
    progress=None,
) -> np.ndarray:
    """Max-flow value [T] from each input token ``(0, j)`` to the output node ``(L, output)``.

    ``sources``: token indices to solve for (others are NaN); default all. Dinic's algorithm on integer
    capacities (``A_hat * 1e6``), so values carry an error of about ``1e-6`` per edge on a cut.
    ``progress(frac, desc)`` is called about every half second of solving (it may raise to stop the loop).
    """  # fmt: skip
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    a = augment(attn, residual)
    L, T, _ = a.shape
    w = _target(output, T)
    cap = _sparsify(a, top_k)
    rows, cols, vals = [], [], []
    for layer in range(L):  # edges (layer, j) -> (layer + 1, i): vectorised per layer
        i, j = np.nonzero(cap[layer])
        rows.append(layer * T + j)
        cols.append((layer + 1) * T + i)
        vals.append(np.maximum(np.round(cap[layer][i, j] * _SCALE), 0).astype(np.int32))
    n = (
        L + 1
    ) * T + 1  # the last node is a super-sink fed by the output token(s) in proportion to their weight
    sink = n - 1
    tgt = np.nonzero(w)[0]
    rows.append(L * T + tgt)
    cols.append(np.full(len(tgt), sink))
    vals.append(np.maximum(np.round(w[tgt] * _SCALE), 1).astype(np.int32))
    graph = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    graph.sum_duplicates()
    srcs = list(range(T)) if sources is None else [int(s) for s in sources]
    out = np.full(T, np.nan)
    tick = time.monotonic()
    for n, s in enumerate(srcs):  # one max-flow per source token, as in the paper
        out[s] = maximum_flow(graph, s, sink, method="dinic").flow_value / _SCALE
        if progress is not None and time.monotonic() - tick > 0.5:
            progress((n + 1) / len(srcs), f"max-flow: {n + 1} of {len(srcs)} input tokens")
            tick = time.monotonic()
    return out


def _sparsify(a: np.ndarray, top_k: int | None) -> np.ndarray:
    if top_k is None or top_k >= a.shape[-1]:
        return a
    if top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    thresh = -np.partition(-a, top_k - 1, axis=-1)[..., top_k - 1 : top_k]  # k-th largest per row
    keep = a >= thresh
    keep |= np.eye(a.shape[-1], dtype=bool)[None]  # always keep the residual edge
    return np.where(keep, a, 0.0)


def _reference_attention_flow(attn: np.ndarray, *, output: int = 0, residual: float = 0.5) -> np.ndarray:
    """The official code's procedure: networkx max-flow on the full layered graph (float capacities)."""
    import networkx as nx

    a = augment(attn, residual)
    L, T, _ = a.shape
    g = nx.DiGraph()
    for layer in range(L):
        for i in range(T):
            for j in range(T):
                if a[layer, i, j] > 0:
                    g.add_edge((layer, j), (layer + 1, i), capacity=float(a[layer, i, j]))
    return np.array([nx.maximum_flow_value(g, (0, j), (L, output)) for j in range(T)])


# ------------------------------------------------------------------------------------------------- result
@dataclass
class FlowGraph(Result):
    method: str = ""
    n_layers: int = 0
    n_tokens: int = 0
    output: int = 0  # token whose inputs are traced (CLS, or the VLM's last token); -1: weights over tokens
    importance: np.ndarray = field(
        default_factory=lambda: np.zeros(0)
    )  # [T] input token importance, sums to 1
    node_share: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [L+1, T] b_l
    relay: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [L+1, T]
    edges: list = field(default_factory=list)  # (layer_from, src, dst, weight), strongest cross-token first
    n_cross_edges: int = 0  # cross-token edges carrying flow (> 0), of which ``edges`` holds the strongest
    entropy: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [L] bits, mean over heads and queries
    entropy_query: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [L] bits, the output's row
    entropy_per_head: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [L, H]
    relays: list = field(default_factory=list)  # top relay nodes: {"layer", "token", "score"}
    extra: dict = field(
        default_factory=dict, repr=False
    )  # set by engine.flow.run: labels, grid, image, answer

    def tables(self):
        return {
            "edges": [{"layer": e[0], "source": e[1], "target": e[2], "weight": e[3]} for e in self.edges],
            "entropy": [
                {"layer": i + 1, "entropy_bits": float(h), "output_entropy_bits": float(q)}
                for i, (h, q) in enumerate(zip(self.entropy, self.entropy_query, strict=True))
            ],
        }


def _top_edges(e: np.ndarray, n: int) -> tuple[list, int]:
    """The ``n`` strongest cross-token edges (a token's edge to itself is the residual path: not drawn), and
    how many cross-token edges carry flow at all."""
    e = e * (1.0 - np.eye(e.shape[-1]))[None]
    flat = e.reshape(-1)
    total = int((flat > 0).sum())
    n = min(n, total)
    idx = np.argpartition(-flat, n - 1)[:n] if n < flat.size else np.arange(flat.size)
    idx = idx[np.argsort(-flat[idx])]
    L, T, _ = e.shape
    layer, i, j = np.unravel_index(idx, (L, T, T))
    return [
        (int(lay), int(src), int(dst), float(w))
        for lay, dst, src, w in zip(layer, i, j, flat[idx], strict=True)
    ], total


def _graph(attn, *, output, residual, top_edges, method, params, importance_fn, seed_fp, n_relays=10,
           progress=None):  # fmt: skip
    sw = Stopwatch()
    say = progress or (lambda frac, desc: None)
    say(0.0, "rollout")
    with sw("rollout"):
        a4 = np.asarray(attn, dtype=np.float64)
        a_hat = augment(a4, residual)
        L, T, _ = a_hat.shape
        w = _target(output, T)
        r = np.empty((L + 1, T, T))
        r[0] = np.eye(T)
        for layer in range(L):
            r[layer + 1] = a_hat[layer] @ r[layer]
        b, e = edge_flow(a_hat, output)
        relay = relay_scores(r, b)
        relay[0] = 0.0
        relay[L] = 0.0
        if np.ndim(output) == 0:  # the output token's own column is its residual path, not a relay
            relay[:, int(output)] = 0.0
    say(0.1, method)
    with sw(method):
        imp = importance_fn(a4, r)
    say(0.9, "attention entropy")
    with sw("entropy"):
        ent = attention_entropy(
            a4 if a4.ndim == 4 else a4[:, None], query=output if np.ndim(output) == 0 else w
        )
    say(0.95, "strongest edges")
    with sw("edges"):
        edges, n_cross = _top_edges(e, top_edges)
        flat = np.argsort(-relay.reshape(-1))[:n_relays]
        relays = [
            {"layer": int(f // T), "token": int(f % T), "score": float(relay.reshape(-1)[f])} for f in flat
        ]
    imp = np.nan_to_num(imp)
    imp = imp / max(imp.sum(), 1e-12)
    return FlowGraph(
        provenance=Provenance(method=method, params=params, input_fingerprint=seed_fp, timings=sw.timings),
        method=method, n_layers=L, n_tokens=T, output=int(output) if np.ndim(output) == 0 else -1, importance=imp, node_share=b, relay=relay,
        edges=edges, n_cross_edges=n_cross, entropy=ent["mean"], entropy_query=ent["query"], entropy_per_head=ent["per_head"],
        relays=relays,
    )  # fmt: skip


def _within(progress, lo: float, hi: float):
    """``progress`` rescaled so that 0..1 of a stage reads lo..hi of the whole job."""
    if progress is None:
        return None
    return lambda frac, desc: progress(lo + (hi - lo) * frac, desc)


def _jsonable_output(output):
    return int(output) if np.ndim(output) == 0 else "weights"


@register(
    "attention-rollout",
    family="flow",
    paper=ABNAR_PAPER,
    summary="Multiply the residual-augmented, head-averaged attention of every layer to trace which input "
    "tokens an output token draws on.",
    params=[RESIDUAL, TOP_EDGES],
    role="graph",
    facts={"short_name": "Rollout", "importance": "row of the cumulative rollout R_L"},
)
def run_rollout(
    attn, *, output: int = 0, residual: float = 0.5, top_edges: int = 300, progress=None
) -> FlowGraph:
    """Rollout graph from attentions [L, H, T, T] to token ``output``."""
    return _graph(
        attn, output=output, residual=residual, top_edges=top_edges, method="attention-rollout", progress=progress,
        params={"residual": residual, "top_edges": top_edges, "output": _jsonable_output(output)},
        importance_fn=lambda a, r: _target(output, r.shape[-1]) @ r[-1], seed_fp=fingerprint(np.asarray(attn, np.float32)),
    )  # fmt: skip


@register(
    "attention-flow",
    family="flow",
    paper=ABNAR_PAPER,
    summary="Maximum flow from each input token to the output through the layered attention graph "
    "(capacities = residual-augmented attention).",
    params=[RESIDUAL, TOP_K, TOP_EDGES],
    role="graph",
    facts={
        "short_name": "Attention-flow",
        "importance": "max-flow value per input token",
        "cost": "max-flow",
    },
)
def run_attention_flow(
    attn, *, output: int = 0, residual: float = 0.5, top_k: int = 16, top_edges: int = 300, progress=None
) -> FlowGraph:
    """Attention-flow importances (max-flow per input token); the drawn edges are the rollout's edge flows."""
    return _graph(
        attn, output=output, residual=residual, top_edges=top_edges, method="attention-flow",
        params={"residual": residual, "top_k": top_k, "top_edges": top_edges, "output": _jsonable_output(output)},
        importance_fn=lambda a, r: attention_flow(a, output=output, residual=residual, top_k=top_k,
                                                  progress=_within(progress, 0.1, 0.9)),
        progress=progress,
        seed_fp=fingerprint(np.asarray(attn, np.float32)),
    )  # fmt: skip
