"""Safe image loading and validation at the boundary (app uploads, CLI paths, arrays).

Every path returns an RGB ``uint8`` array [H, W, 3] and a list of notices (what was changed and why), or raises
:class:`~engine.registry.InputError` with a message the user can act on. Handled: not an image, corrupt or
truncated files, decompression bombs and huge dimensions (the size the header declares is checked against
:data:`MAX_IMAGE_PIXELS` before a pixel is decoded), formats other than :data:`FORMATS` (Pillow opens dozens,
some through external programs; an upload is read by content, never by its file name, so a text or PDF file
named ``.png`` is refused), animated or multi-page files (first frame, with a notice), modes other than RGB
(grey, palette, RGBA/LA composited on grey, 16-bit and float scaled to 8 bits, CMYK), tiny images (refused
under :data:`MIN_SIDE` px) and large images (downscaled to :data:`MAX_SIDE` px, with a notice).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from engine.config import LIMITS
from engine.registry import InputError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "MIN_SIDE",
    "MAX_SIDE",
    "FORMATS",
    "load_image",
    "validate_array",
    "resize_for",
]

MAX_IMAGE_PIXELS = LIMITS.max_image_pixels  # caps live in engine.config (one place for every size cap)
MIN_SIDE = LIMITS.min_image_side
MAX_SIDE = LIMITS.max_image_side
# the formats an upload may be (Pillow's names); anything else is refused before decoding
FORMATS = ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP")
_BOMB = "(a decompression bomb, or simply too large); refusing to decode it"


def load_image(source, *, max_bytes: int | None = None) -> tuple[np.ndarray, list[str]]:
    """RGB uint8 [H, W, 3] and notices from a path, bytes, a PIL image or an array."""
    from PIL import Image

    if source is None:
        raise InputError("no image given: upload one, pick an example, or generate a scene")
    if isinstance(source, np.ndarray):
        return validate_array(source)
    if isinstance(source, Image.Image):
        return _from_pil(source, [])
    max_bytes = max_bytes or LIMITS.max_upload_bytes
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
        name = "the uploaded data"
    else:
        path = Path(str(source)).expanduser()
        name = path.name
        if not path.is_file():
            raise InputError(f"image file not found: {path}")
        if path.stat().st_size > max_bytes:
            raise InputError(
                f"{name} is {path.stat().st_size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB"
            )
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise InputError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    if not data:
        raise InputError(f"{name} is empty")
    # No global is changed here (requests run in parallel): Pillow's own bomb guard stays as it is, and the
    # size the header declares is checked against our cap between open() (header only) and load() (pixels).
    try:
        img = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError:
        raise InputError(
            f"{name} declares more than {MAX_IMAGE_PIXELS / 1e6:.0f} million pixels {_BOMB}"
        ) from None
    except Image.UnidentifiedImageError:
        raise InputError(
            f"{name} is not an image this app reads (it takes {', '.join(FORMATS)}; the content decides, not the "
            "file name)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(f"{name} is corrupt or truncated: {e}") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(
            f"{name} declares {w}x{h} = {w * h / 1e6:.0f} million pixels, more than {MAX_IMAGE_PIXELS / 1e6:.0f} "
            f"million {_BOMB}"
        )
    if min(w, h) < 1:
        raise InputError(f"{name} declares an empty image ({w}x{h} px)")
    try:
        img.load()  # decode now: truncated or corrupt data fails here, not later
    except Image.DecompressionBombError:
        raise InputError(
            f"{name} declares more than {MAX_IMAGE_PIXELS / 1e6:.0f} million pixels {_BOMB}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise InputError(f"{name} is corrupt or truncated: {e}") from None
    notices = []
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        notices.append(f"{name} has {frames} frames (animated or multi-page): using the first")
        img.seek(0)
    return _from_pil(img, notices)


def _from_pil(img, notices: list[str]) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(
            f"image has {w * h / 1e6:.0f} million pixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} million"
        )
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(arr), np.nanmax(arr)
        arr = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        img = Image.fromarray(np.nan_to_num(arr).astype(np.uint8))
        notices.append(f"{mode} image ({'16-bit' if '16' in mode else 'high bit depth'}) scaled to 8 bits")
        mode = "L"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        img = Image.alpha_composite(bg, rgba)
        notices.append("transparency composited onto grey")
    elif mode not in ("RGB", "L"):
        notices.append(f"{mode} image converted to RGB")
    elif mode == "L":
        notices.append("greyscale image repeated into three channels")
    arr = np.asarray(img.convert("RGB"))
    return _sizes(arr, notices)


def validate_array(arr: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Check and convert an array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] (uint8, or floats in [0, 1])."""
    arr = np.asarray(arr)
    notices: list[str] = []
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"an image array must be [H, W], [H, W, 3] or [H, W, 4]; got shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_IMAGE_PIXELS:
        raise InputError(f"image has {arr.shape[0] * arr.shape[1] / 1e6:.0f} million pixels; too large")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError("the image contains NaN or infinite values")
        arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
    elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        hi = arr.max()
        arr = (
            (arr.astype(np.float64) / max(hi, 1) * 255).astype(np.uint8) if hi > 255 else arr.astype(np.uint8)
        )
        if hi > 255:
            notices.append(f"{arr.dtype} image scaled to 8 bits")
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise InputError(f"unsupported image dtype {arr.dtype}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, 2)
    elif arr.shape[2] == 4:
        a = arr[..., 3:].astype(np.float32) / 255.0
        arr = (arr[..., :3] * a + 128 * (1 - a)).astype(np.uint8)
        notices.append("transparency composited onto grey")
    return _sizes(np.ascontiguousarray(arr), notices)


def _sizes(arr: np.ndarray, notices: list[str]) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"image is {w}x{h} px; it must be at least {MIN_SIDE} px on each side")
    if max(h, w) > MAX_SIDE:
        s = MAX_SIDE / max(h, w)
        size = (max(MIN_SIDE, round(w * s)), max(MIN_SIDE, round(h * s)))
        arr = np.asarray(Image.fromarray(arr).resize(size, Image.Resampling.LANCZOS))
        notices.append(f"image downscaled from {w}x{h} to {size[0]}x{size[1]} px")
    return arr, notices


def resize_for(arr: np.ndarray, size: int) -> tuple[np.ndarray, list[str]]:
    """Centre-crop to a square and resize to ``size`` (what a model sees), with a notice when anything changed."""
    from PIL import Image

    h, w = arr.shape[:2]
    notices = []
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        arr = arr[top : top + s, left : left + s]
        notices.append(f"centre-cropped from {w}x{h} to {s}x{s}")
    if arr.shape[0] != size:
        notices.append(f"resized from {arr.shape[1]}x{arr.shape[0]} to {size}x{size} px for the model")
        arr = np.asarray(Image.fromarray(arr).resize((size, size), Image.Resampling.BICUBIC))
    return arr, notices
