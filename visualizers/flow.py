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


def plot_flow_graph(res, *, max_edges: int = 200, width: int = 760, height: int = 560) -> go.Figure:
    """Layered graph: x = layer (0 = input), y = token; the ``max_edges`` strongest cross-token edges."""
    x = res.extra
    labels, kinds = x["labels"], x["kinds"]
    edges = res.edges[:max_edges]
    fig = go.Figure()
    if edges:
        w = np.array([e[3] for e in edges])
        bins = np.quantile(w, [0.0, 0.5, 0.8, 0.95, 1.0])
        for lo, hi, op, lw in zip(
            bins[:-1], bins[1:], (0.25, 0.4, 0.6, 0.85), (0.8, 1.4, 2.2, 3.4), strict=True
        ):
            sel = [e for e in edges if lo <= e[3] <= hi]
            xs, ys = [], []
            for lay, src, dst, _ in sel:
                xs += [lay, lay + 1, None]
                ys += [src, dst, None]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": lw, "color": f"rgba(90,90,90,{op})"},
                                     hoverinfo="skip", showlegend=False))  # fmt: skip
    nodes = {(res.n_layers, res.output)} if res.output >= 0 else set()
    for lay, src, dst, _ in edges:
        nodes |= {(lay, src), (lay + 1, dst)}
    arr = np.array(sorted(nodes))
    share = res.node_share[arr[:, 0], arr[:, 1]]
    size = 5 + 30 * np.sqrt(share / max(share.max(), 1e-12))
    for kind in ("patch", "text", "bos", "cls"):
        m = np.array([kinds[t] == kind for t in arr[:, 1]])
        if not m.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=arr[m, 0], y=arr[m, 1], mode="markers", name=KIND_NAMES[kind],
                marker={"size": size[m], "color": KIND_COLOURS[kind], "line": {"width": 0.5, "color": "white"}},
                text=[f"{labels[t]}<br>layer {lay}<br>share {s:.3f}" for (lay, t), s in zip(arr[m], share[m], strict=True)],
                hoverinfo="text",
            )
        )  # fmt: skip
    relays = [(r["layer"], r["token"]) for r in res.relays[:5]]
    if relays:
        rl = np.array(relays)
        fig.add_trace(
            go.Scatter(
                x=rl[:, 0], y=rl[:, 1], mode="markers", name="top relay nodes",
                marker={"size": 22, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": OKABE_ITO[5]}},
                text=[f"relay: {labels[t]}, layer {lay}" for lay, t in relays], hoverinfo="text",
            )
        )  # fmt: skip
    a, b = x["image_span"]
    ticks = {t: labels[t] for t in range(a)}  # CLS / <bos> ...
    ticks[(a + b) // 2] = f"image patches {a}..{b - 1}"
    if b < res.n_tokens:
        ticks[(b + res.n_tokens - 1) // 2] = "question"
        ticks[res.n_tokens - 1] = labels[res.n_tokens - 1]
    tv, tt, last = [], [], -99
    for t in sorted(ticks):
        if t - last >= 6 or not tv:
            tv.append(t)
            tt.append(ticks[t])
            last = t
    fig.update_xaxes(title="layer (0 = input)", tickmode="array", tickvals=list(range(res.n_layers + 1)))
    fig.update_yaxes(title="token", autorange="reversed", tickmode="array", tickvals=tv, ticktext=tt)
    title = f"{_short_name(res.method)} graph to {x['output_label']}"
    base_layout(fig, title=title, width=width, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.15}, margin={"l": 110})
    return fig


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


def _overlay_traces(fig, img, grid, zmax, *, opacity, row=None, col=None, colorbar=True) -> None:
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
            colorbar={"title": "share", "len": 0.8, "thickness": 14},
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
        f"Graph: the {min(len(res.edges), 200)} strongest cross-token edges of the rollout flow; node size = share of "
        "the output passing through the node; ringed = top relay nodes (share x fraction of content from other "
        "tokens).",
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
    fig = make_subplots(rows=1, cols=n, subplot_titles=[_short_name(m) for m in cmp.methods],
                        horizontal_spacing=0.03)  # fmt: skip
    for i, grid in enumerate(grids):
        _overlay_traces(fig, np.asarray(cmp.extra["image"]), grid, zmax, opacity=opacity, row=1, col=i + 1,
                        colorbar=i == n - 1)  # fmt: skip
    for i in range(n):
        fig.update_yaxes(scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    base_layout(fig, title=f"Patch importance for {cmp.output_label[:28]}, same colour scale",
                width=side * n + 120, height=side + 110)  # fmt: skip
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
    fig.update_xaxes(title=f"{first} importance", type="log", exponentformat="e")
    fig.update_yaxes(title=f"{other} importance", type="log", exponentformat="e")
    rho = cmp.spearman[0, 1] if len(cmp.methods) > 1 else 1.0
    base_layout(fig, title=f"Token importance, Spearman {rho:.2f}", width=width, height=height)
    fig.update_layout(legend={"orientation": "h", "y": -0.22, "font": {"size": 12}})
    return fig


def compare_table(cmp) -> list[list]:
    """Rows for the comparison table: one per method (time, image share, top input, agreement with the first)."""
    rows = []
    for i, r in enumerate(cmp.rows):
        rows.append([
            r["method"], f"{r['importance_s']:.3f}", f"{r['graph_s']:.3f}", f"{r['image_share']:.3f}",
            f"{r['top_input']} ({r['top_importance']:.3f})", f"{cmp.spearman[0, i]:.3f}", f"{cmp.top_iou[0, i]:.3f}",
        ])  # fmt: skip
    return rows


COMPARE_HEADERS = ["method", "importance (s)", "graph (s)", "image share", "top input", "Spearman vs first",
                   "top-patch IoU vs first"]  # fmt: skip


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
