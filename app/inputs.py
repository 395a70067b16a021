"""Validation of what users upload or paste, at the app boundary. Nothing uploaded is ever executed."""

from __future__ import annotations

import os

from engine.config import LIMITS
from engine.registry import InputError
from engine.uploads import read_capped

__all__ = ["TEXT_SOURCES", "read_text_upload", "resolve_text", "as_int", "as_float", "upload_path"]

TEXT_SOURCES = ("Default corpus (Python stdlib docstrings)", "Pasted text", "Uploaded file")


def read_text_upload(path: str | os.PathLike | None) -> str:
    """Read an uploaded text file (UTF-8, optionally .gz) within the size cap; reject binary files.

    The cap holds after decompression, and the decompression is streamed (:func:`engine.uploads.read_capped`),
    so a small .gz that inflates to gigabytes is refused without ever being held in memory.
    """
    if not path:
        raise InputError("no file uploaded")
    raw = read_capped(path, max_bytes=min(LIMITS.max_upload_bytes, LIMITS.max_text_chars * 4))
    if b"\x00" in raw[:8192]:
        raise InputError("the uploaded file looks binary (it contains NUL bytes); upload plain UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"the uploaded file is not UTF-8 text (bad byte at position {e.start})") from None


def resolve_text(source: str, text: str | None, upload) -> str | None:
    """The user's text for a :data:`TEXT_SOURCES` choice; ``None`` means the default corpus."""
    if source == TEXT_SOURCES[1]:
        if not (text or "").strip():
            raise InputError("'Pasted text' is selected but the text box is empty")
        return text
    if source == TEXT_SOURCES[2]:
        return read_text_upload(upload)
    return None


def _bounds(x, name: str, low, high):
    if low is not None and x < low or high is not None and x > high:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise InputError(f"{name} must be in [{lo}, {hi}], got {x}")
    return x


def as_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number from a UI field (a float from a slider, a string), optionally range-checked.

    For a method's or a comparison's parameters use ``Param.check`` (through :func:`app.controls.values`)
    instead; this is for the few fields that are not parameters (a scene index, a file's row count).
    """
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if f != f or not f.is_integer():
        raise InputError(f"{name} must be a whole number, got {value!r}")
    return _bounds(int(f), name, low, high)


def as_float(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """A finite number from a UI field, optionally range-checked (same rule as :func:`as_int`)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return _bounds(f, name, low, high)


def upload_path(upload) -> str | None:
    """The server-side path of a gr.File value (a path string, a FileData dict or a tempfile wrapper)."""
    if upload is None:
        return None
    if isinstance(upload, str | os.PathLike):
        return str(upload)
    if isinstance(upload, dict):
        return upload.get("path") or upload.get("name")
    return getattr(upload, "name", None) or getattr(upload, "path", None)
