"""Bounded caches, corrupted cache entries, heavy-job slots and the stop/time-limit watchdog (issue 14)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine import admission, cache
from engine.admission import Busy, OverTime, Stopped, TooMuchMemory, check_memory, heavy_slot, watchdog
from engine.cache import MemoryCache, ResultCache, disk_get, disk_put
from engine.sizes import approx_bytes


def test_approx_bytes_counts_buffers_once():
    a = np.zeros(1000, dtype=np.float64)
    assert 8000 <= approx_bytes(a) < 9000
    assert 8000 <= approx_bytes({"x": a, "y": [a, a]}) < 10_000  # the shared array is counted once


def test_memory_caches_are_bounded_by_bytes_together(monkeypatch):
    monkeypatch.setattr(cache, "LIMITS", type(cache.LIMITS)(result_cache_bytes=40_000))
    a, b = MemoryCache(maxsize=100), MemoryCache(maxsize=100)
    a.get_or_compute("a1", lambda: np.zeros(2000))  # 16 kB each
    b.get_or_compute("b1", lambda: np.zeros(2000))
    a.get_or_compute("a1", lambda: pytest.fail("a1 is cached"))  # a1 is now the most recently used
    a.get_or_compute("a2", lambda: np.zeros(2000))
    assert cache.memory_bytes() <= 40_000  # b1, the least recently used of all, went first
    assert "b1" not in b and "a1" in a and "a2" in a
    big = a.get_or_compute("huge", lambda: np.zeros(10_000))  # 80 kB: over the whole budget, not kept
    assert big.shape == (10_000,) and "huge" not in a
    a.clear()
    b.clear()


def test_identical_requests_compute_once():
    c = MemoryCache()
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return 42

    out = []
    threads = [threading.Thread(target=lambda: out.append(c.get_or_compute("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [42] * 4 and len(calls) == 1


def test_a_failed_computation_lets_the_next_request_compute():
    c = MemoryCache()
    with pytest.raises(Stopped):
        c.get_or_compute("k", lambda: (_ for _ in ()).throw(Stopped("stopped")))
    assert c.get_or_compute("k", lambda: 7) == 7


@pytest.mark.parametrize("damage", ["truncate", "flip", "old-format", "empty"])
def test_a_corrupted_disk_entry_is_removed_and_recomputed(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("REDEX_CACHE_DIR", str(tmp_path))
    disk_put("t", "k", {"numbers": list(range(100))})
    path = next((tmp_path / "results" / "t").glob("k.json"))
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "flip": raw.replace(b"99", b"98"),
                      "old-format": raw.split(b"\n", 1)[1], "empty": b""}[damage])  # fmt: skip
    assert disk_get("t", "k") is None and not path.exists()
    calls = []
    rc = ResultCache("t2", load=lambda d: d, dump=lambda d: d)
    rc.get_or_compute("x", lambda: calls.append(1) or {"v": 1})
    entry = next((tmp_path / "results" / "t2").glob("*.json"))
    entry.write_bytes(entry.read_bytes()[:-3])  # half written
    fresh = ResultCache("t2", load=lambda d: d, dump=lambda d: d)  # a restarted server
    assert fresh.get_or_compute("x", lambda: calls.append(1) or {"v": 1}) == {"v": 1} and len(calls) == 2
    assert disk_get("t2", fresh.key("x")) == {"v": 1}  # rewritten whole
    assert not list((tmp_path / "results").rglob("*.tmp"))


def test_heavy_slots_refuse_with_a_wait_estimate(monkeypatch):
    monkeypatch.setattr(admission, "_SLOTS", threading.BoundedSemaphore(1))
    release = threading.Event()
    started = threading.Event()

    def hold():
        with heavy_slot("SAE training", expect_s=90):
            started.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    started.wait(5)
    waits = []
    with pytest.raises(
        Busy, match=r"busy: 1 heavy job\(s\) running \(SAE training\)\. Try again in about \d+ s"
    ):
        with heavy_slot("layer scan", wait_s=1.0, progress=lambda f, d: waits.append(d)):
            pass
    assert waits and "waiting for a free slot" in waits[0]
    release.set()
    t.join()
    with heavy_slot("layer scan", wait_s=1.0):  # the slot is free again
        assert admission.running()[0][0] == "layer scan"
    assert admission.running() == []


def test_a_stop_ends_the_wait_for_a_slot(monkeypatch):
    monkeypatch.setattr(admission, "_SLOTS", threading.BoundedSemaphore(1))
    admission._SLOTS.acquire()
    gone = watchdog(gone=lambda: True)
    t0 = time.monotonic()
    with pytest.raises(Stopped, match="cancelled"):
        with heavy_slot("render", wait_s=30, progress=gone):
            pass
    assert time.monotonic() - t0 < 3
    admission._SLOTS.release()


def test_watchdog_stops_past_the_time_limit():
    seen = []
    check = watchdog(lambda f, d: seen.append(f), limit_s=0.2)
    check(0.1, "a")
    time.sleep(0.3)
    with pytest.raises(OverTime, match=r"limit for one request\. Try again with smaller settings"):
        check(0.5, "b")
    assert seen == [0.1]


def test_memory_estimates_over_the_budget_are_refused(monkeypatch):
    monkeypatch.setattr(admission, "available_bytes", lambda: 2_000_000_000)
    check_memory(1_000_000_000, "a scan")
    with pytest.raises(
        TooMuchMemory, match=r"a scan would need about 5\.0 GB of memory, more than the 2\.0 GB"
    ):
        check_memory(5e9, "a scan")


def test_model_cache_is_bounded_by_weight_bytes(monkeypatch):
    import torch

    from engine import models

    monkeypatch.setattr(models, "LIMITS", type(models.LIMITS)(model_cache_bytes=100_000))
    monkeypatch.setattr(models, "_CACHE", type(models._CACHE)())

    class Loaded:
        def __init__(self, n):
            self.model = torch.nn.Linear(n, 100, bias=False)  # n x 100 x 4 bytes

    models._cache_put(("a", "float32"), Loaded(100))  # 40 kB
    models._cache_put(("b", "float32"), Loaded(100))  # 80 kB together: both kept
    assert list(models._CACHE) == [("a", "float32"), ("b", "float32")]
    models._cache_put(("c", "float32"), Loaded(100))  # 120 kB: the least recently used goes
    assert list(models._CACHE) == [("b", "float32"), ("c", "float32")]
    models._cache_put(("huge", "float32"), Loaded(1000))  # 400 kB alone: kept (the model just asked for)
    assert list(models._CACHE) == [("huge", "float32")]


def test_heavy_slot_is_reentrant_within_one_thread(monkeypatch):
    monkeypatch.setattr(admission, "_SLOTS", threading.BoundedSemaphore(1))
    with heavy_slot("outer", wait_s=0.5):
        with heavy_slot("inner", wait_s=0.5):  # would wait for ever on a plain semaphore
            assert [w for w, _ in admission.running()] == ["outer"]
    with heavy_slot("again", wait_s=0.5):
        pass
