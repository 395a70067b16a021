"""The engine's ``progress(frac, desc)`` callback, fed to a ``gr.Progress`` bar (the CLI uses tqdm instead:
:func:`app.commands.tqdm_progress`)."""

from __future__ import annotations

__all__ = ["gradio_progress"]


def gradio_progress(progress):
    """Adapt a ``gr.Progress`` object to the engine's ``progress(frac, desc)`` callbacks."""
    return lambda frac, desc: progress(frac, desc=desc)
