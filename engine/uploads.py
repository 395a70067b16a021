"""Reading files people upload, within a byte cap that holds *after* decompression.

A gzip file of 2 MB can inflate to gigabytes; :func:`read_capped` streams the decompression and stops as soon
as the output passes the cap, so memory never holds more than ``max_bytes`` (+ one chunk). The size of a plain
file is checked before a byte is read. Nothing read here is ever executed or unpickled.
"""

from __future__ import annotations

import os
import zlib

from engine.registry import InputError

__all__ = ["read_capped", "gunzip_capped", "GZIP_MAGIC"]

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def read_capped(path: str | os.PathLike, *, max_bytes: int, what: str = "the uploaded file") -> bytes:
    """The file's bytes (gunzipped when it starts with the gzip magic), refusing more than ``max_bytes``.

    Raises
    ------
    InputError
        Missing or empty file, a file (or its decompressed content) over the cap, a corrupt or truncated gzip.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        raise InputError(f"{what} cannot be read (no such file)") from None
    if size == 0:
        raise InputError(f"{what} is empty")
    with open(path, "rb") as fh:
        head = fh.read(2)
        if head != GZIP_MAGIC:
            if size > max_bytes:
                raise InputError(f"{what} has {size:,} bytes; the cap is {max_bytes:,}")
            return head + fh.read()
        if size > max_bytes:  # even compressed it is over the cap
            raise InputError(f"{what} has {size:,} bytes; the cap is {max_bytes:,}")
        fh.seek(0)
        return _gunzip_capped(fh, max_bytes, what)


def gunzip_capped(data: bytes, *, max_bytes: int, what: str = "the uploaded file") -> bytes:
    """Gunzip bytes already in memory, refusing (without inflating further) output over ``max_bytes``."""
    import io

    return _gunzip_capped(io.BytesIO(data), max_bytes, what)


def _gunzip_capped(fh, max_bytes: int, what: str) -> bytes:
    out = bytearray()
    d = None  # the decompressor of the gzip member being read; None between members
    try:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            data = chunk
            while data:
                if d is None:
                    if not data.strip(b"\x00"):  # zero padding after the last member
                        break
                    d = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
                # max_length bounds each step's output, so a bomb never inflates past the cap in memory
                out += d.decompress(data, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise InputError(
                        f"{what} decompresses to more than {max_bytes:,} bytes (the cap); upload a smaller file"
                    )
                if d.eof:  # concatenated members are valid gzip: go on with the next one
                    data, d = d.unused_data, None
                else:
                    data = d.unconsumed_tail
    except zlib.error as e:
        raise InputError(f"{what} looks gzipped but is corrupt ({e})") from None
    if d is not None:
        raise InputError(f"{what} is a truncated .gz file (it ends inside the compressed data)")
    return bytes(out)
