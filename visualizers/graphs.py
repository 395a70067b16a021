"""Figures and captions for graph summaries (SSumM and baselines). Pure functions: result -> figure / text.

- :func:`plot_summary_graphs`: the original graph and its summary side by side (supernodes sized by members,
  placed at their members' centre, superedges drawn thicker and darker with density); nodes coloured by
  supernode so the two panels read together.
- :func:`plot_adjacency`: the adjacency matrix against its reconstruction, nodes ordered by supernode; large
  graphs are shown as block averages on a fixed grid.
- :func:`plot_size_error`: size (fraction of the input bits) against reconstruction error for every method.
- :func:`metrics_table` / :func:`caption` / :func:`comparison_caption`: the tab's table rows and captions.

Large graphs are summarised in full but drawn through a scale guard: at most ``LIMITS.max_drawn_elements``
nodes + edges per panel, with a notice in the figure saying what was left out.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import scipy.sparse as sp
from plotly.subplots import make_subplots

from engine.config import LIMITS
from visualizers.style import FONT_SIZE, HEATMAP_SCALE, OKABE_ITO, base_layout

__all__ = [
    "plot_summary_graphs",
    "plot_adjacency",
    "plot_size_error",
    "caption",
    "comparison_caption",
    "metrics_table",
    "METRIC_HEADERS",
    "supernode_colors",
    "colour_note",
]

GREY = "#B0B0B0"
METRIC_HEADERS = [
    "method",
    "budget",
    "supernodes",
    "superedges",
    "size / input",
    "L1 error",
    "L2 error",
    "seconds",
]
# networkx lays out graphs under 500 nodes with its vectorised force model and larger ones with a per-node
# Python loop (seconds); more nodes would not be readable in one panel either
MAX_DRAWN_NODES = 450  # original graph panel of a big graph
MAX_DRAWN_SUPERNODES = 250  # summary panel of a big graph (the heaviest supernodes)
WIDE = 860  # two panels side by side; fits the tab's figure column
TALL = 470


def supernode_colors(sizes: np.ndarray) -> np.ndarray:
    """Okabe-Ito colours for the 7 largest supernodes with more than one member, grey for the rest."""
    colors = np.full(sizes.size, GREY, dtype=object)
    big = [i for i in np.argsort(-sizes, kind="stable")[:7] if sizes[i] > 1]
    for c, i in enumerate(big):
        colors[i] = OKABE_ITO[c]
    return colors


def _weight(summary) -> np.ndarray:
    """Edges held by each supernode's superedges (a supernode without superedges weighs 0)."""
    w = np.bincount(summary.se_a, weights=summary.se_count, minlength=summary.n_super)
    return w + np.bincount(summary.se_b, weights=summary.se_count, minlength=summary.n_super)


def _drawn_nodes(graph, summary, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Nodes to draw: all when the graph fits the guard, else members of the heaviest supernodes."""
    if graph.n + graph.m <= limit:
        return np.arange(graph.n)
    want = max(10, min(limit // 5, MAX_DRAWN_NODES))
    order = np.argsort(-_weight(summary), kind="stable")
    cum = np.cumsum(summary.sizes[order])
    take = order[: max(8, int(np.searchsorted(cum, want)) + 1)]  # several supernodes, even when one is huge
    nodes = np.flatnonzero(np.isin(summary.labels, take))
    if nodes.size > want:
        nodes = np.sort(rng.choice(nodes, want, replace=False))
    return nodes


def _segments(pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays with None breaks for one line trace of many segments (vectorised)."""
    x = np.full(3 * a.size, np.nan)
    y = np.full(3 * a.size, np.nan)
    x[0::3], x[1::3] = pos[a, 0], pos[b, 0]
    y[0::3], y[1::3] = pos[a, 1], pos[b, 1]
    return x, y


def plot_summary_graphs(graph, result, *, max_elements: int | None = None, seed: int = 0) -> go.Figure:
    """Original graph (left) and summary graph (right), with a scale-guard notice when elements were left out."""
    import networkx as nx

    limit = int(max_elements or LIMITS.max_drawn_elements)
    s = result.summary
    rng = np.random.default_rng(seed)
    nodes = _drawn_nodes(graph, s, limit, rng)
    keep = np.zeros(graph.n, dtype=bool)
    keep[nodes] = True
    e = graph.edges[keep[graph.edges[:, 0]] & keep[graph.edges[:, 1]]]
    max_edges = max(0, limit - nodes.size)
    if e.shape[0] > max_edges:
        e = e[np.sort(rng.choice(e.shape[0], max_edges, replace=False))]
    index = np.full(graph.n, -1, dtype=np.int64)
    index[nodes] = np.arange(nodes.size)
    g = nx.Graph()
    g.add_nodes_from(range(nodes.size))
    g.add_edges_from(index[e].tolist())
    lay = nx.spring_layout(g, seed=seed, iterations=50 if nodes.size <= 600 else 25)
    pos = np.array([lay[i] for i in range(nodes.size)]).reshape(-1, 2)

    colors = supernode_colors(s.sizes)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"original: {graph.n:,} nodes, {graph.m:,} edges",
            f"summary: {s.n_super:,} supernodes, {s.n_superedges:,} superedges",
        ),
        horizontal_spacing=0.04,
    )
    x, y = _segments(pos, index[e[:, 0]], index[e[:, 1]])
    fig.add_trace(
        go.Scattergl(
            x=x,
            y=y,
            mode="lines",
            line={"color": "#999999", "width": 0.7},
            hoverinfo="skip",
            showlegend=False,
        ),
        1,
        1,
    )
    lab = s.labels[nodes]
    fig.add_trace(
        go.Scattergl(
            x=pos[:, 0],
            y=pos[:, 1],
            mode="markers",
            marker={
                "size": 7 if nodes.size < 500 else 4,
                "color": colors[lab].tolist(),
                "line": {"width": 0.5, "color": "#333"},
            },
            text=[f"node {graph.label(i)} in supernode {lab[j]}" for j, i in enumerate(nodes)],
            hoverinfo="text",
            showlegend=False,
        ),
        1,
        1,
    )
    # summary: the heaviest supernodes with drawn members, laid out from their members' centre
    present = np.unique(lab)
    max_sn = max(1, min(limit // 3, MAX_DRAWN_SUPERNODES))
    if present.size > max_sn:
        w = _weight(s)[present]
        present = np.sort(present[np.argsort(-w, kind="stable")[:max_sn]])
    cx = np.bincount(lab, weights=pos[:, 0], minlength=s.n_super)
    cy = np.bincount(lab, weights=pos[:, 1], minlength=s.n_super)
    cnt = np.maximum(np.bincount(lab, minlength=s.n_super), 1)
    spos = np.stack([cx / cnt, cy / cnt], axis=1)
    ok = np.isin(s.se_a, present) & np.isin(s.se_b, present)
    a, b, dens = s.se_a[ok], s.se_b[ok], (s.se_count / s.se_pairs)[ok]
    max_se = max(0, limit - present.size)
    if a.size > max_se:
        top = np.argsort(-s.se_count[ok], kind="stable")[:max_se]
        a, b, dens = a[top], b[top], dens[top]
    sg = nx.Graph()
    sg.add_nodes_from(present.tolist())
    sg.add_weighted_edges_from((int(x), int(y), float(d)) for x, y, d in zip(a, b, dens) if x != y)
    slay = nx.spring_layout(sg, pos={int(j): spos[j] for j in present}, iterations=30, seed=seed)
    for j in present:
        spos[j] = slay[int(j)]
    loops = a == b
    edges_ = ~loops
    bins = np.digitize(dens[edges_], [0.25, 0.5, 0.75])
    for k_, (lo, hi) in enumerate(((0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))):
        sel = bins == k_
        if not sel.any():
            continue
        x, y = _segments(spos, a[edges_][sel], b[edges_][sel])
        fig.add_trace(
            go.Scattergl(
                x=x,
                y=y,
                mode="lines",
                line={"color": f"rgba(0,114,178,{0.25 + 0.25 * k_})", "width": 0.8 + 1.6 * k_},
                name=f"density {lo:g}-{hi:g}",
                hoverinfo="skip",
                showlegend=False,
            ),
            1,
            2,
        )
    has_loop = np.zeros(s.n_super, dtype=bool)
    has_loop[a[loops]] = True
    loop_d = np.zeros(s.n_super)
    loop_d[a[loops]] = dens[loops]
    # legend of the colours: one entry per coloured supernode, then grey (legend only: no data drawn)
    for j in [int(j) for j in np.argsort(-s.sizes, kind="stable") if colors[j] != GREY]:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"size": 11, "color": colors[j], "line": {"width": 0.5, "color": "#333"}},
                name=f"#{j}: {int(s.sizes[j]):,} nodes",
                hoverinfo="skip",
            ),
            1,
            2,
        )
    n_grey = int((colors[s.labels] == GREY).sum())
    if n_grey:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"size": 11, "color": GREY, "line": {"width": 0.5, "color": "#333"}},
                name=f"others: {n_grey:,} nodes",
                hoverinfo="skip",
            ),
            1,
            2,
        )
    for name, line, marker in (
        ("denser superedge:<br>darker, thicker", {"color": "rgba(0,114,178,1)", "width": 4}, None),
        (
            "ring: self-superedge",
            None,
            {"size": 11, "color": "white", "line": {"width": 2.5, "color": "#0072B2"}},
        ),
    ):
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines" if line else "markers", line=line, marker=marker,
                       name=name, hoverinfo="skip"),
            1, 2,
        )  # fmt: skip
    sz = s.sizes[present].astype(float)
    fig.add_trace(
        go.Scattergl(
            x=spos[present, 0],
            y=spos[present, 1],
            mode="markers",
            marker={
                "size": 6 + 22 * np.sqrt(sz / sz.max()),
                "color": colors[present].tolist(),
                "line": {"width": np.where(has_loop[present], 2.5, 0.5).tolist(), "color": "#0072B2"},
                "opacity": 0.9,
            },
            text=[
                f"supernode {j}: {s.sizes[j]} members"
                + (f", internal density {loop_d[j]:.2f}" if has_loop[j] else "")
                for j in present
            ],
            hoverinfo="text",
            name="supernode (ring: self-superedge)",
            showlegend=False,
        ),
        1,
        2,
    )
    for c in (1, 2):
        fig.update_xaxes(visible=False, row=1, col=c)
        fig.update_yaxes(visible=False, row=1, col=c)
    title = f"{result.method} on {graph.name}: {result.size_bits / result.input_bits:.3f} of input bits"
    guard = nodes.size < graph.n or e.shape[0] < graph.m or present.size < s.n_super
    base_layout(fig, title=title, width=WIDE, height=TALL)
    fig.update_annotations(font_size=FONT_SIZE - 1)  # the two panel titles
    fig.update_layout(
        showlegend=True,
        legend={
            "orientation": "v",
            "x": 1.0,
            "xanchor": "left",
            "y": 0.5,
            "yanchor": "middle",
            "title": {"text": "colour =<br>supernode"},
            "font": {"size": FONT_SIZE - 2},
            "itemclick": False,
            "itemdoubleclick": False,
        },
        margin={"t": 90, "b": 90 if guard else 30, "r": 10},
    )
    if guard:
        fig.add_annotation(
            text=(
                f"Scale guard: drawing {nodes.size:,} of {graph.n:,} nodes, {e.shape[0]:,} of {graph.m:,} edges, "
                f"{present.size:,} of {s.n_super:,} supernodes<br>(members of the heaviest supernodes first); "
                "the summary and its metrics cover the whole graph."
            ),
            xref="paper",
            yref="paper",
            x=0.0,
            y=-0.04,
            yanchor="top",
            showarrow=False,
            font={"size": FONT_SIZE - 2, "color": "#D55E00"},
            xanchor="left",
        )
    return fig


def _binned(graph, summary, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A and A_hat averaged over a bins x bins grid of nodes ordered by supernode; returns (A, A_hat, edges)."""
    n = graph.n
    order = np.argsort(summary.labels, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    bin_of = rank * bins // n
    p = sp.csr_matrix((np.ones(n), (np.arange(n), bin_of)), shape=(n, bins))
    counts = np.bincount(bin_of, minlength=bins).astype(float)
    denom = np.outer(counts, counts) - np.diag(counts)  # pairs u != v per cell
    a = (p.T @ graph.adjacency.astype(float) @ p).toarray()
    s = summary.n_super
    d = summary.se_count / summary.se_pairs
    w = sp.coo_matrix(
        (
            np.r_[d, d[summary.se_a != summary.se_b]],
            (
                np.r_[summary.se_a, summary.se_b[summary.se_a != summary.se_b]],
                np.r_[summary.se_b, summary.se_a[summary.se_a != summary.se_b]],
            ),
        ),
        shape=(s, s),
    ).tocsr()
    lmat = sp.csr_matrix((np.ones(n), (np.arange(n), summary.labels)), shape=(n, s))
    m = (lmat.T @ p).tocsr()  # [S, bins] members of each supernode per bin
    a_hat = (m.T @ w @ m).toarray()
    self_w = np.asarray(w.diagonal())[summary.labels]  # remove u == v terms of self-superedges
    a_hat -= np.diag(np.bincount(bin_of, weights=self_w, minlength=bins))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(denom > 0, a / denom, 0.0)
        a_hat = np.where(denom > 0, a_hat / denom, 0.0)
    edges = np.r_[0, np.cumsum(counts)]
    return a, np.clip(a_hat, 0.0, 1.0), edges


def plot_adjacency(graph, result, *, max_bins: int = 160) -> go.Figure:
    """Adjacency matrix (left) and its reconstruction (right), ordered by supernode, same colour range."""
    s = result.summary
    bins = min(graph.n, int(max_bins))
    a, a_hat, _ = _binned(graph, s, bins)
    vmax = float(max(a.max(), a_hat.max(), 1e-12))
    binned = bins < graph.n
    unit = "block-average density" if binned else "entry"
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("adjacency A", "reconstruction Â"), horizontal_spacing=0.08
    )
    for c, mat in ((1, a), (2, a_hat)):
        fig.add_trace(
            go.Heatmap(
                z=mat,
                zmin=0.0,
                zmax=vmax,
                colorscale=HEATMAP_SCALE,
                showscale=c == 2,
                colorbar={"title": {"text": unit, "side": "right"}},
                hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>",
            ),
            1,
            c,
        )
        fig.update_yaxes(
            autorange="reversed", scaleanchor=f"x{c if c > 1 else ''}", row=1, col=c, showticklabels=False,
            showgrid=False, zeroline=False,
        )  # fmt: skip
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=c)
    note = f"{bins}x{bins} block averages of {graph.n:,} nodes" if binned else f"{graph.n} nodes"
    title = f"Nodes ordered by supernode ({note}); L1 {result.l1_error:.2e}, L2 {result.l2_error:.2e}"
    base_layout(fig, title=title, width=WIDE, height=TALL)
    return fig


def plot_size_error(rows: list[dict], *, error: str = "l2", title: str | None = None) -> go.Figure:
    """Size (fraction of input bits) against error, one line per method.

    ``rows``: dicts with ``method``, ``size_fraction`` (or ``size_bits`` and ``input_bits``), ``l1_error``,
    ``l2_error``.
    """
    key = f"{error}_error"
    fig = go.Figure()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for i, m in enumerate(methods):
        pts = sorted(
            (
                r.get("size_fraction", r.get("size_bits", 0) / max(r.get("input_bits", 1), 1e-12)),
                r[key],
                r.get("budget"),
            )
            for r in rows
            if r["method"] == m
        )
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                mode="lines+markers",
                name=m,
                line={"color": OKABE_ITO[i % len(OKABE_ITO)], "width": 2.5},
                marker={"size": 9, "symbol": ["circle", "square", "diamond", "triangle-up"][i % 4]},
                hovertemplate=f"{m}<br>size %{{x:.3f}} of input<br>{error.upper()} %{{y:.3e}}<extra></extra>",
            )
        )
    base_layout(fig, title=title or f"Size vs {error.upper()} error (same budgets, same graph)")
    fig.update_xaxes(title_text="summary size / input size (bits)", rangemode="tozero")
    fig.update_yaxes(title_text=f"{error.upper()} reconstruction error", exponentformat="e")
    return fig


def caption(graph, result) -> str:
    """One paragraph that says exactly what the figures show."""
    p = result.provenance.params
    extra = ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("budget", "error"))
    lines = [
        f"**{result.method}** ({extra}) on **{graph.name}** ({graph.n:,} nodes, {graph.m:,} edges), "
        f"budget {result.budget:g} x {result.input_bits:,.0f} input bits, minimising {result.error.upper()}. "
        f"Summary: {result.supernodes:,} supernodes, {result.superedges:,} superedges, "
        f"{result.size_bits:,.0f} bits ({result.size_bits / result.input_bits:.3f} of input). "
        f"Reconstruction error L1 {result.l1_error:.3e}, L2 {result.l2_error:.3e} "
        f"(over ordered node pairs, as the SSumM paper reports). {result.seconds:.2f} s on "
        f"{result.provenance.backend}, seed {result.provenance.seed}."
    ]
    lines.append(colour_note(result))
    if result.notices:
        lines.append("Input notes: " + "; ".join(result.notices) + ".")
    return " ".join(lines)


def colour_note(result) -> str:
    """The sentence that says what the summary figure's colours, sizes and lines encode."""
    k = int((supernode_colors(result.summary.sizes) != GREY).sum())
    own = (
        f"each of the {k} largest supernodes with more than one member has its own colour (legend, by "
        "supernode id and size), shared by its member nodes on the left and the supernode on the right; "
        "the other nodes and supernodes are grey"
        if k
        else "every supernode has a single member, so all nodes are grey"
    )
    return (
        f"Colour = supernode: {own}. A supernode's marker grows with its members, a blue ring marks a "
        "self-superedge, and a darker, thicker line a denser superedge."
    )


def metrics_table(rows: list[dict]) -> list[list]:
    """Display rows (:data:`METRIC_HEADERS`) of result rows: dicts with ``method``, ``budget`` and a summary's
    metrics (``GraphSummaryResult.row()``, ``GraphComparison.rows``)."""
    return [
        [
            r["method"],
            r["budget"],
            r["supernodes"],
            r["superedges"],
            round(r["size_fraction"], 4),
            f"{r['l1_error']:.3e}",
            f"{r['l2_error']:.3e}",
            round(r["seconds"], 3),
        ]
        for r in rows
    ]


def comparison_caption(result) -> str:
    """What the size-vs-error comparison shows (a ``GraphComparison``)."""
    return (
        f"Each method summarised **{result.graph_name}** ({result.nodes:,} nodes, {result.edges:,} edges) at "
        f"budgets {', '.join(map(str, result.budgets))} of its 2|E| log2|V| = {result.input_bits:,.0f} input "
        f"bits, minimising {result.error.upper()}, seed {result.seed}. Lower and further left is better; "
        "seconds are those of the first run (repeats are answered from the cache)."
    )
