"""Two or more effective-feature measurements side by side: layers, models or SAE settings on the same corpus.

Each *cell* is one run of a registered measurement (``sae-feature-count`` by default: its registry entry checks
the cell's parameters) on one model, layer and site; the settings shared by every cell (how many activations,
the epoch cap) come from :data:`COMPARE`. The result holds every cell's full measurement, drawn on identical
axes by ``visualizers.superposition.plot_compare``, and one comparison row per cell (F, N, psi, SAE quality and
time). Comparisons are kept in memory by everything they depend on (each measurement is cached too,
:func:`engine.superposition.measure.measure_layer`).

References
----------
L. Bereska et al. "Superposition as Lossy Compression: Measure with Sparse Autoencoders and Connect to
Adversarial Vulnerability", 2025. https://github.com/leonardbereska/superposition-measurement
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.cache import ResultCache
from engine.registry import InputError, Settings, get
from engine.results import ComparisonResult, Provenance, fingerprint

from .measure import SAE_PARAMS, LayerMeasurement

__all__ = ["COMPARE", "LayerComparison", "compare"]

_P = {p.name: p for p in SAE_PARAMS}
COMPARE = Settings(
    "superposition comparison",
    (
        replace(_P["max_activations"], default=2048, label="Activations (both)"),
        replace(_P["max_epochs"], default=300, label="Max epochs (both; early stopping ends sooner)"),
    ),
)
CELL_KEYS = ("label", "method", "model", "layer", "site", "params")  # what one cell may say
_COMPARISONS = ResultCache("superposition-compare", maxsize=4)  # memory only: the cells hold their SAEs


@dataclass
class LayerComparison(ComparisonResult):
    labels: list[str] = field(default_factory=list)  # one per cell ("A", "B", ...)
    cells: list[LayerMeasurement] = field(default_factory=list)  # each cell's whole measurement


def _cell(c: dict[str, Any], i: int) -> dict[str, Any]:
    unknown = sorted(set(c) - set(CELL_KEYS))
    if unknown:
        raise InputError(f"a comparison cell takes {list(CELL_KEYS)}, not {unknown}")
    if not str(c.get("model") or "").strip():
        raise InputError(f"comparison cell {i + 1} names no model")
    method = get(c.get("method") or "sae-feature-count", family="superposition")
    if method.role != "measure":
        raise InputError(
            f"a comparison cell runs a one-layer measurement, not {method.name!r} ({method.role})"
        )
    return {
        "label": str(c.get("label") or chr(ord("A") + i)),
        "method": method.name,
        "model": str(c["model"]).strip(),
        "layer": int(c.get("layer", 0)),
        "site": c.get("site") or "resid",
        "params": dict(c.get("params") or {}),
    }


def compare(
    text: str | None,
    cells: Sequence[dict[str, Any]],
    settings: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> LayerComparison:
    """Measure every cell on the same text (``None``: the default corpus) with the same shared settings.

    Parameters
    ----------
    text : the corpus every cell captures activations on (``None``: the built-in calibration corpus).
    cells : at least two dicts ``{"model", "layer", "site", "params", "label", "method"}``; ``params`` are the
        measurement's own parameters (``l1``, ``expansion``, ...), checked by its registry entry.
    settings : :data:`COMPARE` values shared by every cell (defaults filled in).

    Returns
    -------
    LayerComparison : ``rows`` has one row per cell; ``cells`` the measurements in the same order.
    """
    if len(cells) < 2:
        raise InputError(f"a comparison needs at least two cells, got {len(cells)}")
    specs = [_cell(c, i) for i, c in enumerate(cells)]
    shared = COMPARE.validate(settings)
    for s in specs:  # check every cell before any SAE trains
        s["params"] = get(s["method"], family="superposition").validate({**s["params"], **shared})

    def compute() -> LayerComparison:
        ms = [
            get(s["method"], family="superposition")(
                s["model"], s["layer"], site=s["site"], text=text, seed=seed, progress=progress, **s["params"]
            )
            for s in specs
        ]
        rows = [
            {"cell": s["label"], "method": s["method"], **{k: s["params"][k] for k in ("l1", "expansion")},
             **m.summary(), "backend": m.provenance.backend}
            for s, m in zip(specs, ms)
        ]  # fmt: skip
        prov = Provenance(
            method="superposition-compare",
            params={"cells": specs, **shared},
            input_fingerprint=fingerprint(
                text or "default-corpus", [m.provenance.input_fingerprint for m in ms]
            ),
            seed=seed,
            backend=ms[0].provenance.backend,
            timings={"total": sum(m.provenance.timings.get("total", 0.0) for m in ms)},
        )
        return LayerComparison(
            provenance=prov,
            family="superposition",
            methods=[s["method"] for s in specs],
            settings=shared,
            rows=rows,
            labels=[s["label"] for s in specs],
            cells=ms,
        )

    return _COMPARISONS.get_or_compute((text or "", specs, shared, seed), compute)
