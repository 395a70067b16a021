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

__all__ = ["MemoryCache", "disk_get", "disk_put"]


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
