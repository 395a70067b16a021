"""Presentation mode in the browser: one toggle (and the ``?present=1`` URL flag) re-lays out every figure of
the page for a slide (visualizers/presentation.py: 16:9, fonts >= 18 px, thick lines, colour-blind palettes).

The mode is remembered per browser session on the server, so figures computed after the toggle come out in
presentation layout too (:func:`app.figures.fit` asks :func:`is_on`); toggling re-renders the figures already on
the page from their own JSON, and toggling back restores their normal layout exactly.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from visualizers.presentation import CAPTION_NAME, presentation

__all__ = ["is_on", "set_on", "to_presentation", "to_normal", "wire", "CSS"]

# In presentation mode a figure keeps its 16:9 size: a narrower panel scrolls instead of clipping it.
CSS = """
body.redex-present .gradio-container {max-width: 100% !important;}
body.redex-present .js-plotly-plot {overflow-x: auto !important;}
body.redex-present [data-testid="plot"], body.redex-present .plot-container {overflow-x: auto !important;}
"""

_SESSIONS: OrderedDict[str, bool] = OrderedDict()
_LOCK = threading.Lock()
_MAX_SESSIONS = 10_000
_STASH = "redex_normal"


def _session() -> str | None:
    try:
        from gradio.context import LocalContext

        req = LocalContext.request.get(None)
        return getattr(req, "session_hash", None)
    except Exception:  # noqa: BLE001
        return None


def is_on() -> bool:
    """Whether the browser session of the running event asked for presentation mode."""
    sid = _session()
    with _LOCK:
        return bool(sid and _SESSIONS.get(sid))


def set_on(session: str | None, on: bool) -> None:
    if not session:
        return
    with _LOCK:
        _SESSIONS[session] = bool(on)
        _SESSIONS.move_to_end(session)
        while len(_SESSIONS) > _MAX_SESSIONS:
            _SESSIONS.popitem(last=False)


_LAYOUT_KEYS = ("width", "height", "font", "title", "legend", "margin", "colorway", "autosize")
_TRACE_KEYS = ("line", "marker", "colorscale", "colorbar")


def _json(value):
    """A layout or trace property as plain JSON (``None`` when unset)."""
    if hasattr(value, "to_plotly_json"):
        value = value.to_plotly_json()
        return value or None
    if isinstance(value, tuple):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    return value


def to_presentation(fig: go.Figure, caption: str | None = None) -> go.Figure:
    """Presentation layout, remembering what :func:`to_normal` needs to undo it."""
    meta = dict(fig.layout.meta) if isinstance(fig.layout.meta, dict) else {}
    if _STASH in meta:
        return fig  # already in presentation layout
    stash = {
        "layout": {k: _json(fig.layout[k]) for k in _LAYOUT_KEYS},
        "axes": {ax.plotly_name: _json(ax) for ax in (*fig.select_xaxes(), *fig.select_yaxes())},
        "traces": [{p: _json(t[p]) for p in _TRACE_KEYS if p in t} for t in fig.data],
        "annotations": [a.to_plotly_json() for a in fig.layout.annotations or ()],
    }
    out = presentation(fig, caption)
    out.layout.meta = {**meta, _STASH: json.loads(json.dumps(stash, default=list))}
    return out


def to_normal(fig: go.Figure) -> go.Figure:
    """Undo :func:`to_presentation` exactly (a figure never put in presentation layout is returned as is)."""
    meta = dict(fig.layout.meta) if isinstance(fig.layout.meta, dict) else {}
    stash = meta.pop(_STASH, None)
    if stash is None:
        return fig
    out = go.Figure(fig)
    for k, v in stash["layout"].items():
        out.layout[k] = v
    out.layout.annotations = [a for a in stash["annotations"] if a.get("name") != CAPTION_NAME]
    for name, saved in stash["axes"].items():
        out.layout[name] = saved
    for t, saved in zip(out.data, stash["traces"], strict=False):
        for p, v in saved.items():
            t[p] = v
    out.layout.meta = meta or None
    return out


def _restyle(value: Any, on: bool) -> Any:
    if value is None:
        return None
    raw = getattr(value, "plot", None)
    if raw is None or getattr(value, "type", "plotly") != "plotly":
        return value
    fig = pio.from_json(raw, skip_invalid=True)
    return to_presentation(fig) if on else to_normal(fig)


def wire(demo, toggle) -> None:
    """Make ``toggle`` (a Checkbox) switch every plotly figure of ``demo`` and record the session's mode; the
    page's ``?present=1`` turns it on at load."""
    import gradio as gr

    plots = [b for b in demo.blocks.values() if isinstance(b, gr.Plot)]

    def switch(on: bool, *values):
        set_on(_session(), on)
        return [_restyle(v, on) for v in values]

    toggle.change(switch, [toggle, *plots], plots, queue=False, show_progress="hidden", api_name=False)
    toggle.change(None, [toggle], None, js="(v) => { document.body.classList.toggle('redex-present', v); }")
    demo.load(
        None, None, [toggle], js="() => new URLSearchParams(window.location.search).get('present') === '1'"
    )
