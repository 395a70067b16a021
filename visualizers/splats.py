"""Figures and captions for 3D Gaussian pruning: score histogram with the cut, Gaussians in 3D coloured by
score or by fate, the kept-fraction / bytes vs PSNR Pareto plot (and its table), the caption of a pruning
report, the labelled before / after pair, and the copy of a pruned scene the 3D viewer shows."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from visualizers.style import HEATMAP_SCALE, OKABE_ITO, base_layout

__all__ = [
    "plot_score_histogram",
    "plot_gaussians",
    "plot_pareto",
    "plot_comparison",
    "pareto_caption",
    "pareto_table",
    "run_label",
    "caption",
    "metrics_rows",
    "labelled",
    "before_after",
    "viewer_scene",
]

_METHOD_COLOURS = {
    "random": OKABE_ITO[7],
    "opacity": OKABE_ITO[1],
    "voxel-merge": OKABE_ITO[3],
    "lightgaussian": OKABE_ITO[4],
    "lightgaussian-official": OKABE_ITO[2],
    "omg": OKABE_ITO[5],
}


def plot_score_histogram(
    scores: np.ndarray | None, keep_mask: np.ndarray, threshold: float | None, *, method: str, bins: int = 80
) -> go.Figure:
    """Histogram of log10(score) for kept and pruned Gaussians, with the cut as a dashed line."""
    fig = go.Figure()
    if scores is None:
        base_layout(fig, title=f"{method}: no score (random choice)", height=360)
        fig.add_annotation(text="This method ranks nothing: it keeps a random subset.", showarrow=False,
                           x=0.5, y=0.5, xref="paper", yref="paper")  # fmt: skip
        return fig
    s = np.asarray(scores, np.float64)
    pos = s[s > 0]
    floor = pos.min() * 0.5 if pos.size else 1e-12
    logs = np.log10(np.maximum(s, floor))
    edges = np.linspace(logs.min(), logs.max() + 1e-9, bins + 1)
    for label, sel, colour in (("pruned", ~keep_mask, OKABE_ITO[5]), ("kept", keep_mask, OKABE_ITO[4])):
        fig.add_trace(go.Histogram(x=logs[sel], xbins={"start": edges[0], "end": edges[-1],
                                   "size": edges[1] - edges[0]}, name=f"{label} ({int(sel.sum()):,})",
                                   marker_color=colour, opacity=0.85))  # fmt: skip
    if threshold is not None and threshold > 0:
        x = float(np.log10(max(threshold, floor)))
        fig.add_vline(
            x=x, line_dash="dash", line_color="black", annotation_text="cut", annotation_position="top"
        )
    n_zero = int((s <= 0).sum())
    base_layout(fig, title=f"{method}: score, {keep_mask.mean():.0%} kept", height=400)
    if n_zero:
        fig.add_annotation(text=f"{n_zero:,} never seen (score 0):<br>the bar at the left edge", x=0.99, y=0.98,
                           xref="paper", yref="paper", showarrow=False, xanchor="right", yanchor="top",
                           align="right", font={"size": 12})  # fmt: skip
    # the legend under the axis, left-aligned: beside the plot it was cut off in a narrow panel
    fig.update_layout(barmode="overlay", xaxis_title="log10 score", yaxis_title="Gaussians",
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.22, "yanchor": "top"},
                      margin={"l": 70, "r": 20, "t": 60, "b": 100})  # fmt: skip
    return fig


def plot_gaussians(
    means: np.ndarray,
    *,
    keep_mask: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    colour_by: str = "fate",
    max_points: int = 3000,
    seed: int = 0,
    title: str = "",
) -> go.Figure:
    """A random sample of Gaussian centres in 3D, coloured by fate (kept / pruned) or by log10 score.

    Points farther from the median than 2.5 x the median distance (background, floaters) are left out so the
    objects fill the view; the title says how many are drawn.
    """
    n = len(means)
    centre = np.median(means, axis=0)
    d = np.linalg.norm(means - centre, axis=1)
    near = np.nonzero(d <= 2.5 * np.median(d))[0]
    rng = np.random.default_rng(seed)
    idx = rng.choice(near, min(max_points, len(near)), replace=False) if len(near) else near
    p = means[idx]
    fig = go.Figure()
    if colour_by == "score" and scores is not None:
        s = np.asarray(scores, np.float64)[idx]
        c = np.log10(np.maximum(s, s[s > 0].min() * 0.5 if (s > 0).any() else 1e-12))
        fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers",
                                   marker={"size": 2.5, "color": c, "colorscale": HEATMAP_SCALE,
                                           "colorbar": {"title": "log10 score"}}, name="score"))  # fmt: skip
    else:
        mask = np.ones(n, bool) if keep_mask is None else keep_mask
        for label, sel, colour, op in (
            ("pruned", ~mask[idx], OKABE_ITO[5], 0.35),
            ("kept", mask[idx], OKABE_ITO[4], 0.9),
        ):
            fig.add_trace(go.Scatter3d(x=p[sel, 0], y=p[sel, 1], z=p[sel, 2], mode="markers",
                                       name=f"{label} ({int(sel.sum()):,} drawn)",
                                       marker={"size": 2.2, "color": colour, "opacity": op}))  # fmt: skip
    base_layout(
        fig, title=title or f"{len(idx):,} of {n:,} centres (a sample; background left out)", height=520
    )
    # the legend in one row under the title, with legible markers (the 3D markers are 2 px)
    fig.update_layout(scene={"aspectmode": "data", "xaxis": {"visible": False}, "yaxis": {"visible": False},
                             "zaxis": {"visible": False}, "camera": {"eye": {"x": 1.3, "y": 1.3, "z": 0.9}}},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                              "itemsizing": "constant"},
                      margin={"l": 0, "r": 0, "t": 90, "b": 0})  # fmt: skip
    return fig


def plot_pareto(
    rows: list[dict[str, Any]],
    *,
    x: str = "keep",
    title: str = "",
    label: str = "",
    shipped: list[dict[str, Any]] | None = None,
    shipped_label: str = "",
) -> go.Figure:
    """PSNR against kept fraction (``x="keep"``) or bytes (``x="bytes"``), one line per method.

    ``shipped`` rows (the GPU run shipped with the demo scene) are drawn too, as dashed lines with open
    markers in the same method colours, so a new run (solid, filled) is read against them; ``label`` and
    ``shipped_label`` say where each run's numbers come from and head its group in the legend.
    """
    fig = go.Figure()
    runs = [(shipped_label or "shipped run", shipped, "dash", "circle-open")] if shipped else []
    if rows or not shipped:
        runs.append((label, rows, "solid", "circle"))
    shown: set[str] = set()
    for _, run_rows, dash, symbol in runs:
        for m in dict.fromkeys(r["method"] for r in run_rows):
            pts = sorted((r for r in run_rows if r["method"] == m), key=lambda r: r[x])
            xs = [r[x] / (1e6 if x == "bytes" else 1) for r in pts]
            # one legend entry per method (its colour); a click hides the method in every run
            fig.add_trace(go.Scatter(x=xs, y=[r["psnr"] for r in pts], mode="lines+markers", name=m,
                                     legendgroup=m, showlegend=m not in shown,
                                     line={"color": _METHOD_COLOURS.get(m, OKABE_ITO[6]), "width": 2.5,
                                           "dash": dash},
                                     marker={"size": 8, "symbol": symbol, "line": {"width": 2}}))  # fmt: skip
            shown.add(m)
    if shipped:  # a second legend, inside the empty lower right: which line style is which run
        for name, _, dash, symbol in runs:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=name, legend="legend2",
                                     line={"color": "#555555", "width": 2.5, "dash": dash},
                                     marker={"size": 8, "symbol": symbol, "line": {"width": 2}}))  # fmt: skip
    base_layout(fig, title=title or "Quality vs size: every method on the same scene", width=600, height=480)
    # the method legend under the plot, so no entry is cut by the panel's edge
    fig.update_layout(legend={"orientation": "h", "y": -0.2, "x": 0, "yanchor": "top", "font": {"size": 12}},
                      legend2={"x": 0.99, "xanchor": "right", "y": 0.02, "yanchor": "bottom", "font": {"size": 12},
                               "bgcolor": "rgba(255,255,255,0.85)", "bordercolor": "#cccccc", "borderwidth": 1},
                      margin={"l": 70, "r": 20, "t": 60, "b": 110})  # fmt: skip
    fig.update_layout(xaxis_title="kept fraction" if x == "keep" else "size (MB)", yaxis_title="PSNR (dB)")
    if x == "keep":
        fig.update_xaxes(tickformat=".0%")
    return fig


def run_label(res) -> str:
    """Where a :class:`~engine.splats.compare.SplatComparison`'s numbers come from, in a few words."""
    s = res.settings
    views = f"view {res.views[0]}" if len(res.views) == 1 else f"{len(res.views)} views"
    backend = (res.backend or "cpu").split(" ")[0].upper()
    return f"this run ({backend}: {views}, {s.get('size')} px, {s.get('storage')})"


SHIPPED_LABEL = "shipped GPU run (12 views, 256 px, fp32)"


def plot_comparison(res, *, x: str = "keep", shipped: list[dict[str, Any]] | None = None) -> go.Figure:
    """:func:`plot_pareto` of a :class:`~engine.splats.compare.SplatComparison`, with the shipped GPU run of
    the same scene drawn beside it when ``shipped`` is given."""
    against = "ground truth" if res.reference == "ground truth" else "unpruned render"
    what = "size" if x == "bytes" else "kept fraction"
    return plot_pareto(res.rows, x=x, title=f"PSNR (vs {against}) by {what}, {res.scene_name}",
                       label=run_label(res), shipped=shipped, shipped_label=SHIPPED_LABEL)  # fmt: skip


def pareto_caption(res=None, *, shipped: bool = True) -> str:
    """What the Pareto figure shows: which runs, on which views, at which resolution, against what."""
    parts = []
    if shipped:
        parts.append("**Dashed lines, open markers**: the GPU run shipped with the demo scene (gsplat, all 12 "
                     "held-out views at 256 px, fp32, PSNR against ground truth, no fine-tune).")  # fmt: skip
    if res is not None:
        against = "ground truth" if res.reference == "ground truth" else "the unpruned render"
        parts.append(f"**Solid lines, filled markers**: this run on the {res.scene_name} ({res.backend or 'cpu'}, "
                     f"view {', '.join(res.views)} at {res.settings.get('size')} px, stored as "
                     f"{res.settings.get('storage')}, PSNR against {against}).")  # fmt: skip
    else:
        parts.append("**Solid lines, filled markers**: a run computed here by *Compute Pareto* (on the CPU: "
                     "one view at 128 px; the small legend says which), drawn beside it.")  # fmt: skip
    return " ".join(parts)


def pareto_table(rows: list[dict[str, Any]], *, sort: bool = False, run: str = "") -> list[list[Any]]:
    """Rows (run, method, keep, count, bytes, psnr, ssim) of a comparison, rounded for display."""
    rows = sorted(rows, key=lambda r: (r["method"], r["keep"])) if sort else rows
    return [[run, r["method"], f"{r['keep']:.2f}", r["count"], r["bytes"], round(r["psnr"], 2),
             round(r["ssim"], 4)] for r in rows]  # fmt: skip


def metrics_rows(rep) -> list[list[Any]]:
    """Rows (quantity, before, after) of a :class:`~engine.splats.evaluate.PruneReport`."""

    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    rows = [
        ["Gaussians", f"{rep.count_before:,}", f"{rep.count_after:,}"],
        ["size (MB)", f"{rep.bytes_before / 1e6:.2f}", f"{rep.bytes_after / 1e6:.2f} ({rep.storage})"],
        ["render (ms / view)", f"{rep.render_ms_before:.0f}", f"{rep.render_ms:.0f}"],
        ["FPS", f(1000 / rep.render_ms_before if rep.render_ms_before else None, ".1f"),
         f(1000 / rep.render_ms if rep.render_ms else None, ".1f")],
    ]  # fmt: skip
    if rep.reference == "ground truth":
        rows += [["PSNR vs ground truth (dB)", f(rep.psnr_before, ".2f"), f(rep.psnr, ".2f")],
                 ["SSIM vs ground truth", f(rep.ssim_before, ".4f"), f(rep.ssim, ".4f")]]  # fmt: skip
    rows += [["PSNR vs unpruned render (dB)", "inf", f(rep.psnr_vs_full, ".2f")],
             ["SSIM vs unpruned render", "1", f(rep.ssim_vs_full, ".4f")]]  # fmt: skip
    return rows


def caption(rep) -> str:
    params = ", ".join(f"{k}={v}" for k, v in rep.params.items())
    ref = "ground truth" if rep.reference == "ground truth" else "the unpruned render (no ground truth)"
    psnr = f"{rep.psnr:.2f} dB PSNR / {rep.ssim:.4f} SSIM against {ref}"
    return (
        f"**{rep.method}** ({params}) on the {rep.scene_name}: {rep.count_before:,} → {rep.count_after:,} "
        f"Gaussians ({rep.count_after / rep.count_before:.1%} kept), {rep.bytes_before / 1e6:.2f} → "
        f"{rep.bytes_after / 1e6:.2f} MB stored as {rep.storage}; {psnr}, mean over {len(rep.views)} views "
        f"({', '.join(rep.views)}). Rendered by **{rep.backend}**, {rep.render_ms:.0f} ms per view "
        f"(unpruned {rep.render_ms_before:.0f} ms)."
    )


def labelled(img: np.ndarray, text: str, *, right: bool = False, bottom: bool = False) -> Image.Image:
    """The image with a small label in one corner (top-left by default): which scene / backend it shows."""
    im = Image.fromarray(img).convert("RGB")
    d = ImageDraw.Draw(im)
    x0, y0, x1, y1 = d.textbbox((0, 0), text)
    w, h = (x1 - x0) + 8, (y1 - y0) + 8
    x = im.width - w if right else 0
    y = im.height - h if bottom else 0
    d.rectangle([x, y, x + w, y + h], fill=(0, 0, 0))
    d.text((x + 4, y + 3), text, fill=(255, 255, 255))
    return im


def before_after(rep) -> tuple[Image.Image, Image.Image]:
    """The report's chosen view before and after pruning, each labelled with its Gaussian count in a bottom
    corner (the slider's own label covers the top left)."""
    return (labelled(rep.before, f"before: {rep.count_before:,}", bottom=True),
            labelled(rep.after, f"after: {rep.count_after:,}", right=True, bottom=True))  # fmt: skip


# Gradio's splat viewer (gsplat.js) ignores Model3D's camera_position: its orbit camera starts 5 units from the
# origin with a fixed 1132 px focal length, so a 480 px high panel sees +-1.06 units vertically there.
VIEWER_RADIUS = 0.9  # the viewer copy is scaled so 95% of its Gaussians lie within this radius: all in frame


def viewer_scene(scene, *, radius: float = VIEWER_RADIUS):
    """The copy shown in the Model3D viewer: foreground only (background and floaters farther than 2.5 x the
    median distance from the median left out), DC colour only, turned from z-up into the y-down convention
    splat viewers expect (a +90 degree turn about x), centred and scaled uniformly so 95% of it lies within
    ``radius`` of the orbit centre: the viewer opens on the whole scene, not a close-up. The download keeps
    the full pruned scene unchanged."""
    from engine.splats.ply import GaussianScene

    centre = np.median(scene.means, axis=0)
    d = np.linalg.norm(scene.means - centre, axis=1)
    near = d <= 2.5 * np.median(d)
    s = scene.subset(near).with_sh_degree(0)
    extent = float(np.percentile(d[near], 95)) if near.any() else 1.0
    k = np.float32(radius / extent) if extent > 0 else np.float32(1.0)
    R = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)
    c, h = np.float32(np.sqrt(0.5)), np.float32(np.sqrt(0.5))
    w, x, y, z = s.quats.T
    quats = np.stack([c * w - h * x, c * x + h * w, c * y - h * z, c * z + h * y], axis=1)  # (c, h, 0, 0) * q
    return GaussianScene(((s.means - centre) @ R.T) * k, quats, s.log_scales + np.log(k), s.opacity_logits,
                         s.sh)  # fmt: skip
