"""Figures for information flow: the layered flow graph, the importance overlay and the entropy curve.

Pure functions of a :class:`engine.flow.graph.FlowGraph` (with ``extra`` from :mod:`engine.flow.run`); no model
calls. Layers are columns, tokens rows; node size = the share of the output that passes through the node; edge
width = the rollout flow along the edge; relay nodes (FlowCut's observation: CLS relays information) ringed.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from visualizers.style import HEATMAP_SCALE, OKABE_ITO, base_layout

__all__ = [
    "plot_flow_graph", "plot_overlay", "plot_entropy", "flow_caption", "flow_table", "KIND_COLOURS",
    "plot_compare_overlays", "plot_rank_agreement", "compare_table", "compare_caption", "COMPARE_HEADERS",
]  # fmt: skip

KIND_COLOURS = {"cls": OKABE_ITO[0], "bos": OKABE_ITO[7], "patch": OKABE_ITO[1], "text": OKABE_ITO[2]}
KIND_NAMES = {"cls": "CLS", "bos": "<bos>", "patch": "image patch", "text": "text token"}


def _token_name(labels, kinds, grid, image_span, t: int) -> str:
    """A node's token in words: 'patch row 3, col 5 (token 46)', 'CLS (token 0)', 'text "red" (token 200)'."""
    a, b = image_span
    if a <= t < b:
        r, c = divmod(t - a, grid[1])
        return f"patch row {r}, col {c} (token {t})"
    if kinds[t] == "text":
        return f"text {labels[t]!r} (token {t})"
    return f"{labels[t]} (token {t})"


def _short_token(labels, image_span, grid, t: int) -> str:
    a, b = image_span
    if a <= t < b:
        r, c = divmod(t - a, grid[1])
        return f"r{r} c{c}"
    return labels[t]


def _edge_lines(edges) -> tuple[np.ndarray, np.ndarray]:
    """x, y of line segments (NaN-separated) for edges (layer, src, dst, w): (layer, src) -> (layer + 1, dst)."""
    e = np.asarray([(lay, src, dst) for lay, src, dst, _ in edges], dtype=float).reshape(-1, 3)
    xs = np.stack([e[:, 0], e[:, 0] + 1, np.full(len(e), np.nan)], 1).reshape(-1)
    ys = np.stack([e[:, 1], e[:, 2], np.full(len(e), np.nan)], 1).reshape(-1)
    return xs, ys


def _token_ticks(labels, kinds, image_span, grid, n_tokens: int) -> tuple[list, list]:
    """y ticks: each prefix token, every other patch row ("row r" at its first patch), and the text tokens."""
    a, b = image_span
    rows, cols = grid
    ticks = {t: labels[t] for t in range(a)}  # CLS, registers, <bos>
    step = max(1, rows // 7)
    for r in range(0, rows, step):
        ticks[a + r * cols] = f"patch row {r}"
    text = [t for t in range(b, n_tokens) if labels[t] not in ("<pad>",)]
    every = max(1, len(text) // 8)
    for t in text[::every]:
        ticks[t] = labels[t]
    if text:
        ticks[text[-1]] = labels[text[-1]]
    gap = max(3, n_tokens // 28)  # ~28 ticks at most, so labels never overlap
    keep_first = set(range(a))
    kept: list[int] = []
    for t in sorted(ticks):
        if not kept or t - kept[-1] >= gap:
            kept.append(t)
        elif t in keep_first or (text and t == text[-1]):
            kept[-1] = t  # a prefix token or the last token wins over a patch-row tick next to it
    return kept, [ticks[t] for t in kept]


def _spread(ys, gap: float) -> list[float]:
    """Label positions for anchors ``ys``: same order, at least ``gap`` apart (pushed down as needed)."""
    order = np.argsort(ys, kind="stable")
    out = np.asarray(ys, dtype=float).copy()
    last = -np.inf
    for i in order:
        out[i] = max(out[i], last + gap)
        last = out[i]
    return out.tolist()


def _labels_to(fig, points, texts, hovers, *, dx: float, gap: float, colour: str) -> None:
    """Text labels with arrows pointing at ``points`` [(x, y)], tails offset by ``dx`` and spread in y."""
    if not points:
        return
    tails = _spread([p[1] for p in points], gap)
    for (px, py), ty, text, hover in zip(points, tails, texts, hovers, strict=True):
        fig.add_annotation(x=px, y=py, ax=px + dx, ay=ty, axref="x", ayref="y", text=text, hovertext=hover,
                           showarrow=True, arrowhead=0, arrowwidth=1, arrowcolor=colour, standoff=6,
                           font={"size": 12, "color": colour}, xanchor="right" if dx < 0 else "left",
                           bgcolor="rgba(255,255,255,0.75)")  # fmt: skip


def plot_flow_graph(res, *, max_edges: int | None = None, width: int = 760, height: int = 600,
                    size_max: float | None = None, n_marked: int = 5) -> go.Figure:  # fmt: skip
    """Layered graph: x = layer (input, then after layer 1..L), y = token; every edge the engine kept (at most
    ``max_edges`` when given); the ``n_marked`` most important input tokens and the top relays are labelled.

    ``size_max``: the node share that gets the largest marker (a comparison passes one for all its graphs).
    """
    x = res.extra
    labels, kinds, grid, span = x["labels"], x["kinds"], x["grid"], x["image_span"]
    edges = res.edges if max_edges is None else res.edges[:max_edges]
    imp = np.asarray(res.importance)
    fig = go.Figure()
    if edges:
        w = np.array([e[3] for e in edges])
        bins = np.quantile(w, [0.0, 0.5, 0.8, 0.95, 1.0])
        for k, (op, lw) in enumerate(zip((0.25, 0.4, 0.6, 0.85), (0.8, 1.4, 2.2, 3.4), strict=True)):
            sel = (w >= bins[k]) & ((w < bins[k + 1]) if k < 3 else (w <= bins[k + 1]))
            if not sel.any():
                continue
            xs, ys = _edge_lines([e for e, s in zip(edges, sel, strict=True) if s])
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": lw, "color": f"rgba(90,90,90,{op})"},
                                     hoverinfo="skip", showlegend=False, connectgaps=False))  # fmt: skip
    top_inputs = [int(t) for t in np.argsort(-imp, kind="stable")[:n_marked]]
    nodes = {(res.n_layers, res.output)} if res.output >= 0 else set()
    for lay, src, dst, _ in edges:
        nodes |= {(lay, src), (lay + 1, dst)}
    nodes |= {(0, t) for t in top_inputs}
    arr = np.array(sorted(nodes))
    share = res.node_share[arr[:, 0], arr[:, 1]]
    top = size_max if size_max else max(float(share.max()), 1e-12)
    size = 5 + 30 * np.sqrt(np.clip(share / top, 0, 1))
    relay = np.asarray(res.relay)[arr[:, 0], arr[:, 1]]
    for kind in ("patch", "text", "bos", "cls"):
        m = np.array([kinds[t] == kind for t in arr[:, 1]])
        if not m.any():
            continue
        hover = [
            f"<b>{_token_name(labels, kinds, grid, span, t)}</b><br>"
            + ("input (before layer 1)" if lay == 0 else f"after layer {lay}")
            + f"<br>share of the output through this node {s:.4f}<br>input importance ({_short_name(res.method)}) "
            f"{imp[t]:.4f}<br>relay score {rl:.4f}"
            for (lay, t), s, rl in zip(arr[m], share[m], relay[m], strict=True)
        ]  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=arr[m, 0], y=arr[m, 1], mode="markers", name=KIND_NAMES[kind],
                marker={"size": size[m], "color": KIND_COLOURS[kind], "line": {"width": 0.5, "color": "white"}},
                text=hover, hoverinfo="text",
            )
        )  # fmt: skip
    # the most important input tokens, labelled at the input layer
    gap = res.n_tokens / 24  # label spacing in token rows (about 22 px at the default height)
    in_hover = [f"#{i + 1} input: {_token_name(labels, kinds, grid, span, t)}, importance {imp[t]:.4f}"
                for i, t in enumerate(top_inputs)]  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[0] * len(top_inputs), y=top_inputs, mode="markers", name=f"top {len(top_inputs)} inputs (#1..)",
            marker={"size": 16, "symbol": "diamond-open", "color": OKABE_ITO[4], "line": {"width": 2}},
            text=in_hover, hoverinfo="text",
        )
    )  # fmt: skip
    _labels_to(fig, [(0, t) for t in top_inputs],
               [f"#{i + 1} {_short_token(labels, span, grid, t)}" for i, t in enumerate(top_inputs)], in_hover,
               dx=-0.35, gap=gap, colour=OKABE_ITO[4])  # fmt: skip
    relays = [(r["layer"], r["token"], r["score"]) for r in res.relays[:5]]
    if relays:
        rl = np.array([(lay, t) for lay, t, _ in relays])
        r_hover = [f"relay #{i + 1}: {_token_name(labels, kinds, grid, span, t)} after layer {lay}, score {sc:.4f}"
                   for i, (lay, t, sc) in enumerate(relays)]  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=rl[:, 0], y=rl[:, 1], mode="markers", name="top relay nodes (R1..)",
                marker={"size": 22, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": OKABE_ITO[5]}},
                text=r_hover, hoverinfo="text",
            )
        )  # fmt: skip
        for lay in sorted({int(v) for v in rl[:, 0]}):  # spread the labels of one layer apart
            idx = [i for i, (la, _, _) in enumerate(relays) if la == lay]
            _labels_to(fig, [(lay, relays[i][1]) for i in idx],
                       [f"R{i + 1} {_short_token(labels, span, grid, relays[i][1])}" for i in idx],
                       [r_hover[i] for i in idx], dx=0.3, gap=gap, colour=OKABE_ITO[5])  # fmt: skip
    tv, tt = _token_ticks(labels, kinds, span, grid, res.n_tokens)
    xt = ["input"] + [f"L{i}" for i in range(1, res.n_layers + 1)]
    fig.update_xaxes(title="layer (input = embeddings; Ln = after layer n)", tickmode="array",
                     tickvals=list(range(res.n_layers + 1)), ticktext=xt, range=[-1.7, res.n_layers + 1.0])  # fmt: skip
    fig.update_yaxes(title="token", tickmode="array", tickvals=tv, ticktext=tt,
                     range=[res.n_tokens + gap * 2, -gap])  # fmt: skip
    title = (f"{_short_name(res.method)} graph to {_output_words(x)}: {len(edges)} of {res.n_cross_edges:,} "
             "cross-token edges drawn")  # fmt: skip
    base_layout(fig, title=title, width=width, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.14}, margin={"l": 110})
    return fig


def _output_words(x) -> str:
    """What the flow is traced into, in words ("CLS", "the last token '?'", "all image patches (mean)")."""
    out = x["output_label"]
    if x.get("model_kind") == "vlm" and x.get("target") == "output":
        return f"the last token {out!r}"
    return out


def _short_name(method: str) -> str:
    from engine.registry import get

    return get(method, family="flow").fact("short_name", method)


def _grid(importance, image_span, grid) -> np.ndarray:
    a, b = image_span
    rows, cols = grid
    return np.asarray(importance[a:b]).reshape(rows, cols)


def _zmax(grids) -> float | None:
    """The colour range's top: a few sink patches would otherwise wash out the scale."""
    return float(np.quantile(np.stack(grids), 0.98)) or None


def _top_patch(grid) -> str:
    r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return f"r{r} c{c}"


def _overlay_traces(fig, img, grid, zmax, *, opacity, row=None, col=None, colorbar=True,
                    colorbar_x: float | None = None) -> None:  # fmt: skip
    """The image and the patch importance (cividis, ``0..zmax``) over it, into ``fig`` (or one of its subplots)."""
    s = img.shape[0]
    rows, cols = grid.shape
    step = s / cols
    at = {} if row is None else {"row": row, "col": col}
    fig.add_trace(go.Image(z=img), **at)
    fig.add_trace(
        go.Heatmap(
            z=grid, x=(np.arange(cols) + 0.5) * step - 0.5, y=(np.arange(rows) + 0.5) * step - 0.5,
            colorscale=HEATMAP_SCALE, opacity=opacity, zmin=0.0, zmax=zmax, showscale=colorbar,
            colorbar={"title": "share", "len": 0.8, "thickness": 14,
                      **({} if colorbar_x is None else {"x": colorbar_x})},
            hovertemplate="row %{y:.0f} col %{x:.0f}<br>importance %{z:.4f}<extra></extra>",
        ), **at,
    )  # fmt: skip
    fig.update_xaxes(visible=False, range=[-0.5, s - 0.5], **at)
    fig.update_yaxes(visible=False, range=[s - 0.5, -0.5], **at)


def plot_overlay(res, *, width: int = 440, height: int = 420, opacity: float = 0.55) -> go.Figure:
    """The image the model saw with the importance of each patch (cividis) over it."""
    x = res.extra
    grid = _grid(res.importance, x["image_span"], x["grid"])
    fig = go.Figure()
    _overlay_traces(fig, np.asarray(x["image"]), grid, _zmax([grid]), opacity=opacity)
    fig.update_yaxes(scaleanchor="x")
    base_layout(fig, title=f"Patch importance for {x['output_label'][:28]}", width=width, height=height)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def plot_entropy(res, *, width: int = 460, height: int = 420) -> go.Figure:
    """Attention entropy (bits) per layer: mean over heads and queries, each head, and the output's row."""
    layers = np.arange(1, res.n_layers + 1)
    fig = go.Figure()
    ph = np.asarray(res.entropy_per_head)
    for h in range(ph.shape[1] if ph.ndim == 2 else 0):
        fig.add_trace(go.Scatter(x=layers, y=ph[:, h], mode="lines", line={"width": 1, "color": "rgba(120,120,120,0.35)"},
                                 name="single heads", showlegend=h == 0, legendgroup="heads"))  # fmt: skip
    fig.add_trace(go.Scatter(x=layers, y=res.entropy, mode="lines+markers", name="all queries (mean)",
                             line={"color": OKABE_ITO[4], "width": 3}))  # fmt: skip
    lab = res.extra["output_label"][:24]
    fig.add_trace(go.Scatter(x=layers, y=res.entropy_query, mode="lines+markers", name=f"output row ({lab})",
                             line={"color": OKABE_ITO[5], "width": 3, "dash": "dash"}))  # fmt: skip
    uniform = np.log2(res.n_tokens)
    fig.add_hline(
        y=uniform, line={"dash": "dot", "color": "grey"}, annotation_text=f"uniform over {res.n_tokens}"
    )
    fig.update_xaxes(title="layer", tickmode="array", tickvals=list(layers))
    fig.update_yaxes(title="entropy (bits)", rangemode="tozero")
    base_layout(fig, title="Where attention concentrates", width=width, height=height)
    fig.update_layout(
        legend={"orientation": "h", "y": -0.22, "font": {"size": 12}}, margin={"l": 60, "r": 20}
    )
    return fig


def flow_table(res) -> list[list]:
    """Rows [quantity, value] for the metrics table."""
    x = res.extra
    labels = x["labels"]
    a, b = x["image_span"]
    imp = np.asarray(res.importance)
    order = np.argsort(-imp[a:b])[: max(1, (b - a) // 10)]
    rows = [
        ["model", x["model"]],
        ["method", res.method],
        ["layers x tokens", f"{res.n_layers} x {res.n_tokens}"],
        ["traced to", x["output_label"]],
        ["image tokens' share of the output", f"{imp[a:b].sum():.3f}"],
        ["top 10% of patches hold", f"{imp[a:b][order].sum() / max(imp[a:b].sum(), 1e-12):.3f} of the image share"],
        ["lowest mean entropy (bits)", f"{float(np.min(res.entropy)):.2f} at layer {int(np.argmin(res.entropy)) + 1}"],
        ["top relay", f"{labels[res.relays[0]['token']]} at layer {res.relays[0]['layer']} ({res.relays[0]['score']:.3f})"
         if res.relays else "-"],
    ]  # fmt: skip
    if x["question"]:
        rows.insert(3, ["question -> answer", f"{x['question']} -> {x['answer']}"])
    for stage, sec in res.provenance.timings.items():
        rows.append([f"time: {stage} (s)", f"{sec:.3f}"])
    return rows


def flow_caption(res) -> str:
    """What the figures show, with the method, parameters, input and numbers."""
    x = res.extra
    p = res.provenance.params
    labels = x["labels"]
    what = (
        f"**{res.method}** (Abnar & Zuidema 2020, residual {p.get('residual')}"
        + (f", top-k {p['top_k']} in-edges per node" if "top_k" in p else "")
        + f") on **{x['model']}** ({res.n_layers} layers, {res.n_tokens} tokens), traced to **{x['output_label']}**"
    )
    if x["question"]:
        what += f" for the question *{x['question']}* (answer: **{x['answer']}**)"
    top = res.relays[0] if res.relays else None
    parts = [
        what + ".",
        f"Graph: all {len(res.edges)} kept edges drawn (the strongest of {res.n_cross_edges} cross-token edges "
        f"carrying rollout flow; 'edges kept' = {p.get('top_edges')}); node size = share of the output passing "
        "through the node; diamonds #1.. = the most important input tokens; ringed R1.. = top relay nodes (share x "
        "fraction of content from other tokens); hover a node for its layer, token, patch row/col and importance.",
    ]
    if top:
        parts.append(
            f"Strongest relay: {labels[top['token']]} at layer {top['layer']} (score {top['score']:.3f})."
        )
    parts.append(
        f"Entropy falls to {float(np.min(res.entropy)):.2f} bits at layer {int(np.argmin(res.entropy)) + 1} "
        f"(uniform: {np.log2(res.n_tokens):.2f})."
    )
    if x["notices"]:
        parts.append("Input: " + "; ".join(x["notices"]) + ".")
    parts.append(f"Input fingerprint {res.provenance.input_fingerprint}, backend {res.provenance.backend}.")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------------ comparison
def plot_compare_overlays(cmp, *, side: int = 300, opacity: float = 0.55) -> go.Figure:
    """One importance overlay per method of a :class:`engine.flow.compare.FlowComparison`, on one colour scale."""
    from plotly.subplots import make_subplots

    grids = [_grid(imp, cmp.image_span, cmp.grid) for imp in cmp.importance]
    zmax = _zmax(grids)
    n = len(grids)
    diff = n == 2  # two methods: a third panel with their difference on a diverging scale
    names = [_short_name(m) for m in cmp.methods]
    titles = [f"{nm}: top patch {_top_patch(g)}" for nm, g in zip(names, grids, strict=True)]
    if diff:
        titles.append(f"{names[1]} minus {names[0]}")
    cols = n + diff
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.06)
    for i, grid in enumerate(grids):
        _overlay_traces(fig, np.asarray(cmp.extra["image"]), grid, zmax, opacity=opacity, row=1, col=i + 1,
                        colorbar=i == n - 1, colorbar_x=1.01)  # fmt: skip
    if diff:
        d = grids[1] - grids[0]
        lim = float(np.quantile(np.abs(d), 0.98)) or 1e-12
        rows_, cols_ = d.shape
        step = np.asarray(cmp.extra["image"]).shape[0] / cols_
        fig.add_trace(go.Heatmap(
            z=d, x=(np.arange(cols_) + 0.5) * step - 0.5, y=(np.arange(rows_) + 0.5) * step - 0.5,
            colorscale="PuOr", zmid=0.0, zmin=-lim, zmax=lim,
            colorbar={"title": "diff.", "len": 0.8, "thickness": 14, "x": 1.13},
            hovertemplate="difference %{z:.4f}<extra></extra>",
        ), row=1, col=cols)  # fmt: skip
        s_ = np.asarray(cmp.extra["image"]).shape[0]
        fig.update_xaxes(visible=False, range=[-0.5, s_ - 0.5], row=1, col=cols)
        fig.update_yaxes(visible=False, range=[s_ - 0.5, -0.5], row=1, col=cols)
    for i in range(cols):
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    fig.update_annotations(font={"size": 13})
    base_layout(fig, title=f"Patch importance for {cmp.output_label[:28]}: same colour scale (0 to "
                f"{zmax or 0:.4f}) for every method", width=side * cols + 230, height=side + 110)  # fmt: skip
    fig.update_layout(margin={"l": 10, "r": 10, "t": 80, "b": 10})
    return fig


def plot_rank_agreement(cmp, *, width: int = 460, height: int = 420) -> go.Figure:
    """Each token's importance under the first method (x) against every other method (y), log scales."""
    imp = np.asarray(cmp.importance)
    kinds = np.asarray(cmp.kinds)
    fig = go.Figure()
    floor = max(float(imp[imp > 0].min()) if (imp > 0).any() else 1e-6, 1e-9)
    first = _short_name(cmp.methods[0])
    for j, m in enumerate(cmp.methods[1:], start=1):
        for kind in ("patch", "text", "bos", "cls"):
            sel = kinds == kind
            if not sel.any():
                continue
            fig.add_trace(go.Scatter(
                x=np.maximum(imp[0, sel], floor), y=np.maximum(imp[j, sel], floor), mode="markers",
                name=f"{KIND_NAMES[kind]} ({_short_name(m)})" if len(cmp.methods) > 2 else KIND_NAMES[kind],
                marker={"size": 6, "color": KIND_COLOURS[kind], "opacity": 0.7,
                        "symbol": ("circle", "diamond", "square", "cross")[(j - 1) % 4]},
                text=[cmp.labels[t] for t in np.nonzero(sel)[0]], hoverinfo="text+x+y",
            ))  # fmt: skip
    lo, hi = floor, float(imp.max()) if imp.size else 1.0
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "grey"},
                             name="equal", hoverinfo="skip"))  # fmt: skip
    other = _short_name(cmp.methods[1]) if len(cmp.methods) == 2 else "other method's"
    fig.update_xaxes(title=f"{first} importance", type="log", exponentformat="power", dtick=1)
    fig.update_yaxes(title=f"{other} importance", type="log", exponentformat="power", dtick=1)
    rho = cmp.spearman[0, 1] if len(cmp.methods) > 1 else 1.0
    base_layout(fig, title=f"Token importance, Spearman {rho:.2f}", width=width, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.22, "font": {"size": 12}})
    return fig


def compare_table(cmp) -> list[list]:
    """Rows for the comparison table: one per method (quality: agreement with the first, concentration; cost:
    time, memory; the graph's size)."""
    from engine.admission import fmt_bytes

    rows = []
    for i, r in enumerate(cmp.rows):
        rows.append([
            r["method"], f"{cmp.spearman[0, i]:.3f}", f"{cmp.top_iou[0, i]:.3f}", f"{r['image_share']:.3f}",
            f"{r.get('top10_patch_share', float('nan')):.3f}", f"{r['top_input']} ({r['top_importance']:.3f})",
            f"{r['importance_s']:.3f}", f"{r['graph_s']:.3f}", fmt_bytes(r.get("peak_memory_bytes", 0)),
            "-" if r.get("top_k") is None else str(r["top_k"]),
            f"{r.get('edges_kept', 0)} of {r.get('cross_edges', 0):,}",
        ])  # fmt: skip
    return rows


COMPARE_HEADERS = ["method", "Spearman vs first", "top-patch IoU vs first", "image share", "top 10% patches hold",
                   "top input", "importance (s)", "graph (s)", "peak memory (est.)", "top-k", "edges drawn"]  # fmt: skip


def compare_caption(cmp) -> str:
    """What the comparison shows, with the methods, settings, input and numbers."""
    s = cmp.settings
    first = cmp.methods[0]
    parts = [
        f"**{', '.join(cmp.methods)}** (Abnar & Zuidema 2020, residual {s['residual']}, top-k {s['top_k']} in-edges "
        f"per node for max-flow) on **{cmp.model}** ({cmp.n_tokens} tokens), traced to **{cmp.output_label}**"
        + (f" for the question *{cmp.question}* (answer: **{cmp.answer}**)" if cmp.question else "") + ".",
        "Overlays share one colour scale (0 to the 98th percentile of all patches).",
    ]  # fmt: skip
    for i, m in enumerate(cmp.methods[1:], start=1):
        parts.append(
            f"{m} vs {first}: Spearman {cmp.spearman[0, i]:.3f} over all tokens, IoU {cmp.top_iou[0, i]:.3f} of the "
            f"top {s['top_fraction']:.0%} of patches; importance took {cmp.rows[i]['importance_s']:.3f} s vs "
            f"{cmp.rows[0]['importance_s']:.3f} s."
        )
    if cmp.notices:
        parts.append("Input: " + "; ".join(cmp.notices) + ".")
    parts.append(f"Input fingerprint {cmp.provenance.input_fingerprint}, backend {cmp.provenance.backend}.")
    return " ".join(parts)
