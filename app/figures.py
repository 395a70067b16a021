"""Figures as the app shows them: the visualizers build fixed-size figures (the size a PNG export and a slide
get); in the browser a figure fills its panel's width instead of leaving part of it blank."""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["fit"]


def fit(fig: go.Figure | None) -> go.Figure | None:
    """A copy of ``fig`` that takes the panel's width (its height stays fixed); ``None`` passes through."""
    if fig is None:
        return None
    shown = go.Figure(fig)
    shown.update_layout(width=None, autosize=True)
    return shown
