"""Admission control for a shared server: heavy-job slots, memory estimates, and stopping a running job.

A public Space serves many people on a few cores. Cheap work (drawing, cached results, small inputs) runs
concurrently; heavy work (training, full scans, renders, big graphs) takes one of ``LIMITS.heavy_workers``
slots, waits for one at most ``LIMITS.heavy_wait_s`` seconds (reporting its place through ``progress``), and is
otherwise refused with a "busy, try again in about N s" message. A request whose estimated memory exceeds what
the machine can give it is refused before it starts, with the estimate in the message.

Stopping: long engine loops call their ``progress(frac, desc)`` callback; :func:`watchdog` wraps that callback
so it raises :class:`Stopped` when the client has gone (Stop button, closed tab) and :class:`OverTime` past the
request time limit, which unwinds the job and frees its slot.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from engine.config import LIMITS
from engine.registry import InputError

__all__ = ["Busy", "TooMuchMemory", "Stopped", "OverTime", "heavy_slot", "running", "check_memory",
           "available_bytes", "fmt_bytes", "watchdog"]  # fmt: skip

Progress = Callable[[float, str], None]


class Busy(InputError):
    """Every heavy slot stayed taken for the whole wait: the user should try again later."""


class TooMuchMemory(InputError):
    """The request's estimated memory is more than the server can give it now."""


class Stopped(Exception):
    """The job was stopped because its client went away or pressed Stop."""


class OverTime(Stopped):
    """The job ran past the per-request time limit."""


@dataclass
class _Job:
    what: str
    started: float
    expect_s: float


_SLOTS = threading.BoundedSemaphore(max(1, LIMITS.heavy_workers))
_RUNNING: dict[int, _Job] = {}
_RUNNING_LOCK = threading.Lock()
_HELD = threading.local()  # how deep this thread is inside heavy_slot (re-entry takes no second slot)


def running() -> list[tuple[str, float]]:
    """(what, seconds so far) of every heavy job now holding a slot."""
    now = time.monotonic()
    with _RUNNING_LOCK:
        return [(j.what, now - j.started) for j in _RUNNING.values()]


def _eta_s() -> int:
    now = time.monotonic()
    with _RUNNING_LOCK:
        left = [max(5.0, j.expect_s - (now - j.started)) for j in _RUNNING.values()]
    return int(round(min(left))) if left else 5


@contextmanager
def heavy_slot(what: str, *, expect_s: float = 60.0, progress: Progress | None = None,
               wait_s: float | None = None) -> Iterator[None]:  # fmt: skip
    """Hold one heavy-job slot for the body; wait for it at most ``wait_s`` (default ``LIMITS.heavy_wait_s``).

    ``expect_s`` is the caller's estimate of the job's length, used for the "try again in N s" message others
    get. ``progress`` (a :func:`watchdog`-wrapped callback) is told the job is waiting, and lets a Stop end
    the wait. Re-entrant: a thread that already holds a slot goes straight in (one job, one slot).
    """
    if getattr(_HELD, "depth", 0):  # this thread already holds a slot: a heavy step inside a heavy job
        _HELD.depth += 1
        try:
            yield
        finally:
            _HELD.depth -= 1
        return
    wait = LIMITS.heavy_wait_s if wait_s is None else wait_s
    deadline = time.monotonic() + wait
    while not _SLOTS.acquire(timeout=0.5):
        busy = running()
        if time.monotonic() >= deadline:
            names = ", ".join(sorted({w for w, _ in busy})) or "other jobs"
            raise Busy(f"The server is busy: {len(busy)} heavy job(s) running ({names}). "
                       f"Try again in about {_eta_s()} s, or with smaller settings.")  # fmt: skip
        if progress is not None:
            progress(0.0, f"waiting for a free slot: {len(busy)} heavy job(s) running")
    token = id(threading.current_thread()) ^ time.monotonic_ns()
    with _RUNNING_LOCK:
        _RUNNING[token] = _Job(what, time.monotonic(), expect_s)
    _HELD.depth = 1
    torch = sys.modules.get("torch")  # a heavy job's torch threads are capped, so cheap work keeps a core
    saved_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(max(1, min(LIMITS.heavy_threads, saved_threads)))
    try:
        yield
    finally:
        if torch is not None:
            torch.set_num_threads(saved_threads)
        _HELD.depth = 0
        with _RUNNING_LOCK:
            _RUNNING.pop(token, None)
        _SLOTS.release()


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def available_bytes() -> int:
    """Memory one request may use now: what the OS reports available, less a reserve, within the cap."""
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - without psutil, trust the configured cap alone
        free = LIMITS.max_request_bytes
    return max(0, min(LIMITS.max_request_bytes, free - LIMITS.memory_reserve_bytes))


def check_memory(estimate: float, what: str) -> None:
    """Refuse before starting when ``estimate`` bytes is more than :func:`available_bytes`."""
    budget = available_bytes()
    if estimate > budget:
        raise TooMuchMemory(f"{what} would need about {fmt_bytes(estimate)} of memory, more than the "
                            f"{fmt_bytes(budget)} this server can give one request now. Try smaller settings.")  # fmt: skip


def watchdog(progress: Progress | None = None, *, limit_s: float | None = None,
             gone: Callable[[], bool] | None = None) -> Progress:  # fmt: skip
    """Wrap a ``progress(frac, desc)`` callback so each call also checks for a stop or the time limit."""
    start = time.monotonic()
    limit = LIMITS.request_time_s if limit_s is None else limit_s

    def check(frac: float, desc: str = "") -> None:
        if gone is not None and gone():
            raise Stopped("Stopped: the request was cancelled.")
        if limit and time.monotonic() - start > limit:
            raise OverTime(f"Stopped after the {limit:.0f} s limit for one request. "
                           "Try again with smaller settings (fewer samples, steps or points).")  # fmt: skip
        if progress is not None:
            progress(frac, desc)

    return check
