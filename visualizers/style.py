"""Shared look: fixed figure sizes, readable fonts, colour-blind-safe palettes (DESIGN.md "What a person sees").

Heatmaps use cividis/viridis; categories use the Okabe-Ito palette (Okabe & Ito, "Color Universal Design", 2008).
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings

import plotly.graph_objects as go

__all__ = [
    "OKABE_ITO",
    "HEATMAP_SCALE",
    "WIDTH",
    "HEIGHT",
    "FONT_SIZE",
    "base_layout",
    "figure_png",
    "figure_svg",
]

OKABE_ITO = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#000000",  # black
)
HEATMAP_SCALE = "Cividis"
WIDTH, HEIGHT = 760, 520
FONT_SIZE = 14


def base_layout(fig: go.Figure, *, title: str, width: int = WIDTH, height: int = HEIGHT) -> go.Figure:
    """Apply the house layout in place and return the figure."""
    fig.update_layout(
        title={"text": title, "x": 0.02, "xanchor": "left", "font": {"size": FONT_SIZE + 3}},
        width=width,
        height=height,
        font={"size": FONT_SIZE, "family": "DejaVu Sans, Arial, sans-serif"},
        template="plotly_white",
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
        colorway=list(OKABE_ITO),
        legend={"bgcolor": "rgba(255,255,255,0.8)"},
    )
    return fig


_RENDER_LOCK = threading.Lock()
_SERVER: list[bool] = []  # [True] once kaleido's browser server runs in this process


def _find_browser() -> None:
    if "BROWSER_PATH" not in os.environ:
        for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
            if shutil.which(candidate) or os.path.exists(candidate):
                os.environ["BROWSER_PATH"] = candidate
                break


def _render(fig: go.Figure, fmt: str, scale: float) -> bytes:
    """kaleido through one long-lived browser per process (started at the first export: a fresh browser per
    figure costs seconds, a kept one a fraction of a second). Renders one at a time."""
    _find_browser()
    with _RENDER_LOCK:
        if not _SERVER:
            import atexit

            import kaleido

            try:
                kaleido.start_sync_server(silence_warnings=True)
                atexit.register(kaleido.stop_sync_server, silence_warnings=True)
            except Exception:  # noqa: BLE001 - without the server, each figure starts its own browser
                pass
            _SERVER.append(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "kopts is ignored if using a server"
            return fig.to_image(format=fmt, scale=scale)


def figure_png(fig: go.Figure, *, scale: float = 1.0) -> bytes:
    """Render a figure to PNG bytes with kaleido through the system Chromium; never downloads a browser."""
    return _render(fig, "png", scale)


def figure_svg(fig: go.Figure) -> bytes:
    """Render a figure to SVG bytes (vector: scales on a slide without blur)."""
    return _render(fig, "svg", 1.0)
