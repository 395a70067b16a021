"""Result objects that carry their own provenance (DESIGN.md "Results carry their own provenance").

Every engine entry point returns a dataclass deriving from :class:`Result`: the arrays, the metrics, and a
:class:`Provenance` (method, parameters, input fingerprint, seed, backend, wall time of each stage). Results
serialise to JSON (``to_json``) and their tables to CSV (``table_csv``), so the CLI, the export buttons and the
tests all read the same object.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Provenance", "Result", "ComparisonResult", "Stopwatch", "fingerprint", "to_jsonable", "from_dict"]

ENGINE_VERSION = "0.1.0"


def fingerprint(*parts: Any) -> str:
    """Stable short SHA-256 over text, bytes, numbers, numpy arrays, torch tensors, dicts and sequences."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if x is None:
            h.update(b"\x00none")
        elif isinstance(x, bytes | bytearray | memoryview):
            h.update(b"b")
            h.update(bytes(x))
        elif isinstance(x, str):
            h.update(b"s")
            h.update(x.encode("utf-8"))
        elif isinstance(x, np.ndarray):
            h.update(f"a{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
            feed(x.detach().cpu().numpy())
        elif isinstance(x, dict):
            h.update(b"d")
            for k in sorted(x, key=str):
                feed(str(k))
                feed(x[k])
        elif isinstance(x, list | tuple):
            h.update(f"l{len(x)}".encode())
            for item in x:
                feed(item)
        else:
            h.update(repr(x).encode())

    for p in parts:
        feed(p)
    return h.hexdigest()[:16]


def to_jsonable(x: Any) -> Any:
    """Convert dataclasses, numpy arrays/scalars and tensors into plain JSON types."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x) if f.repr}
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.generic):
        return to_jsonable(x.item())
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return to_jsonable(x.detach().cpu().numpy())
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    return x


@dataclass
class Provenance:
    method: str
    params: dict[str, Any]
    input_fingerprint: str
    seed: int | None = None
    backend: str = "cpu"  # "cpu" or "cuda"
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    engine_version: str = ENGINE_VERSION
    created: float = field(default_factory=time.time)
    host: str = field(default_factory=platform.node)


class Stopwatch:
    """Records the wall time of named stages into a dict: ``with sw("forward"): ...``."""

    def __init__(self, timings: dict[str, float] | None = None) -> None:
        self.timings = timings if timings is not None else {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0


@dataclass
class Result:
    """Base class: subclasses add their own array and metric fields; ``provenance`` comes last."""

    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Named row tables for CSV export; subclasses override."""
        return {}

    def table_csv(self, name: str | None = None) -> str:
        tables = self.tables()
        if not tables:
            return ""
        rows = tables[name or next(iter(tables))]
        if not rows:
            return ""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: to_jsonable(v) for k, v in row.items()})
        return buf.getvalue()


@dataclass
class ComparisonResult(Result):
    """Two or more registered methods run on the same input with the same settings (DESIGN.md: comparison is
    first class). One row per (method, setting) cell with its quality and cost numbers; families subclass it to
    add their arrays (a curve, overlays, per-cell scenes) and keep ``rows`` as the table every export reads.
    """

    family: str = ""
    methods: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return {"comparison": self.rows}


def from_dict(cls: type, d: dict[str, Any], *, arrays: tuple[str, ...] = ()) -> Any:
    """Rebuild a :class:`Result` subclass from its :meth:`Result.to_dict` output (disk caches, JSON exports).

    ``arrays`` names the fields that hold numpy arrays (JSON keeps them as nested lists).
    """
    d = dict(d)
    prov = Provenance(**d.pop("provenance"))
    names = {f.name for f in dataclasses.fields(cls)}
    d = {k: v for k, v in d.items() if k in names}
    for k in arrays:
        if k in d and d[k] is not None:
            d[k] = np.asarray(d[k], dtype=np.float64)
    return cls(provenance=prov, **d)
