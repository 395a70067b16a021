"""Pictures of visual token pruning: overlays (pruned patches dimmed and hatched, kept ones outlined), several
methods side by side, the agreement matrix (IoU of kept sets) and the Pareto plot (accuracy against kept
fraction, random band at the same place, objects-kept line). Pure functions of results; no model calls."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from visualizers.style import HEATMAP_SCALE, OKABE_ITO, base_layout

__all__ = [
    "overlay_image",
    "model_view",
    "stage_overlay",
    "comparison_tiles",
    "png_bytes",
    "side_by_side",
    "stage_kept",
    "plot_agreement",
    "plot_pareto",
    "pareto_rows",
    "pruning_caption",
    "pareto_caption",
]

OUTLINE = (230, 159, 0)  # Okabe-Ito orange
SIDE = 336  # px of an overlay (3x the 112 px model input)


def overlay_image(image: np.ndarray, grid: tuple[int, int], kept, *, groups=None, side: int = SIDE,
                  title: str | None = None) -> Image.Image:  # fmt: skip
    """``image`` RGB uint8 [S, S, 3] (what the model saw) with the patches not in ``kept`` dimmed to 30% and
    hatched, and each kept patch outlined. With ``groups`` ([N] pooled-window id, LLaVolta), window borders
    are drawn instead: every patch contributes to a pooled token."""
    gh, gw = grid
    img = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST)).astype(np.float32)
    ph, pw = side / gh, side / gw
    mask = np.zeros(gh * gw, bool)
    if groups is None:
        mask[np.asarray(kept, dtype=int)] = True
    else:
        mask[:] = True
    pm = mask.reshape(gh, gw)
    rows = (np.arange(side) // ph).astype(int).clip(0, gh - 1)
    cols = (np.arange(side) // pw).astype(int).clip(0, gw - 1)
    pix = pm[rows][:, cols]  # [side, side] kept?
    yy, xx = np.mgrid[0:side, 0:side]
    hatch = ((xx + yy) % 10) < 1
    dim = ~pix
    img[dim] *= 0.3
    img[dim & hatch] = 150.0
    out = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(out)
    if groups is None:
        for i in np.flatnonzero(mask):
            r, c = divmod(int(i), gw)
            d.rectangle([c * pw, r * ph, (c + 1) * pw - 1, (r + 1) * ph - 1], outline=OUTLINE, width=2)
    else:
        g = np.asarray(groups).reshape(gh, gw)
        for r in range(gh):
            for c in range(gw):
                if c + 1 < gw and g[r, c] != g[r, c + 1]:
                    d.line([(c + 1) * pw, r * ph, (c + 1) * pw, (r + 1) * ph], fill=OUTLINE, width=2)
                if r + 1 < gh and g[r, c] != g[r + 1, c]:
                    d.line([c * pw, (r + 1) * ph, (c + 1) * pw, (r + 1) * ph], fill=OUTLINE, width=2)
    if title:
        canvas = Image.new("RGB", (side, side + 26), "white")
        canvas.paste(out, (0, 26))
        ImageDraw.Draw(canvas).text((4, 6), title, fill=(0, 0, 0))
        out = canvas
    return out


def stage_kept(res, stage: int):
    """(kept patches, label) after pruning step ``stage`` of a :class:`~engine.tokens.run.TokenPruning`
    (0 = all tokens; beyond the last step: the final set)."""
    N = res.grid[0] * res.grid[1]
    if stage <= 0 or not res.stages:
        return np.arange(N), "all tokens (before any pruning)"
    s = res.stages[min(stage, len(res.stages)) - 1]
    where = {"vit": f"after encoder layer {s['layer']}", "pre-lm": "before the LM",
             "lm": f"before LM layer {s['layer']}"}[s["place"]]  # fmt: skip
    return np.asarray(
        s["kept"]
    ), f"step {min(stage, len(res.stages))}/{len(res.stages)}: {len(s['kept'])} kept {where}"


def model_view(image: np.ndarray, size: int = 112) -> np.ndarray:
    """``image`` RGB uint8 centre-cropped and resized as the model saw it (the scene VLM reads 112 px)."""
    from engine.vision.images import resize_for  # an image function, no model

    return resize_for(image, size)[0]


def stage_overlay(res, image: np.ndarray, stage: int) -> tuple[Image.Image, str]:
    """(overlay of ``image`` after pruning step ``stage`` of a :class:`~engine.tokens.run.TokenPruning`, label
    of that step); at the last step of a pooling method the window borders are drawn."""
    kept, label = stage_kept(res, stage)
    final = stage >= len(res.stages)
    return overlay_image(
        model_view(image), res.grid, kept, groups=res.groups if final and stage > 0 else None
    ), label


def comparison_tiles(cmp, image: np.ndarray, *, cols: int = 4) -> Image.Image:
    """One overlay per method of a :class:`~engine.tokens.run.TokenComparison`, titled with its answers."""
    small = model_view(image)
    tiles = [overlay_image(small, r.grid, r.kept, groups=r.groups, side=224,
                           title=f"{r.method}: {r.answer_pruned} (all: {r.answer_full})") for r in cmp.results]  # fmt: skip
    return side_by_side(tiles, cols=cols)


def png_bytes(img: Image.Image) -> bytes:
    """A PIL picture as PNG bytes (for the downloads)."""
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def side_by_side(images: list[Image.Image], *, cols: int = 4) -> Image.Image:
    """Tile overlays (same size) into one picture, ``cols`` per row."""
    w, h = images[0].size
    rows = -(-len(images) // cols)
    top = 28  # a blank band: the image component's label sits over the top-left corner
    out = Image.new("RGB", (min(cols, len(images)) * (w + 6), top + rows * (h + 6)), "white")
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out.paste(im, (c * (w + 6), top + r * (h + 6)))
    return out


def plot_agreement(names: list[str], iou: np.ndarray, *, keep: float) -> go.Figure:
    """Heatmap of the IoU between the kept sets of each pair of methods (same kept fraction)."""
    fig = go.Figure(go.Heatmap(z=iou, x=names, y=names, zmin=0, zmax=1, colorscale=HEATMAP_SCALE,
                               text=np.round(iou, 2), texttemplate="%{text}", colorbar={"title": "IoU"}))  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return base_layout(fig, title=f"Agreement of kept sets (IoU) at {keep:.0%} kept", width=560, height=480)


def pareto_rows(table: dict) -> list[dict]:
    """The table behind the Pareto plot, one row per (method, kept fraction)."""
    full = table["full"]
    rows = [{"method": "all tokens", "acts": "-", "kept": 1.0, "tokens": full["tokens"],
             "accuracy": round(full["accuracy"], 3), "random here (mean ± std)": "-",
             "objects kept": 1.0, "GFLOPs": round(full["flops"] / 1e9, 3),
             "latency ms": _lat(table, "full", 1.0)}]  # fmt: skip
    for r in table["rows"]:
        acc = r["accuracy"] if r["method"] != "random" else r["control_accuracy_mean"]
        rows.append({
            "method": r["method"], "acts": r["place"], "kept": r["keep"], "tokens": r["tokens"],
            "accuracy": round(acc, 3) if r["method"] != "random" else f"{acc:.3f} ± {r['control_accuracy_std']:.3f}",
            "random here (mean ± std)": f"{r['control_accuracy_mean']:.3f} ± {r['control_accuracy_std']:.3f} ({r['control']})",
            "objects kept": round(r["objects_kept"], 3), "GFLOPs": round(r["flops"] / 1e9, 3),
            "latency ms": _lat(table, r["method"], r["keep"]),
        })  # fmt: skip
    return rows


def _lat(table: dict, method: str, keep: float):
    v = (table.get("latency_ms") or {}).get(f"{method}@{keep}")
    return round(v, 1) if v is not None else None


def plot_pareto(table: dict) -> go.Figure:
    """Accuracy against kept fraction per method; the random-before-LM band (mean ± std over seeds); each
    in-model method's own random control (dotted); all-tokens accuracy (dashed); objects kept by random (grey)."""
    fig = go.Figure()
    keeps = table["keeps"]
    full = table["full"]["accuracy"]
    rnd = [r for r in table["rows"] if r["method"] == "random"]
    x = [r["keep"] for r in rnd]
    mu = np.array([r["control_accuracy_mean"] for r in rnd])
    sd = np.array([r["control_accuracy_std"] for r in rnd])
    fig.add_trace(go.Scatter(x=x + x[::-1], y=list(mu + sd) + list((mu - sd)[::-1]), fill="toself", mode="lines",
                             fillcolor="rgba(120,120,120,0.25)", line={"width": 0},
                             name="random before LM (mean ± std)", hoverinfo="skip"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=mu, mode="lines+markers", line={"color": "grey", "width": 2},
                             name="random before LM"))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=[r["objects_kept"] for r in rnd], mode="lines", yaxis="y2",
                             line={"color": "grey", "dash": "dot"}, name="objects kept (random)"))  # fmt: skip
    names = [r["method"] for r in table["rows"] if r["method"] != "random" and r["keep"] == keeps[0]]
    for i, name in enumerate(names):
        rs = [r for r in table["rows"] if r["method"] == name]
        col = OKABE_ITO[i % len(OKABE_ITO)]
        fig.add_trace(go.Scatter(x=[r["keep"] for r in rs], y=[r["accuracy"] for r in rs], mode="lines+markers",
                                 line={"color": col, "width": 2.5}, name=name,
                                 customdata=[[r["objects_kept"], r["flops"] / 1e9] for r in rs],
                                 hovertemplate=name + ": kept %{x}, accuracy %{y:.3f}, objects %{customdata[0]:.2f}, "
                                 "%{customdata[1]:.2f} GFLOPs<extra></extra>"))  # fmt: skip
        if rs[0]["place"] != "pre-lm":
            fig.add_trace(go.Scatter(x=[r["keep"] for r in rs], y=[r["control_accuracy_mean"] for r in rs],
                                     error_y={"type": "data", "array": [r["control_accuracy_std"] for r in rs]},
                                     mode="lines", line={"color": col, "dash": "dot", "width": 1.5},
                                     name=f"random at {name}'s place"))  # fmt: skip
    fig.add_hline(y=full, line={"dash": "dash", "color": "black"}, annotation_text=f"all tokens {full:.3f}",
                  annotation_position="top")  # fmt: skip
    fig.update_layout(
        xaxis={"title": "kept fraction of image tokens", "type": "log", "tickvals": keeps + [1.0]},
        yaxis={"title": f"VLM accuracy ({table['n_questions']} val questions)"},
        yaxis2={"title": "objects with a kept patch", "overlaying": "y", "side": "right", "range": [0, 1.02], "tickmode": "linear", "tick0": 0, "dtick": 0.25,
                "showgrid": False},
    )  # fmt: skip
    base_layout(fig, title="Accuracy vs kept image tokens (scene VLM)", width=980, height=680)
    fig.update_layout(legend={"font": {"size": 11}, "orientation": "h", "x": 0, "y": -0.22, "yanchor": "top"},
                      margin={"b": 200, "r": 80})  # fmt: skip
    return fig


def pruning_caption(res, stage_label: str) -> str:
    where = {"vit": "inside the vision encoder", "pre-lm": "between projector and LM", "lm": "inside the LM"}
    t = res.provenance.timings
    s = (
        f"**{res.method}** ({where.get(res.place, res.place)}) on {res.model}, keep {res.keep:.2f}: "
        f"{len(res.kept)} of {res.grid[0] * res.grid[1]} image tokens reach the last LM layer. Shown: {stage_label}; "
        f"dimmed and hatched patches are pruned, outlined ones kept. Question *{res.question}*: answer with all "
        f"tokens **{res.answer_full}**, with the pruned tokens **{res.answer_pruned}**. Prefill "
        f"{res.flops / 1e9:.2f} GFLOPs (all tokens {res.flops_full / 1e9:.2f}); scoring "
        f"{1e3 * t.get('score', 0):.1f} ms of a {1e3 * (t.get('score', 0) + t.get('forward', 0)):.0f} ms run."
    )
    if res.groups is not None:
        s += " LLaVolta pools: every patch feeds one pooled token (window borders drawn), none is dropped."
    if res.notices:
        s += " Notices: " + "; ".join(res.notices) + "."
    return s


def pareto_caption(table: dict) -> str:
    return (
        f"Scene VLM on the first {table['n_scenes']} validation scenes ({table['n_questions']} questions), "
        f"{table['backend']}. Random controls: {len(table['seeds'])} seeds, at the same place as each method "
        "(before the LM for CLS attention, Turbo, LLaVolta and flowcut-select; inside the ViT on FlowCut's own "
        "schedule; at PyramidDrop's stages; at FastV's layer). The VLM was trained with randomly dropped image "
        "tokens; its ViT was not, so pruning inside the ViT shifts the features the LM reads."
    )
