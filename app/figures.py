"""Figures as the app shows them: the visualizers build fixed-size figures (the size a PNG export and a slide
get); in the browser a figure fills its panel's width instead of leaving part of it blank."""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["fit"]


def fit(fig: go.Figure | None, caption: str | None = None) -> go.Figure | None:
    """A copy of ``fig`` that takes the panel's width (its height stays fixed); ``None`` passes through. In
    presentation mode (app/presentation.py) the copy is laid out for a slide instead, with ``caption`` under it."""
    if fig is None:
        return None
    from app.presentation import is_on, to_presentation

    if is_on():
        return to_presentation(go.Figure(fig), caption)
    shown = go.Figure(fig)
    shown.update_layout(width=None, autosize=True)
    return shown
