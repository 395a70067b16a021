"""Presentation mode: any house figure re-laid out for a slide (issue 13, part 4).

A fixed 16:9 size (1120 x 630; exports render it at 2x), fonts of at least 18 px, thick lines, colour-blind-safe palettes (Okabe-Ito for
categories, cividis for heatmaps that used a rainbow scale) and the figure's caption drawn under the plot, so a
screenshot or the exported PNG drops straight onto a slide. The browser's presentation toggle applies the same
numbers client side (app/presentation.js reads :data:`BROWSER_SETTINGS`).
"""

from __future__ import annotations

import re
import textwrap

import plotly.graph_objects as go

from visualizers.style import HEATMAP_SCALE, OKABE_ITO

__all__ = ["presentation", "PRESENT_WIDTH", "PRESENT_HEIGHT", "PRESENT_FONT", "BROWSER_SETTINGS", "plain"]

PRESENT_WIDTH, PRESENT_HEIGHT = 1120, 630  # 16:9; fits a 1600 px wide browser's figure panel
PRESENT_FONT = 20  # body text; ticks and legends never below 18
MIN_LINE_WIDTH = 4.0
MIN_MARKER_SIZE = 10.0
CAPTION_NAME = "redex-caption"
_RAINBOWS = {"jet", "rainbow", "hsv", "portland", "electric", "picnic", "hot", "blackbody"}
BROWSER_SETTINGS = {"width": PRESENT_WIDTH, "height": PRESENT_HEIGHT, "font": PRESENT_FONT, "tick": 18,
                    "title": 26, "line": MIN_LINE_WIDTH}  # fmt: skip


def _is_rainbow(scale) -> bool:
    """Whether a trace's colour scale (plotly stores named scales expanded) is one of the rainbow scales."""
    if scale is None:
        return False
    if isinstance(scale, str):
        return scale.lower().removesuffix("_r") in _RAINBOWS
    expanded = tuple((float(a), str(b).replace(" ", "").lower()) for a, b in scale)
    return expanded in _rainbow_scales()


def _rainbow_scales() -> set:
    if not _RAINBOW_CACHE:
        for name in _RAINBOWS:
            for variant in (name, name + "_r"):
                try:
                    sc = go.Heatmap(colorscale=variant).colorscale
                except ValueError:
                    continue
                _RAINBOW_CACHE.add(tuple((float(a), str(b).replace(" ", "").lower()) for a, b in sc))
    return _RAINBOW_CACHE


_RAINBOW_CACHE: set = set()


def plain(markdown: str) -> str:
    """Caption markdown as plain text (bold, code and link syntax removed)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown or "")
    text = re.sub(r"\*\*|(?<![\w])\*(?=\S)|(?<=\S)\*(?![\w])|`|^#+\s*|^>\s*", "", text, flags=re.M)
    return " ".join(text.split())


def presentation(fig: go.Figure, caption: str | None = None) -> go.Figure:
    """A copy of ``fig`` for a slide: 16:9, large type, thick lines, colour-blind-safe, caption underneath."""
    out = go.Figure(fig)
    lines = textwrap.wrap(plain(caption), 98) if caption else []
    bottom = 80 + 30 * len(lines)
    out.update_layout(
        width=PRESENT_WIDTH,
        height=PRESENT_HEIGHT,
        autosize=False,
        font={"size": PRESENT_FONT},
        title={"font": {"size": 26}},
        legend={"font": {"size": 18}},
        margin={"l": 110, "r": 50, "t": 90, "b": bottom},
        colorway=[c for c in OKABE_ITO if c != "#F0E442"] + ["#F0E442"],  # yellow last: faint on a projector
    )
    out.update_xaxes(title_font={"size": 22}, tickfont={"size": 18}, automargin=True)
    out.update_yaxes(title_font={"size": 22}, tickfont={"size": 18}, automargin=True)
    for ann in out.layout.annotations or ():
        size = ann.font.size if ann.font and ann.font.size else 0
        ann.font.size = max(size, 18)
    for trace in out.data:
        kind = trace.type
        if kind in ("scatter", "scattergl", "scatterpolar", "scatter3d") and "lines" in (
            trace.mode or "lines"
        ):
            width = trace.line.width if trace.line and trace.line.width is not None else 2
            trace.line.width = max(width, MIN_LINE_WIDTH)
        if kind in ("scatter", "scattergl") and "markers" in (trace.mode or ""):
            size = trace.marker.size
            if size is None or isinstance(size, int | float):
                trace.marker.size = max(size or 6, MIN_MARKER_SIZE)
        if kind in ("heatmap", "contour", "surface") and _is_rainbow(trace.colorscale):
            trace.colorscale = HEATMAP_SCALE
            if getattr(trace, "colorbar", None) is not None:
                trace.colorbar.tickfont.size = 18
    if lines:
        out.add_annotation(name=CAPTION_NAME, text="<br>".join(lines), xref="paper", yref="paper", x=0, y=0, xanchor="left",
                           yanchor="top", yshift=-72, showarrow=False,
                           align="left", font={"size": 18, "color": "#222"})  # fmt: skip
    return out
