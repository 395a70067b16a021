"""Figures as the app shows them: the visualizers build fixed-size figures (the size a PNG export and a slide
get); in the browser a figure fills its panel's width instead of leaving part of it blank."""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["fit", "fixed"]


def fit(fig: go.Figure | None, caption: str | None = None) -> go.Figure | None:
    """A copy of ``fig`` that takes the panel's width (its height stays fixed); ``None`` passes through. In
    presentation mode (app/presentation.py) the copy is laid out for a slide instead, with ``caption`` under it."""
    if fig is None:
        return None
    from app.presentation import is_on, to_presentation

    if is_on():
        return to_presentation(go.Figure(fig), caption)
    shown = go.Figure(fig)
    meta = dict(shown.layout.meta) if isinstance(shown.layout.meta, dict) else {}
    if fig.layout.width:
        meta["redex_width"] = fig.layout.width  # the fixed size, for exports made from the shown figure
    shown.update_layout(width=None, autosize=True, meta=meta or None)
    return shown


def fixed(fig: go.Figure) -> go.Figure:
    """Undo :func:`fit`'s panel width: the figure at the fixed size its visualizer gave it."""
    meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
    width = meta.get("redex_width")
    out = go.Figure(fig)
    if width and not out.layout.width:
        out.update_layout(width=width, autosize=False)
    return out
