"""Uploads are capped after decompression, with the decompression streamed (issue: a 2 MB .gz that inflates
to 2 GiB was once inflated whole in memory before any cap)."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import pytest

from engine.registry import InputError
from engine.uploads import read_capped


def test_plain_and_gzipped_files_read_back(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello world\n")
    assert read_capped(tmp_path / "a.txt", max_bytes=100) == b"hello world\n"
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"hello " * 10))
    assert read_capped(tmp_path / "a.gz", max_bytes=100) == b"hello " * 10
    # two concatenated members are one valid gzip file (`cat a.gz b.gz`), trailing zero padding is allowed
    (tmp_path / "b.gz").write_bytes(gzip.compress(b"ab") + gzip.compress(b"cd") + b"\x00" * 8)
    assert read_capped(tmp_path / "b.gz", max_bytes=100) == b"abcd"


def test_caps_hold_before_and_after_decompression(tmp_path):
    (tmp_path / "big.txt").write_bytes(b"x" * 101)
    with pytest.raises(InputError, match="101 bytes; the cap is 100"):
        read_capped(tmp_path / "big.txt", max_bytes=100)
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(b"x" * 101))
    with pytest.raises(InputError, match="decompresses to more than 100 bytes"):
        read_capped(tmp_path / "bomb.gz", max_bytes=100)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        read_capped(tmp_path / "empty.txt", max_bytes=100)
    with pytest.raises(InputError, match="no such file"):
        read_capped(tmp_path / "missing.txt", max_bytes=100)


def test_truncated_and_corrupt_gzip_are_named(tmp_path):
    data = gzip.compress(bytes(range(256)) * 64)
    (tmp_path / "cut.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        read_capped(tmp_path / "cut.gz", max_bytes=1 << 20)
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"not really gzip at all")
    with pytest.raises(InputError, match="corrupt"):
        read_capped(tmp_path / "bad.gz", max_bytes=1 << 20)


def test_a_gzip_bomb_is_refused_fast_and_without_inflating(tmp_path):
    # 1 GiB of zeros compresses to ~1 MB; the cap is 50 MB. Build it by streaming so the test itself stays small.
    path = tmp_path / "bomb.gz"
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\x00" * (1 << 24)
    with open(path, "wb") as fh:
        for _ in range(64):
            fh.write(c.compress(block))
        fh.write(c.flush())
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(InputError, match="decompresses to more than 50,000,000 bytes"):
            read_capped(path, max_bytes=50_000_000)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak_mb < 200, f"peak memory {peak_mb:.0f} MB"  # the cap (50 MB, bytearray growth) plus a chunk
    assert time.perf_counter() - t0 < 10
