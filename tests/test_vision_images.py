"""Safe image loading: bad files give a clear InputError; odd modes and sizes are converted with a notice."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.registry import InputError
from engine.vision.images import MAX_SIDE, load_image, resize_for, validate_array

SK = Path(__import__("skimage").__file__).parent / "data"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_rgb_photo():
    arr, notices = load_image(SK / "astronaut.png")
    assert arr.shape == (512, 512, 3) and arr.dtype == np.uint8 and notices == []


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_not_an_image(data):
    with pytest.raises(InputError):
        load_image(data)


def test_truncated():
    data = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(InputError, match="corrupt or truncated|not an image"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb():
    data = bytearray(_png(Image.new("RGB", (1, 1))))
    ihdr = bytearray(data[12:29])  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", 60000, 60000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(bytes(data))


def test_animated_and_multipage():
    arr, notices = load_image(SK / "no_time_for_that_tiny.gif")
    assert arr.ndim == 3 and arr.shape[2] == 3 and any("frames" in n for n in notices)
    buf = io.BytesIO()
    pages = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue")]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    arr, notices = load_image(buf.getvalue())
    assert any("3 frames" in n for n in notices) and (arr[..., 0] == 255).all()


def test_modes():
    arr, notices = load_image(SK / "camera.png")  # greyscale
    assert arr.shape[2] == 3 and any("greyscale" in n for n in notices)
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    arr, notices = load_image(_png(rgba))
    assert (arr == 128).all() and any("transparency" in n for n in notices)
    i16 = Image.fromarray(np.linspace(0, 65535, 400).reshape(20, 20).astype(np.uint16))
    arr, notices = load_image(_png(i16))
    assert arr.max() == 255 and any("8 bits" in n for n in notices)


def test_sizes():
    with pytest.raises(InputError, match="at least"):
        load_image(_png(Image.new("RGB", (4, 4))))
    arr, notices = load_image(_png(Image.new("RGB", (MAX_SIDE + 100, 20))))
    assert max(arr.shape[:2]) == MAX_SIDE and any("downscaled" in n for n in notices)
    out, notices = resize_for(np.zeros((40, 60, 3), np.uint8), 112)
    assert out.shape == (112, 112, 3) and len(notices) == 2


def test_arrays():
    with pytest.raises(InputError, match="NaN"):
        validate_array(np.full((16, 16, 3), np.nan))
    with pytest.raises(InputError, match="shape"):
        validate_array(np.zeros((16, 16, 2)))
    arr, _ = validate_array(np.ones((16, 16), np.float32))
    assert arr.shape == (16, 16, 3) and arr.max() == 255
