"""Figures and captions for the Layer Redundancy tab (LLM-Drop, He et al., 2024, arXiv:2406.15786)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from visualizers.style import HEATMAP_SCALE, OKABE_ITO, base_layout

__all__ = [
    "plot_sublayer_heatmap",
    "plot_importance_bars",
    "plot_hidden_similarity",
    "plot_head_similarity",
    "plot_drop_curve",
    "caption_scan",
    "caption_drop",
    "caption_curve",
    "drop_metrics_rows",
    "heldout_text",
    "CURVE_COLOURS",
]

_KIND_LABEL = {"attn": "Attention", "mlp": "MLP", "block": "Block"}
_KIND_COLOUR = {"attn": OKABE_ITO[4], "mlp": OKABE_ITO[0], "block": OKABE_ITO[2]}


def plot_sublayer_heatmap(scan, *, dropped: dict | None = None) -> go.Figure:
    """Rows attention / MLP / block, columns layers, colour = mean cosine(X, Y). Dropped cells are boxed."""
    z = np.vstack([scan.attn_similarity, scan.mlp_similarity, scan.block_similarity])
    text = [[f"{v:.3f}" for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(scan.n_layers)),
            y=["Attention", "MLP", "Block"],
            colorscale=HEATMAP_SCALE,
            # a few near-zero cells (layer 0, the last MLP) would wash out the rest: clip the colour range at
            # the 10th percentile; hover still shows the true value
            zmin=float(np.floor(np.percentile(z, 10) * 50) / 50),
            zmax=1.0,
            text=text,
            hovertemplate="layer %{x} %{y}<br>similarity %{text}<extra></extra>",
            colorbar={"title": "cos(X, Y)"},
        )
    )
    for row, kind in enumerate(("attn", "mlp", "block")):
        for i in (dropped or {}).get(kind, []):
            fig.add_shape(
                type="rect", x0=i - 0.5, x1=i + 0.5, y0=row - 0.5, y1=row + 0.5,
                line={"color": "#D55E00", "width": 3},
            )  # fmt: skip
    fig.update_xaxes(title="layer", dtick=max(1, scan.n_layers // 15))
    return base_layout(fig, title=f"Sublayer similarity — {scan.model}", height=330)


def plot_importance_bars(scan) -> go.Figure:
    """Importance = 1 - similarity per layer, grouped bars for attention, MLP and block (log scale)."""
    fig = go.Figure()
    x = list(range(scan.n_layers))
    for kind, values in (
        ("attn", scan.attn_similarity),
        ("mlp", scan.mlp_similarity),
        ("block", scan.block_similarity),
    ):
        imp = np.clip(1.0 - np.asarray(values), 1e-5, None)
        fig.add_bar(x=x, y=imp, name=_KIND_LABEL[kind], marker_color=_KIND_COLOUR[kind],
                    hovertemplate="layer %{x}<br>1 - s = %{y:.4f}<extra>" + _KIND_LABEL[kind] + "</extra>")  # fmt: skip
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.1, "x": 0.4})
    fig.update_yaxes(type="log", title="importance 1 − cos(X, Y)", dtick=1, exponentformat="power")
    fig.update_xaxes(title="layer", dtick=max(1, scan.n_layers // 15))
    return base_layout(fig, title="Importance per layer (lower = more redundant)", height=380)


def plot_hidden_similarity(scan) -> go.Figure:
    n = scan.hidden_similarity.shape[0]
    labels = ["emb"] + [str(i) for i in range(n - 1)]
    fig = go.Figure(
        go.Heatmap(
            z=scan.hidden_similarity, x=labels, y=labels, colorscale="Viridis", zmin=0, zmax=1,
            hovertemplate="after %{y} vs after %{x}<br>cos %{z:.3f}<extra></extra>", colorbar={"title": "cos"},
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", title="stream after layer")
    fig.update_xaxes(title="stream after layer")
    base_layout(fig, title="Hidden-state similarity between layers", width=440, height=440)
    return fig.update_layout(margin={"l": 60, "r": 10, "t": 50, "b": 50})


def plot_head_similarity(scan) -> go.Figure:
    h = scan.head_similarity.shape[0]
    labels = [f"h{i}" for i in range(h)]
    fig = go.Figure(
        go.Heatmap(
            z=scan.head_similarity, x=labels, y=labels, colorscale=HEATMAP_SCALE, zmin=0, zmax=1,
            text=[[f"{v:.2f}" for v in row] for row in scan.head_similarity], texttemplate="%{text}" if h <= 16 else None,
            hovertemplate="%{y} vs %{x}<br>cos %{z:.3f}<extra></extra>", colorbar={"title": "cos"},
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    base_layout(
        fig, title=f"Head attention-pattern similarity, layer {scan.head_layer}", width=440, height=440
    )
    return fig.update_layout(margin={"l": 45, "r": 10, "t": 50, "b": 40})


# One Okabe-Ito colour per curve entry: the scored methods solid (blue, orange, green, purple), each random
# control dashed with open markers in a colour of its own, the lighter or darker partner of its kind's
# (random-attn sky blue beside attn's blue, random-mlp vermillion, random-block black), so the default
# attn / mlp / block / random-attn set is four clearly different hues. Yellow (OKABE_ITO[3]), the palette's
# weakest on white, is left for entries registered later. The full-model reference is a dotted neutral grey.
CURVE_COLOURS = {
    "attn": OKABE_ITO[4], "mlp": OKABE_ITO[0], "block": OKABE_ITO[2], "joint": OKABE_ITO[6],
    "random-attn": OKABE_ITO[1], "random-mlp": OKABE_ITO[5], "random-block": OKABE_ITO[7],
}  # fmt: skip
FULL_MODEL_GREY = "#777777"


def _curve_colours(labels) -> dict[str, str]:
    """Each label's colour: its own from :data:`CURVE_COLOURS`, else the first Okabe-Ito colour no other
    curve of this figure uses (cycling only past eight curves)."""
    out = {s: CURVE_COLOURS[s] for s in labels if s in CURVE_COLOURS}
    spare = [c for c in (OKABE_ITO[3], *OKABE_ITO) if c not in out.values()]
    for i, s in enumerate(s for s in labels if s not in out):
        out[s] = spare[i] if i < len(spare) else OKABE_ITO[i % len(OKABE_ITO)]
    return out


def plot_drop_curve(curve) -> go.Figure:
    """Held-out perplexity (log axis) against sublayers dropped, one curve per entry, the full model dotted."""
    fig = go.Figure()
    colours = _curve_colours(list(curve.perplexity))
    for s, values in curve.perplexity.items():
        random = s.startswith("random")
        fig.add_scatter(
            x=curve.counts, y=values, name=s, mode="lines+markers",
            line={"dash": "dash" if random else "solid", "color": colours[s], "width": 2.5},
            marker={"symbol": "circle-open" if random else "circle", "size": 8},
            hovertemplate="%{x} dropped<br>perplexity %{y:.2f}<extra>" + s + "</extra>",
        )  # fmt: skip
    full = float(curve.full_perplexity)
    fig.add_hline(y=full, line={"color": FULL_MODEL_GREY, "dash": "dot", "width": 2})
    # Plotly places an annotation on a log axis at 10**y, and add_hline's own label passes the raw value
    # (a label at 35.7 stretched the axis to 1e36): the label is added here in the axis' log units.
    fig.add_annotation(
        x=1, xref="paper", xanchor="right", y=float(np.log10(full)), yref="y", yanchor="bottom",
        text=f"full model {full:.2f}", showarrow=False, font={"color": FULL_MODEL_GREY},
    )  # fmt: skip
    values = [v for vs in curve.perplexity.values() for v in vs if v and np.isfinite(v)] + [full]
    lo, hi = np.log10(min(values)), np.log10(max(values))
    pad = max(0.05, 0.08 * (hi - lo))
    fig.update_yaxes(type="log", title="held-out perplexity (log)", range=[lo - pad, hi + pad])
    fig.update_xaxes(title="sublayers dropped", dtick=1 if len(curve.counts) < 12 else None)
    return base_layout(fig, title=f"Perplexity vs layers dropped — {curve.model}", height=420)


def caption_scan(scan) -> str:
    top_attn = scan.ranking("attn")[:4]
    top_mlp = scan.ranking("mlp")[:4]
    deep = scan.attn_similarity[scan.n_layers // 2 :]
    return (
        f"**{scan.model}** ({scan.layout} layout, {scan.n_layers} layers), {scan.samples} samples × {scan.seq_len} "
        f"tokens = {scan.tokens:,} tokens of {scan.text_source or 'text'}. Similarity = mean cos(X, Y) of the "
        f"residual stream before/after each sublayer (LLM-Drop, He et al. 2024). Most redundant attention layers: "
        f"{top_attn} (s = {', '.join(f'{scan.attn_similarity[i]:.3f}' for i in top_attn)}); most redundant MLPs: "
        f"{top_mlp}. Deep-half attention mean s = {float(np.mean(deep)):.3f} vs MLP "
        f"{float(np.mean(scan.mlp_similarity[scan.n_layers // 2 :])):.3f}. "
        f"Scan took {scan.provenance.timings.get('forward', 0):.1f} s on {scan.provenance.backend}."
    )


def caption_drop(ev) -> str:
    if ev.metric == "perplexity":
        q = f"perplexity {ev.full['perplexity']:.2f} → {ev.pruned['perplexity']:.2f}"
        speed = (
            f"; greedy generation {ev.full['tokens_per_s']:.1f} → {ev.pruned['tokens_per_s']:.1f} tokens/s"
        )
    else:
        q = f"mean-pooled embedding cosine to the full model {ev.pruned['embedding_cosine']:.4f}"
        speed = ""
    held = heldout_text(getattr(ev, "heldout", None))
    on = f" {'Perplexity' if ev.metric == 'perplexity' else 'Embeddings'} on {held}." if held else ""
    return (
        f"Dropped {ev.plan['description']} ({ev.plan['strategy']}) from **{ev.model}**: {q}{speed}; "
        f"{ev.params_removed:,} parameters removed ({ev.params_removed / ev.full['params']:.1%}); "
        f"KV cache {ev.kv_saving:.1%} smaller." + on
    )


def heldout_text(heldout: dict | None) -> str:
    """'4 windows × 256 tokens (1,024 tokens) of <source>', or '' when the result does not record it."""
    if not heldout:
        return ""
    src = heldout.get("source") or "held-out text"
    return (
        f"{heldout['windows']} windows × {heldout['tokens_per_window']} tokens "
        f"({heldout['tokens']:,} tokens) of {src}"
    )


def caption_curve(curve) -> str:
    last = curve.counts[-1]
    parts = [f"{s}: {v[-1]:.1f}" for s, v in curve.perplexity.items()]
    seeds = f" (random averaged over {len(curve.seeds)} seeds)" if len(curve.seeds) > 1 else ""
    held = heldout_text(getattr(curve, "heldout", None))
    on = f" Measured on {held}, the same windows as Apply drop." if held else ""
    return (
        f"Held-out perplexity of **{curve.model}** after dropping up to {last} sublayers, one-shot from one scan"
        f"{seeds}. Full model {curve.full_perplexity:.2f}; at {last} dropped — " + ", ".join(parts) + "." + on
    )


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:,.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def drop_metrics_rows(ev) -> list[list[str]]:
    """Rows [metric, full, dropped, change] of a drop evaluation for the tab's table (the sample excluded)."""
    rows = []
    for k in ev.full:
        if k == "sample":
            continue
        f, d = ev.full[k], ev.pruned.get(k)
        change = (d - f) / f if isinstance(f, int | float) and f else None
        rows.append([k, _fmt(f), _fmt(d), f"{change:+.1%}" if change is not None else ""])
    return rows
