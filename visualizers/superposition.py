"""Figures and captions for the superposition family: result -> plotly Figure or text. No model calls."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from visualizers.style import HEATMAP_SCALE, OKABE_ITO, base_layout

__all__ = [
    "plot_layer_scan",
    "plot_toy_sweep",
    "plot_toy_gram",
    "plot_feature_map",
    "plot_compare",
    "plot_training",
    "caption_layer",
    "caption_scan",
    "caption_toy",
    "caption_compare",
    "caption_feature_map",
    "metrics_rows",
    "compare_rows",
    "scan_rows",
    "toy_rows",
]

BLUE, ORANGE, GREEN, BLACK, VERMILLION, SKY = (
    OKABE_ITO[4],
    OKABE_ITO[0],
    OKABE_ITO[2],
    OKABE_ITO[7],
    OKABE_ITO[5],
    OKABE_ITO[1],
)


def plot_layer_scan(scan, *, width: int = 860, height: int = 520) -> go.Figure:
    """F (bars, with the sweep's min-max band) and N (markers) per layer; psi = F / N as a line (right axis)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    layers = list(scan.layers)
    F = np.asarray(scan.effective_features)
    lo, hi = np.asarray(scan.f_low), np.asarray(scan.f_high)
    fig.add_trace(
        go.Bar(
            x=layers,
            y=F,
            name="effective features F",
            marker_color=BLUE,
            error_y=dict(
                type="data", symmetric=False, array=hi - F, arrayminus=F - lo, color=BLACK, thickness=1.2
            ),
            hovertemplate="layer %{x}<br>F = %{y:.0f}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=scan.neurons,
            name="neurons N",
            mode="lines",
            line=dict(color=BLACK, dash="dash", width=2),
            hovertemplate="N = %{y}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=layers,
            y=scan.psi,
            name="psi = F / N",
            mode="lines+markers",
            line=dict(color=ORANGE, width=3),
            hovertemplate="psi = %{y:.2f}<extra></extra>",
        ),
        secondary_y=True,
    )
    base_layout(
        fig, title=f"Effective features per layer: {scan.model} ({scan.site})", width=width, height=height
    )
    fig.update_xaxes(title_text="layer", dtick=1 if len(layers) <= 16 else 2)
    ymax = float(max(np.max(hi), max(scan.neurons))) * 1.1
    fig.update_yaxes(title_text="features", range=[0, ymax], secondary_y=False)
    fig.update_yaxes(
        title_text="psi = F / N",
        range=[0, max(1.1, float(np.max(scan.psi)) * 1.15)],
        secondary_y=True,
        showgrid=False,
    )
    fig.update_layout(
        legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"), bargap=0.25
    )
    w = scan.warnings() if hasattr(scan, "warnings") else []
    _warn(fig, "; ".join(x.split(":")[0] for x in w), y=0.98)
    return fig


def plot_toy_sweep(res, *, width: int = 640, height: int = 500) -> go.Figure:
    """Measured F against ground truth, one point per sparsity level, with the y = x line."""
    t = np.asarray(res.true_features, dtype=float)
    f = np.asarray(res.effective_features, dtype=float)
    top = float(max(t.max(), f.max(), res.n_hidden)) * 1.1 + 1
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, top], y=[0, top], mode="lines", name="F = ground truth", line=dict(color=BLACK, dash="dot")
        )
    )
    fig.add_trace(
        go.Scatter(
            x=t,
            y=f,
            mode="markers",
            name="toy model",
            marker=dict(
                size=13,
                color=res.sparsities,
                colorscale="Viridis",
                cmin=0,
                cmax=1,
                colorbar=dict(title="sparsity S", x=1.02),
                line=dict(color=BLACK, width=1),
            ),
            text=[f"S={s:g}" for s in res.sparsities],
            hovertemplate="%{text}<br>true %{x}<br>F = %{y:.2f}<extra></extra>",
        )
    )
    fig.add_hline(
        y=res.n_hidden,
        line=dict(color=VERMILLION, dash="dash"),
        annotation_text=f"m = {res.n_hidden} neurons",
    )
    r = res.pearson_r
    base_layout(
        fig, title=f"Toy models: measured F vs ground truth (r = {r:.3f})", width=width, height=height
    )
    fig.update_xaxes(title_text="represented features (||W_i|| > 0.5)", range=[0, top])
    fig.update_yaxes(title_text="effective features F = exp(H)", range=[0, top])
    fig.update_layout(showlegend=True, legend=dict(x=0.02, y=0.98))
    return fig


def plot_toy_gram(res, levels: list[int] | None = None, *, width: int = 860, height: int = 360) -> go.Figure:
    """W^T W heatmaps (feature geometry) for a few sparsity levels, one shared colour range [-1, 1]."""
    k = len(res.sparsities)
    if levels is None:
        levels = sorted({0, k // 2, k - 1})
    fig = make_subplots(
        rows=1,
        cols=len(levels),
        subplot_titles=[f"S = {res.sparsities[i]:g} ({res.true_features[i]} represented)" for i in levels],
        horizontal_spacing=0.06,
    )
    for c, i in enumerate(levels, start=1):
        g = np.asarray(res.gram[i])
        fig.add_trace(
            go.Heatmap(
                z=g,
                zmin=-1,
                zmax=1,
                colorscale=HEATMAP_SCALE,
                showscale=c == len(levels),
                colorbar=dict(title="W<sup>T</sup>W", len=0.9),
                hovertemplate="features %{y}, %{x}: %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=c,
        )
        fig.update_yaxes(
            autorange="reversed", scaleanchor=f"x{c if c > 1 else ''}", row=1, col=c, showticklabels=c == 1
        )
    base_layout(
        fig,
        title="Feature geometry W<sup>T</sup>W (features ordered by importance)",
        width=width,
        height=height,
    )
    fig.update_layout(margin=dict(l=50, r=30, t=80, b=40))
    return fig


def plot_feature_map(fmap, *, width: int = 760, height: int = 600) -> go.Figure:
    """UMAP of decoder directions; colour = log10 activation frequency; hover = top tokens in context."""
    xy = np.asarray(fmap.xy, dtype=float).reshape(-1, 2)
    freq = np.asarray(fmap.freq, dtype=float)
    fig = go.Figure(
        go.Scattergl(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers",
            marker=dict(
                size=6,
                color=np.log10(np.clip(freq, 1e-5, 1)),
                colorscale="Viridis",
                cmin=-4,
                cmax=0,
                colorbar=dict(
                    title="fires on",
                    tickvals=[-4, -3, -2, -1, 0],
                    ticktext=["0.01%", "0.1%", "1%", "10%", "100%"],
                ),
                opacity=0.85,
            ),
            text=fmap.hover,
            hovertemplate="%{text}<extra></extra>",
        )
    )
    base_layout(
        fig, title=f"SAE features (UMAP of decoder directions): {fmap.label}", width=width, height=height
    )
    fig.update_xaxes(title_text="UMAP 1", showticklabels=False)
    fig.update_yaxes(title_text="UMAP 2", showticklabels=False)
    fig.update_layout(hoverlabel=dict(font_family="DejaVu Sans Mono, monospace", font_size=12, align="left"))
    _warn(fig, getattr(fmap, "warning", ""))
    return fig


def _warn(fig: go.Figure, text: str, *, y: float = 1.0) -> None:
    """A vermillion banner across the top of the plot area: what makes the figure unsound to show as is."""
    if not text:
        return
    fig.add_annotation(
        xref="paper", yref="paper", x=0.5, y=y, xanchor="center", yanchor="top", showarrow=False,
        text="<b>⚠ " + text.replace("; ", "<br>⚠ ") + "</b>", font=dict(color="white", size=13),
        bgcolor=VERMILLION, bordercolor=VERMILLION, borderpad=6, align="left",
    )  # fmt: skip


def plot_compare(a, b, *, width: int = 1060, height: int = 460) -> go.Figure:
    """Two measurements side by side on identical axes: sorted activation mass p_i against rank (log-log)."""
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, subplot_titles=[_label(a), _label(b)], horizontal_spacing=0.05
    )
    pa, pb = (np.sort(np.asarray(m.p, dtype=float))[::-1] for m in (a, b))
    ymin = max(1e-8, float(min(pa[pa > 0].min(initial=1), pb[pb > 0].min(initial=1))))
    ymax = float(max(pa.max(), pb.max()))
    xmax = max(len(pa), len(pb))
    for c, (m, p, color) in enumerate(((a, pa, BLUE), (b, pb, ORANGE)), start=1):
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(p) + 1),
                y=np.clip(p, ymin, None),
                mode="lines",
                line=dict(color=color, width=3),
                name=_label(m),
                hovertemplate="rank %{x}: p = %{y:.2e}<extra></extra>",
            ),
            row=1,
            col=c,
        )
        fig.add_vline(x=m.effective_features, line=dict(color=BLACK, dash="dash"), row=1, col=c)
        fig.add_vline(x=m.neurons, line=dict(color=VERMILLION, dash="dot"), row=1, col=c)
        fig.add_annotation(
            x=np.log10(max(m.effective_features, 1)),
            y=np.log10(ymax),
            text=f"F={m.effective_features:.0f}, N={m.neurons}, psi={m.psi:.2f}",
            showarrow=False,
            xanchor="right",
            yanchor="top",
            row=1,
            col=c,
        )
        fig.update_xaxes(
            type="log", range=[0, np.log10(xmax * 1.05)], title_text="feature rank", row=1, col=c
        )
    # both panels, same range; ticks at powers of ten written 1e-4 (not plotly's SI "100µ")
    fig.update_yaxes(type="log", range=[np.log10(ymin), np.log10(ymax * 1.5)], dtick=1, exponentformat="e",
                     showexponent="all")  # fmt: skip
    fig.update_xaxes(dtick=1, exponentformat="none")  # ranks: 1, 10, 100, 1000
    fig.update_yaxes(title_text="activation mass p<sub>i</sub>", title_standoff=8, row=1, col=1)
    base_layout(
        fig, title="Compare: activation-mass distribution (dashed: F; dotted: N)", width=width, height=height
    )
    fig.update_layout(showlegend=False, margin=dict(l=100, r=30, t=80, b=60))
    for c, m in enumerate((a, b), start=1):
        w = m.warnings() if hasattr(m, "warnings") else []
        if w:
            dom = fig.layout[f"xaxis{c if c > 1 else ''}"].domain
            fig.add_annotation(
                xref="paper", yref="paper", x=(dom[0] + dom[1]) / 2, y=0.02, xanchor="center", yanchor="bottom",
                showarrow=False, text="<b>⚠ " + "<br>⚠ ".join(x.split(":")[0] for x in w) + "</b>",
                font=dict(color="white", size=12), bgcolor=VERMILLION, borderpad=5,
            )  # fmt: skip
    return fig


def plot_training(losses: list[float], *, warning: str = "", best_epoch: int | None = None, width: int = 640,
                  height: int = 300) -> go.Figure:  # fmt: skip
    """Mean training loss per epoch (log scale); the kept (best) epoch marked; ``warning`` as a banner."""
    fig = go.Figure(
        go.Scatter(
            x=list(range(1, len(losses) + 1)),
            y=losses,
            mode="lines",
            line=dict(color=BLUE, width=2.5),
            name="loss",
            hovertemplate="epoch %{x}: %{y:.4g}<extra></extra>",
        )  # fmt: skip
    )
    if best_epoch is not None and 0 <= best_epoch < len(losses):
        fig.add_trace(go.Scatter(x=[best_epoch + 1], y=[losses[best_epoch]], mode="markers", name="kept epoch",
                                 marker=dict(color=ORANGE, size=11, line=dict(color=BLACK, width=1))))  # fmt: skip
    base_layout(fig, title="SAE training loss", width=width, height=height)
    fig.update_xaxes(title_text="epoch")
    lo, hi = (min(losses), max(losses)) if losses else (1.0, 1.0)
    wide = lo > 0 and hi / lo > 3  # over a wide range, label only 1-2-5 ticks so the labels do not collide
    fig.update_yaxes(title_text="MSE + lambda mean|z|", type="log", tickformat=".2~g",  # 0.05, not "50m"
                     **({"dtick": "D2"} if wide else {}))  # fmt: skip
    fig.update_layout(legend=dict(x=0.98, xanchor="right", y=0.98), margin=dict(l=80, r=30, t=60, b=50))
    _warn(fig, "; ".join(w.split(":")[0] for w in warning.split("; ")) if warning else "", y=0.98)
    return fig


def _label(m) -> str:
    if m.sae_source != "trained":
        return f"{m.model} L{m.layer} {m.site}, uploaded SAE {m.sae_source} (d_sae {m.d_sae})"
    lam = m.provenance.params.get("l1")
    exp = m.provenance.params.get("expansion")
    return f"{m.model} L{m.layer} {m.site}, lambda={lam:g}, x{exp:g}"


def metrics_rows(m) -> list[list]:
    """Rows for a metrics table: name, value."""
    return [
        ["effective features F", f"{m.effective_features:.1f}"],
        ["neurons N", m.neurons],
        ["psi = F / N", f"{m.psi:.3f}"],
        ["entropy H (nats)", f"{m.entropy:.3f}"],
        ["dictionary size", m.d_sae],
        ["activations", m.n_activations],
        ["reconstruction MSE", f"{m.mse:.4g}"],
        ["explained variance", f"{m.explained_variance:.3f}"],
        ["mean L0", f"{m.l0:.1f}"],
        ["dead fraction", f"{m.dead_fraction:.3f}"],
        ["dense fraction (>10%)", f"{m.dense_fraction:.3f}"],
        [
            "SAE epochs (converged)",
            f"{m.epochs} ({'yes' if m.converged else 'NO: stopped by the cap'})"
            if m.sae_source == "trained"
            else f"uploaded ({m.sae_source})",
        ],
        ["SAE time (s)", f"{m.sae_seconds:.1f}" if m.sae_source == "trained" else "-"],
        ["backend", m.provenance.backend],
    ]


def _warnings_md(m) -> str:
    w = m.warnings() if hasattr(m, "warnings") else []
    return "".join(f"⚠ **{x.split(':')[0]}**:{x.split(':', 1)[1]}. " for x in w)


def caption_layer(m) -> str:
    """What the one-layer view shows: the input, the SAE (trained here with its settings, or uploaded: file,
    architecture, shapes), the headline numbers, and loudly first anything that makes them unsound."""
    prm = m.provenance.params
    head = _warnings_md(m)
    if head:
        head += "Read F and psi below with care, or raise the epoch cap / lambda. "
    where = f"**{m.model}**, {m.hook} ({m.site}), {m.n_activations:,} token activations of width N = {m.neurons}. "
    if m.sae_source != "trained":
        info = getattr(m, "sae_info", None) or {}
        tensors = ", ".join(
            f"{k} {'x'.join(map(str, v[1]))} {v[0]}" for k, v in (info.get("tensors") or {}).items()
        )
        cfg = (
            f" with `{info['cfg_file']}`"
            if info.get("cfg_file")
            else " (no cfg.json: read as a standard ReLU SAE)"
        )
        arch = info.get("architecture", "standard")
        k = f" (k = {info['k']})" if info.get("k") else ""
        sae = (f"Uploaded SAE `{m.sae_source}`{cfg}: {arch}{k}, "
               f"d_sae {m.d_sae}; {tensors}. Applied as uploaded (not trained here). ")  # fmt: skip
    else:
        stop = (f"early stop at epoch {m.epochs}, best epoch {m.best_epoch + 1} kept" if m.converged
                else f"{m.epochs} epochs, stopped by the cap")  # fmt: skip
        sae = (f"Tied ReLU SAE (Bereska et al. 2025) trained on them: dictionary {m.d_sae} "
               f"(x{prm.get('expansion', 0):g}), lambda = {prm.get('l1', 0):g}, lr = {prm.get('lr', 0):g}, "
               f"batch {prm.get('batch_size', 0)}, {stop}. ")  # fmt: skip
    pre = (
        f"*{m.precomputed[0].upper()}{m.precomputed[1:]}; change any setting to train live.* "
        if m.precomputed
        else ""
    )
    return (
        head + pre + where + sae
        + f"p_i = mean|z_i| / sum_j mean|z_j|; **F = exp(H) = {m.effective_features:.1f}**, "
        f"**psi = F / N = {m.psi:.2f}**; explained variance {m.explained_variance:.3f}, mean L0 {m.l0:.1f} "
        f"of {m.d_sae}, dead {m.dead_fraction:.1%}, dense {m.dense_fraction:.1%}."
    )  # fmt: skip


def caption_scan(scan) -> str:
    prm = scan.provenance.params
    i = int(np.argmax(scan.psi))
    sweep = (
        "band = min-max of F over lambda x{0.5, 2} and dictionary x{0.5, 2}"
        if prm.get("sweep")
        else "no sweep"
    )
    warn = _warnings_md(scan)
    return (
        (warn + "Compare layers with care, or raise the epoch cap. " if warn else "")
        + f"**{scan.model}**, site {scan.site}, layers {scan.layers[0]}-{scan.layers[-1]}, "
        f"{scan.n_activations:,} activations per layer; SAE x{prm.get('expansion', 0):g}, lambda = {prm.get('l1', 0):g}, "
        f"at most {prm.get('max_epochs')} epochs; {sweep}. Bars: F; dashed: N; line: psi. "
        f"Highest psi = {scan.psi[i]:.2f} at layer {scan.layers[i]} (F = {scan.effective_features[i]:.0f}); "
        f"mean psi = {float(np.mean(scan.psi)):.2f}. Mean L0 {float(np.mean(scan.l0)):.0f} of "
        f"{int(prm.get('expansion', 0) * scan.neurons[0])} dictionary features"
        + (
            ": the codes are dense, so F tracks the dictionary size (see the band) more than the layer."
            if float(np.mean(scan.l0)) > 0.2 * prm.get("expansion", 1) * scan.neurons[0]
            else "."
        )
    )


def caption_toy(res) -> str:
    prm = res.provenance.params
    return (
        f"Toy models (Elhage et al. 2022): n = {res.n_features} features, m = {res.n_hidden} neurons, importance "
        f"decay {prm.get('importance_decay')}, {len(res.sparsities)} sparsity levels; ground truth: {res.rule}. "
        f"Measured: tied SAE on the hidden activations, x{prm.get('sae_expansion'):g}, lambda = {prm.get('sae_l1'):g}. "
        f"**Pearson r = {res.pearson_r:.3f}** (the paper reports > 0.94). "
        f"Time {res.provenance.timings.get('total', 0):.1f} s."
    )


def caption_compare(a, b) -> str:
    warn = "".join(f"{side}: {_warnings_md(m)}" for side, m in (("Left", a), ("Right", b)) if _warnings_md(m))
    pre = " *Both precomputed defaults (shipped); change a setting to train live.*" if (
        a.precomputed and b.precomputed) else ""  # fmt: skip
    return (
        warn + f"Left: {_label(a)}: F = {a.effective_features:.1f}, psi = {a.psi:.2f}, mean L0 {a.l0:.0f}. "
        f"Right: {_label(b)}: F = {b.effective_features:.1f}, psi = {b.psi:.2f}, mean L0 {b.l0:.0f}. "
        "Same axes on both sides." + pre
    )


def caption_feature_map(fm) -> str:
    prm = fm.provenance.params
    return (
        f"UMAP (cosine, {prm.get('n_neighbors', 15)} neighbours) of {len(fm.features):,} live decoder directions "
        f"({fm.n_dead} dead left out), colour = log10 of how often each feature fires; hover for its "
        f"top-activating tokens «in context». "
        + (
            f"Precomputed with the measurement ({fm.precomputed})."
            if getattr(fm, "precomputed", "")
            else f"UMAP {fm.provenance.timings.get('umap', 0):.1f} s."
        )  # fmt: skip
    )


def compare_rows(a, b) -> list[list]:
    """Rows for the A-vs-B table: metric, A's value, B's value."""
    return [[x[0], x[1], y[1]] for x, y in zip(metrics_rows(a), metrics_rows(b))]


def scan_rows(scan) -> list[list]:
    """Rows for the layer-scan table: layer, N, F, psi, F low, F high, explained variance, L0 (rounded)."""
    return [[r["layer"], r["neurons"], round(r["effective_features"], 1), round(r["psi"], 3),
             round(r["f_low"], 1), round(r["f_high"], 1), round(r["explained_variance"], 3), round(r["l0"], 1)]
            for r in scan.tables()["layers"]]  # fmt: skip


def toy_rows(res) -> list[list]:
    """Rows for the toy-sweep table: S, true features, F, psi, explained variance (rounded)."""
    return [[r["sparsity"], r["true_features"], round(r["effective_features"], 2), round(r["psi"], 3),
             round(r["sae_explained_variance"], 3)] for r in res.tables()["toy_sweep"]]  # fmt: skip
