"""Graph summaries on a shared server: heavy slots by graph size, memory estimates, progress, Stop, threads.

Engine-level (no app): the slot and memory decisions are the engine's (``engine.graphs.io.heavy``), so they are
tested where they are made; tests/test_bad_inputs_graphs.py covers the launched app.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine import admission
from engine.admission import Busy, Stopped, TooMuchMemory, heavy_slot, running
from engine.config import Limits
from engine.graphs import io
from engine.graphs import merge_state as ms
from engine.graphs.compare import compare, summarize, summarize_cached


@pytest.fixture(scope="module")
def big():
    """A graph just over the heavy threshold (a few seconds of SSumM on one core)."""
    g = io.rmat(io.HEAVY_EDGES + 5_000, seed=11)
    assert g.m > io.HEAVY_EDGES
    return g


def _same(a, b):
    np.testing.assert_array_equal(a.summary.labels, b.summary.labels)
    np.testing.assert_array_equal(a.summary.se_a, b.summary.se_a)
    np.testing.assert_array_equal(a.summary.se_b, b.summary.se_b)
    assert (a.size_bits, a.l1_error, a.l2_error) == (b.size_bits, b.l1_error, b.l2_error)


@pytest.mark.parametrize("method", ["ssumm", "saa-gs"])
def test_progress_and_pausing_do_not_change_the_summary(monkeypatch, method):
    g = io.sbm(20_000, seed=2)
    plain = summarize(g, method, budget=0.3, seed=4)
    monkeypatch.setattr(ms, "CHUNK_S", 1e-6)  # the smallest pieces of work: pause as often as possible
    calls = []
    r = summarize(g, method, budget=0.3, seed=4, progress=lambda f, d: calls.append((f, d)))
    _same(plain, r)
    fracs = [f for f, _ in calls]
    assert len(calls) > 20 and fracs == sorted(fracs) and 0 <= fracs[0] and fracs[-1] <= 1
    assert any(method in d for _, d in calls)


def test_stop_mid_run_frees_the_slot_and_the_next_request_succeeds(big):
    calls = [0]

    def stop_soon(frac, desc):
        calls[0] += 1
        if calls[0] > 3:
            raise Stopped("Stopped: the request was cancelled.")

    with pytest.raises(Stopped):
        summarize_cached(big, "ssumm", budget=0.5, seed=7, progress=stop_soon)
    assert running() == []  # the slot went back
    for _ in range(admission.LIMITS.heavy_workers):  # every slot is free
        assert admission._SLOTS.acquire(timeout=1)
    for _ in range(admission.LIMITS.heavy_workers):
        admission._SLOTS.release()
    r = summarize_cached(big, "ssumm", budget=0.5, seed=7)  # not poisoned by the stopped run
    _same(r, summarize(big, "ssumm", budget=0.5, seed=7))


def test_small_graph_never_waits_behind_big_jobs(monkeypatch, big):
    monkeypatch.setattr(admission, "LIMITS", Limits(heavy_wait_s=0.6))
    release, held = threading.Event(), threading.Barrier(admission._SLOTS._initial_value + 1)

    def hog():
        with heavy_slot("a two-million-edge job", expect_s=60):
            held.wait()
            release.wait(30)

    hogs = [threading.Thread(target=hog) for _ in range(admission._SLOTS._initial_value)]
    for t in hogs:
        t.start()
    held.wait()
    try:
        t0 = time.perf_counter()
        r = summarize_cached(io.cached_builtin("karate"), "ssumm", budget=0.4, seed=123)
        assert r.nodes == 34 and time.perf_counter() - t0 < 5  # no slot needed, no wait
        with pytest.raises(Busy, match="busy.*two-million-edge job.*Try again in about"):
            summarize_cached(big, "ssumm", budget=0.45, seed=123)
        with pytest.raises(Busy, match="busy"):
            io.cached_generate("rmat", io.HEAVY_EDGES + 1, seed=99)
        with pytest.raises(Busy, match="busy"):
            compare(big, settings={"budgets": "0.4", "seed": 5})
        small = io.cached_generate("rmat", 2_000, seed=99)  # small generated graphs do not wait either
        assert small.m == 2_000
    finally:
        release.set()
        for t in hogs:
            t.join()


def test_memory_estimate_refuses_before_work(monkeypatch, big):
    monkeypatch.setattr(admission, "LIMITS", Limits(max_request_bytes=1_000_000))
    with pytest.raises(TooMuchMemory, match=r"ssumm on 55,\d+ edges would need about .* MB"):
        summarize_cached(big, "ssumm", budget=0.35, seed=1)
    with pytest.raises(TooMuchMemory, match="generating rmat"):
        io.cached_generate("rmat", 300_000, seed=1)
    text = "".join(f"{i} {i + 1}\n" for i in range(io.HEAVY_EDGES + 10))
    with pytest.raises(TooMuchMemory, match="parsing"):
        io.parse_edge_list(text, name="big.txt")
    assert (
        summarize_cached(io.cached_builtin("karate"), "ssumm", budget=0.35).nodes == 34
    )  # small: no estimate


def test_concurrent_summaries_equal_sequential_ones():
    """Each thread's numba random stream is its own, so summaries run at once equal those run one by one."""
    g = io.sbm(8_000, seed=3)
    jobs = [("ssumm", s) for s in range(4)] + [("saa-gs", s) for s in range(2)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(lambda job: summarize(g, job[0], budget=0.3, seed=job[1]), jobs))
    for (method, seed), r in zip(jobs, together):
        _same(r, summarize(g, method, budget=0.3, seed=seed))
