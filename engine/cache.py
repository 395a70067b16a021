"""Result caches keyed by input fingerprint: in memory (LRU) and on disk as JSON (DESIGN.md).

A repeated request, or a cached example, answers at once; the disk copy survives a restart.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from engine.config import LIMITS, cache_dir
from engine.results import fingerprint
from engine.sizes import approx_bytes

__all__ = ["MemoryCache", "ResultCache", "disk_get", "disk_put", "memory_bytes"]

log = logging.getLogger("redex.cache")

# One ledger for every in-memory cache: together they hold at most LIMITS.result_cache_bytes, and the entry
# used least recently (in any cache) goes first.
_LOCK = threading.RLock()
_TICK = itertools.count()
_CACHES: weakref.WeakSet[MemoryCache] = weakref.WeakSet()
_TOTAL = [0]


def memory_bytes() -> int:
    """Approximate bytes held by all in-memory result caches together."""
    return _TOTAL[0]


def _evict_until_within(budget: int) -> None:
    while _TOTAL[0] > budget:
        oldest: MemoryCache | None = None
        oldest_tick = None
        for c in list(_CACHES):
            if c._data:
                tick = next(iter(c._data.values()))[2]
                if oldest_tick is None or tick < oldest_tick:
                    oldest, oldest_tick = c, tick
        if oldest is None:
            return
        oldest._pop_oldest()


class MemoryCache:
    """A thread-safe LRU cache bounded by entries (``maxsize``) and, with every other cache, by bytes.

    Identical requests that arrive together compute once: the later ones wait for the first. If that
    computation fails (or is stopped), a waiting request computes for itself.
    """

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, tuple[Any, int, int]] = OrderedDict()  # key -> (value, bytes, tick)
        self._inflight: dict[str, threading.Event] = {}
        with _LOCK:
            _CACHES.add(self)

    def _pop_oldest(self) -> None:
        _, (_, nbytes, _) = self._data.popitem(last=False)
        _TOTAL[0] -= nbytes

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        while True:
            with _LOCK:
                if key in self._data:
                    value, nbytes, _ = self._data.pop(key)
                    self._data[key] = (value, nbytes, next(_TICK))
                    return value
                waiting = self._inflight.get(key)
                if waiting is None:
                    done = self._inflight[key] = threading.Event()
                    break
            waiting.wait()
        try:
            value = compute()
        finally:
            with _LOCK:
                self._inflight.pop(key, None)
            done.set()
        self._store(key, value)
        return value

    def _store(self, key: str, value: Any) -> None:
        nbytes = approx_bytes(value)
        budget = LIMITS.result_cache_bytes
        if nbytes > budget:
            log.info("result of %d bytes not cached in memory (cap %d)", nbytes, budget)
            return
        with _LOCK:
            if key in self._data:
                _TOTAL[0] -= self._data.pop(key)[1]
            self._data[key] = (value, nbytes, next(_TICK))
            _TOTAL[0] += nbytes
            while len(self._data) > self.maxsize:
                self._pop_oldest()
            _evict_until_within(budget)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with _LOCK:
            _TOTAL[0] -= sum(n for _, n, _ in self._data.values())
            self._data.clear()


def _path(namespace: str, key: str):
    d = cache_dir() / "results" / namespace
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.json"


_HEADER = "#redex-cache sha256="


def disk_get(namespace: str, key: str) -> dict[str, Any] | None:
    """The entry, or None. An entry that fails its checksum (half written, corrupted, or from code that wrote
    no checksum) is removed, so the caller recomputes and rewrites it."""
    p = _path(namespace, key)
    try:
        raw = p.read_bytes()
    except OSError:
        return None
    head, _, body = raw.partition(b"\n")
    expected = head.decode("ascii", "replace").removeprefix(_HEADER)
    try:
        if not head.startswith(_HEADER.encode()) or hashlib.sha256(body).hexdigest() != expected:
            raise ValueError("checksum mismatch")
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        log.warning(
            "cache entry %s/%s is corrupted or incomplete: removed, it will be recomputed", namespace, key
        )
        p.unlink(missing_ok=True)
        return None


def disk_put(namespace: str, key: str, value: dict[str, Any]) -> None:
    """Write atomically: a uniquely named temporary file in the same folder, then rename over the entry."""
    p = _path(namespace, key)
    body = json.dumps(value).encode()
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(f"{_HEADER}{hashlib.sha256(body).hexdigest()}\n".encode())
            fh.write(body)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _sweep_stale_temporaries(p.parent)


def _sweep_stale_temporaries(folder, max_age_s: float = 3600.0) -> None:
    """Temporary files left by a killed writer (SIGKILL mid-write) are removed once they are an hour old."""
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > max_age_s:
                tmp.unlink()
        except OSError:
            pass


class ResultCache:
    """Results keyed by input fingerprint, in memory (LRU) and, when ``load`` is given, on disk as JSON.

    The one cache a family's ``compare`` / ``run`` functions use, so no tab keeps its own. ``version`` is part
    of every key: bump it when the computation changes and old disk entries are simply never read again.

    >>> cache = ResultCache("graphs-sweep", version=2, load=lambda d: d)   # doctest: +SKIP
    >>> res = cache.get_or_compute(("karate", 0.3, "ssumm-l1"), compute)   # doctest: +SKIP
    """

    def __init__(
        self,
        namespace: str,
        *,
        version: int = 1,
        maxsize: int = 32,
        load: Callable[[dict[str, Any]], Any] | None = None,
        dump: Callable[[Any], dict[str, Any]] | None = None,
    ) -> None:
        self.namespace = namespace
        self.version = version
        self.memory = MemoryCache(maxsize)
        self._load = load
        self._dump = dump or (lambda r: r.to_dict())

    def key(self, parts: Any) -> str:
        return fingerprint(self.namespace, self.version, parts)

    def get_or_compute(self, parts: Any, compute: Callable[[], Any]) -> Any:
        key = self.key(parts)

        def from_disk_or_compute() -> Any:
            if self._load is not None:
                hit = disk_get(self.namespace, key)
                if hit is not None:
                    try:
                        return self._load(hit)
                    except (KeyError, TypeError, ValueError):
                        pass  # an entry written by older code: recompute and overwrite
            value = compute()
            if self._load is not None:
                disk_put(self.namespace, key, self._dump(value))
            return value

        return self.memory.get_or_compute(key, from_disk_or_compute)

    def __contains__(self, parts: Any) -> bool:
        return self.key(parts) in self.memory

    def clear(self) -> None:
        self.memory.clear()
