"""The engine's ``progress(frac, desc)`` callback, fed to a ``gr.Progress`` bar, and the Stop button.

The CLI uses tqdm instead (:func:`app.commands.tqdm_progress`). The callback handed to the engine is wrapped by
:func:`engine.admission.watchdog`: each call checks whether the request's client is still there (a Stop button
press or a closed browser tab marks the Gradio event dead) and whether the request time limit has passed, and
raises :class:`engine.admission.Stopped` / ``OverTime`` if so, which ends the job and frees its worker.
"""

from __future__ import annotations

import gradio as gr

from engine.admission import watchdog

__all__ = ["gradio_progress", "client_gone", "stop_button", "wire_stop"]


def client_gone() -> bool:
    """True when the Gradio event running in this thread was cancelled or lost its client."""
    try:
        from gradio.context import LocalContext

        event_id = LocalContext.event_id.get(None)
        blocks = LocalContext.blocks.get(None)
        if event_id is None or blocks is None or getattr(blocks, "_queue", None) is None:
            return False  # called outside a queued event (tests, the CLI): nothing to watch
        event = blocks._queue.event_ids_to_events.get(event_id)
        return event is None or not event.alive
    except Exception:  # noqa: BLE001 - a Gradio internals change must not break the handler
        return False


def gradio_progress(progress=None, *, limit_s: float | None = None):
    """Adapt a ``gr.Progress`` to the engine's ``progress(frac, desc)``, with stop and time-limit checks."""
    show = None if progress is None else (lambda frac, desc: progress(frac, desc=desc))
    return watchdog(show, limit_s=limit_s, gone=client_gone)


def stop_button(*events, label: str = "Stop") -> gr.Button:
    """A Stop button (create it where it should appear, then pass the events it stops): a press cancels the
    events; the engine job notices at its next progress call and ends, freeing its slot."""
    btn = gr.Button(label, variant="stop", size="sm")
    if events:
        wire_stop(btn, *events)
    return btn


def wire_stop(btn: gr.Button, *events) -> None:
    """Make ``btn`` cancel ``events`` (the dependencies returned by ``.click(...)``/``.then(...)``)."""
    btn.click(None, None, None, cancels=list(events), queue=False)
