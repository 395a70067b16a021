"""Result caches keyed by input fingerprint: in memory (LRU) and on disk as JSON (DESIGN.md).

A repeated request, or a cached example, answers at once; the disk copy survives a restart.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from engine.config import cache_dir
from engine.results import fingerprint

__all__ = ["MemoryCache", "ResultCache", "disk_get", "disk_put"]


class MemoryCache:
    """A small thread-safe LRU cache."""

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = compute()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def _path(namespace: str, key: str):
    d = cache_dir() / "results" / namespace
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.json"


def disk_get(namespace: str, key: str) -> dict[str, Any] | None:
    p = _path(namespace, key)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def disk_put(namespace: str, key: str, value: dict[str, Any]) -> None:
    p = _path(namespace, key)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(p)


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
