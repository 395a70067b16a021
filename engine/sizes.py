"""Approximate memory held by a Python object (arrays, tensors, models, results), for caches bounded by bytes.

An estimate, not an audit: numpy arrays and torch tensors count their buffers (``nbytes``), ``torch.nn.Module``s
their parameters and buffers, containers and dataclasses their items, anything else ``sys.getsizeof``. Each
object is counted once (shared arrays are not double counted) and the walk stops at a fixed depth.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

__all__ = ["approx_bytes", "module_bytes"]

_MAX_DEPTH = 6


def module_bytes(module: Any) -> int:
    """Bytes of a torch module's parameters and buffers (the weights a cached model keeps in memory)."""
    total = 0
    seen: set[int] = set()
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def approx_bytes(obj: Any) -> int:
    """Approximate bytes held by ``obj`` and what it references (see the module docstring)."""
    seen: set[int] = set()

    def walk(o: Any, depth: int) -> int:
        if id(o) in seen:
            return 0
        seen.add(id(o))
        nbytes = getattr(o, "nbytes", None)
        if isinstance(nbytes, int) and not isinstance(o, type):
            return nbytes + 100  # numpy arrays (and anything else that states its buffer size)
        mod = type(o).__module__ or ""
        if mod.startswith("torch"):
            if hasattr(o, "element_size") and hasattr(o, "numel"):
                return int(o.numel() * o.element_size()) + 100
            if hasattr(o, "parameters") and hasattr(o, "buffers"):
                return module_bytes(o)
        if isinstance(o, (str, bytes, bytearray, int, float, bool, type(None))):
            return sys.getsizeof(o)
        if depth >= _MAX_DEPTH:
            return sys.getsizeof(o)
        if isinstance(o, dict):
            return sys.getsizeof(o) + sum(walk(k, depth + 1) + walk(v, depth + 1) for k, v in o.items())
        if isinstance(o, (list, tuple, set, frozenset)):
            return sys.getsizeof(o) + sum(walk(v, depth + 1) for v in o)
        if hasattr(o, "parameters") and hasattr(o, "buffers") and callable(o.parameters):
            return module_bytes(o)
        if dataclasses.is_dataclass(o):
            return sys.getsizeof(o) + sum(
                walk(getattr(o, f.name, None), depth + 1) for f in dataclasses.fields(o)
            )
        d = getattr(o, "__dict__", None)
        if isinstance(d, dict):
            return sys.getsizeof(o) + walk(d, depth + 1)
        return sys.getsizeof(o)

    return walk(obj, 0)
