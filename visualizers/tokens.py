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
TILE = 256  # px of one tile in the side-by-side comparison
TITLE_PX = (18, 15)  # font sizes of a tile's two title lines (method; answers): readable on a slide
GREY = "#7f7f7f"  # every random control is drawn in grey
# one colour and marker per method in the Pareto plot, so that no two lines of one panel look alike
# (Okabe-Ito, with the close pairs orange/vermillion and sky blue/blue kept apart by panel)
PARETO_STYLE = tuple(zip((OKABE_ITO[i] for i in (4, 5, 2, 6, 7, 0, 1, 3)),
                         ("circle", "square", "diamond", "triangle-up", "x", "star", "triangle-down", "hexagon")))  # fmt: skip


def _font(size: int, *, bold: bool = False):
    """DejaVu Sans at ``size`` px (Pillow's own scalable font where DejaVu is not installed)."""
    from PIL import ImageFont

    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf") if bold else ("DejaVuSans.ttf",):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _fit_text(draw, text: str, font, width: int) -> str:
    """``text`` cut with an ellipsis so that it fits ``width`` px in ``font``."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def overlay_image(image: np.ndarray, grid: tuple[int, int], kept, *, groups=None, side: int = SIDE,
                  title: str | tuple[str, ...] | None = None) -> Image.Image:  # fmt: skip
    """``image`` RGB uint8 [S, S, 3] (what the model saw) with the patches not in ``kept`` dimmed to 30% and
    hatched, and each kept patch outlined. With ``groups`` ([N] pooled-window id, LLaVolta), window borders
    are drawn instead: every patch contributes to a pooled token. ``title``: one line, or (bold first line,
    second line), drawn above the picture at :data:`TITLE_PX` px."""
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
        lines = (title,) if isinstance(title, str) else tuple(title)
        fonts = [_font(TITLE_PX[0], bold=True)] + [_font(TITLE_PX[1])] * (len(lines) - 1)
        band = 8 + sum(f.size + 6 for f in fonts)
        canvas = Image.new("RGB", (side, side + band), "white")
        canvas.paste(out, (0, band))
        d = ImageDraw.Draw(canvas)
        y = 4
        for line, f in zip(lines, fonts, strict=True):
            d.text((4, y), _fit_text(d, line, f, side - 8), fill=(0, 0, 0), font=f)
            y += f.size + 6
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
    tiles = [overlay_image(small, r.grid, r.kept, groups=r.groups, side=TILE,
                           title=(r.method, f"answer {r.answer_pruned}  (all tokens: {r.answer_full})"))
             for r in cmp.results]  # fmt: skip
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


def _where(place: str) -> str:
    return {"vit": "inside the ViT", "lm": "inside the LM", "pre-lm": "before the LM"}.get(place, place)


def _band(fig, x, mu, sd, *, name: str, row: int, col: int, legend: str, showlegend: bool = True) -> None:
    """A grey mean ± std band (over seeds) and its mean line: how a random control is drawn."""
    mu, sd = np.asarray(mu, float), np.asarray(sd, float)
    fig.add_trace(go.Scatter(x=list(x) + list(x)[::-1], y=list(mu + sd) + list((mu - sd)[::-1]), fill="toself",
                             mode="lines", fillcolor="rgba(127,127,127,0.25)", line={"width": 0}, name=name,
                             legend=legend, legendgroup=f"{legend}-{name}", showlegend=showlegend,
                             hoverinfo="skip"), row=row, col=col)  # fmt: skip


def plot_pareto(table: dict) -> go.Figure:
    """Accuracy against kept fraction, one panel per place a random control acts, one y-axis per panel (the
    same range in all), each panel with its own legend.

    Panel 1: the methods that act before the LM, against random before the LM (grey band: mean ± std over the
    seeds, grey line: mean). One panel per method that acts inside a model (FlowCut in the ViT, PyramidDrop
    and FastV in the LM): the method against its own random control at the same place (grey). The all-tokens
    accuracy is the dashed line in every panel. Every control is grey; each method has its own Okabe-Ito colour
    and marker. Objects kept are in the table (:func:`pareto_rows`), not on the plot.
    """
    from plotly.subplots import make_subplots

    keeps = table["keeps"]
    full = table["full"]["accuracy"]
    rows = table["rows"]
    rnd = [r for r in rows if r["method"] == "random"]
    names = [r["method"] for r in rows if r["method"] != "random" and r["keep"] == keeps[0]]
    place = {r["method"]: r["place"] for r in rows}
    inside = [n for n in names if place[n] != "pre-lm"]
    before = [n for n in names if place[n] == "pre-lm"]
    style = {n: PARETO_STYLE[i % len(PARETO_STYLE)] for i, n in enumerate(before + inside)}
    n_before = f"{len(before)} method{'s' if len(before) != 1 else ''}"
    titles = [f"Before the LM ({n_before}) vs random before the LM"] + [
        f"{n} ({_where(place[n])}) vs random at its place" for n in inside
    ]
    # row 1: the before-LM panel, its legend in the last column; row 2: one panel per in-model method
    cols = max(2, len(inside))
    nrows = 2 if inside else 1
    specs = [[{"colspan": cols - 1}] + [None] * (cols - 1)]
    if inside:
        specs.append([{} for _ in inside] + [None] * (cols - len(inside)))
    fig = make_subplots(rows=nrows, cols=cols, specs=specs, subplot_titles=titles, shared_yaxes="all",
                        horizontal_spacing=0.06, vertical_spacing=0.2)  # fmt: skip
    cells = [(1, 1)] + [(2, i + 1) for i in range(len(inside))]
    x = [r["keep"] for r in rnd]
    mu = [r["control_accuracy_mean"] for r in rnd]
    sd = [r["control_accuracy_std"] for r in rnd]
    # trace 0: the random-before-LM band (mean ± std), then its mean line
    _band(fig, x, mu, sd, name="random before LM (mean ± std)", row=1, col=1, legend="legend")
    fig.add_trace(go.Scatter(x=x, y=mu, mode="lines+markers", line={"color": GREY, "width": 2},
                             marker={"color": GREY}, name="random before LM", legend="legend"), row=1, col=1)  # fmt: skip
    ys = list(mu) + list(np.add(mu, sd)) + list(np.subtract(mu, sd)) + [full]

    def method_trace(name: str, rs: list[dict], legend: str, row: int, col: int) -> None:
        colour, symbol = style[name]
        fig.add_trace(go.Scatter(x=[r["keep"] for r in rs], y=[r["accuracy"] for r in rs], mode="lines+markers",
                                 line={"color": colour, "width": 3}, marker={"symbol": symbol, "size": 10, "color": colour,
                                                                             "line": {"color": "#333333", "width": 1}},
                                 name=name, legend=legend,
                                 customdata=[[r["objects_kept"], r["flops"] / 1e9] for r in rs],
                                 hovertemplate=name + ": kept %{x}, accuracy %{y:.3f}, objects %{customdata[0]:.2f}, "
                                 "%{customdata[1]:.2f} GFLOPs<extra></extra>"), row=row, col=col)  # fmt: skip
        ys.extend(r["accuracy"] for r in rs)

    for name in before:
        method_trace(name, [r for r in rows if r["method"] == name], "legend", 1, 1)
    for i, name in enumerate(inside, start=1):
        (row, col), legend = cells[i], f"legend{i + 1}"
        rs = [r for r in rows if r["method"] == name]
        cm = [r["control_accuracy_mean"] for r in rs]
        cs = [r["control_accuracy_std"] for r in rs]
        label = f"random at {name}'s place"
        _band(fig, [r["keep"] for r in rs], cm, cs, name=label + " (mean ± std)", row=row, col=col, legend=legend,
              showlegend=False)  # fmt: skip
        fig.add_trace(go.Scatter(x=[r["keep"] for r in rs], y=cm, mode="lines+markers", name=label, legend=legend,
                                 line={"color": GREY, "width": 2, "dash": "dot"}, marker={"color": GREY},
                                 customdata=cs, hovertemplate=label + ": kept %{x}, accuracy %{y:.3f} ± "
                                 "%{customdata:.3f}<extra></extra>"), row=row, col=col)  # fmt: skip
        method_trace(name, rs, legend, row, col)
        ys.extend(cm)
    lo = max(0.0, np.floor((min(ys) - 0.02) * 20) / 20)
    for row, col in cells:
        fig.add_hline(y=full, line={"dash": "dash", "color": "#444444", "width": 1.5}, row=row, col=col,
                      annotation_text=f"all tokens {full:.3f}", annotation_position="top right",
                      annotation_font={"size": 12, "color": "#444444"})  # fmt: skip
    fig.update_xaxes(type="log", tickvals=keeps, ticktext=[f"{k:g}" for k in keeps])
    fig.update_xaxes(title_text="kept fraction of image tokens")
    fig.update_yaxes(range=[lo, 1.02], showticklabels=True)
    fig.update_yaxes(title_text="accuracy", col=1)
    height = 120 + 360 * nrows
    base_layout(fig, title=f"VLM accuracy vs kept image tokens ({table['n_questions']} validation questions; "
                "grey: random at the same place)", width=1200, height=height)  # fmt: skip
    fig.update_layout(margin={"l": 80, "r": 30, "t": 90, "b": 70})
    fig.update_annotations(font={"size": 15})  # the subplot titles
    box = {
        "bgcolor": "rgba(255,255,255,0.85)",
        "bordercolor": "#cccccc",
        "borderwidth": 1,
        "font": {"size": 13},
    }
    a0, b0 = fig.layout.xaxis.domain, fig.layout.yaxis.domain
    fig.update_layout(legend={"x": a0[1] + 0.03, "y": b0[1], "xanchor": "left", "yanchor": "top", **box})
    for i in range(1, len(titles)):  # each in-model panel's legend in its empty lower-right corner
        ax, ay = fig.layout[f"xaxis{i + 1}"], fig.layout[f"yaxis{i + 1}"]
        fig.update_layout({f"legend{i + 1}": {"x": ax.domain[1], "y": ay.domain[0], "xanchor": "right",
                                              "yanchor": "bottom", **box}})  # fmt: skip
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
