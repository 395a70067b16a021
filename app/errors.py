"""Turn engine failures into messages the user can act on, and keep the server serving."""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any

import gradio as gr

from engine.admission import OverTime, Stopped
from engine.registry import InputError

__all__ = ["user_errors"]

log = logging.getLogger("redex.app")


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for Gradio handlers: InputError/ValueError -> gr.Error with the message; anything else ->
    gr.Error naming the failure (full traceback in the server log). ``gr.Error`` passes through."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except OverTime as e:
            raise gr.Error(str(e)) from None
        except Stopped as e:
            log.info("handler %s stopped: %s", fn.__name__, e)
            raise gr.Error(str(e)) from None
        except (InputError, ValueError) as e:
            raise gr.Error(str(e)) from None
        except MemoryError:
            raise gr.Error("Out of memory: try fewer samples or a shorter length.") from None
        except Exception as e:  # noqa: BLE001 - last line of defence for the server
            log.error("handler %s failed:\n%s", fn.__name__, traceback.format_exc())
            raise gr.Error(f"{type(e).__name__}: {e}") from None

    return wrapper
