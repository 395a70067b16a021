"""Precomputed measurements of the tab's default views, shipped in ``assets/superposition/``.

Training the default SAE to convergence (dictionary x4, lambda 1, 2,048 tokens, early stopping within 300
epochs: about 160 epochs) takes seconds on a GPU but many minutes on a busy 2-core CPU, so the measurements of
the default views (the one-layer view's layer 15, the comparison's layers 5 and 25, all of SmolLM2's residual
stream) are computed ahead by ``bench/superposition.py`` (``--defaults-inputs`` here, ``--defaults-job`` on a
GPU, ``--import-defaults`` here; see ``assets/superposition/CARD.md``) and read from there.

A request answers from a shipped measurement only when *every* input matches it (the same key the in-memory
cache uses: model, layer, site, text, window, all SAE parameters, seed, no uploaded SAE); any other setting
computes live. The result says it was precomputed (``LayerMeasurement.precomputed``), and where.

Why lambda 1 and not the paper's 0.1: on SmolLM2's residual stream (scaled to unit mean square, see
:mod:`.sae`) lambda 0.1 converges to a dense code (mean L0 445 of 2,304, 93 % of features active on more than
10 % of tokens), where F mostly counts the dictionary; lambda 1 converges to a sparse one (mean L0 about 63,
explained variance 0.98). The paper's value stays the method's default; the tab's defaults use lambda 1.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from engine.results import fingerprint, from_dict

__all__ = ["ASSETS", "DEFAULT_LAYER", "DEFAULT_SAE", "COMPARE_LAYERS", "SPECS", "key", "measurement",
           "feature_map_for", "write"]  # fmt: skip

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "superposition"
INDEX = "index.json"
DEFAULT_MODEL = "smollm2"
DEFAULT_LAYER = 15  # a middle layer of SmolLM2's 30
COMPARE_LAYERS = (5, 25)
# the one-layer and comparison views' SAE settings (the rest are the method's defaults)
DEFAULT_SAE = {"expansion": 4.0, "l1": 1.0, "max_activations": 2048, "max_epochs": 300}
SPECS = tuple(
    {"model": DEFAULT_MODEL, "layer": layer, "site": "resid", "feature_map": layer == DEFAULT_LAYER}
    for layer in (DEFAULT_LAYER, *COMPARE_LAYERS)
)


def key(parts: Any) -> str:
    """The shipped entry's key: a fingerprint of the measurement's cache parts."""
    return fingerprint("sae-feature-count-shipped", parts)


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, str]]:
    try:
        return json.loads((ASSETS / INDEX).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


@functools.lru_cache(maxsize=8)
def _read(name: str) -> dict[str, Any]:
    return json.loads((ASSETS / name).read_text())


def measurement(k: str):
    """The shipped :class:`~.measure.LayerMeasurement` for key ``k``, or ``None`` (no SAE or activations in
    it: the feature map comes from :func:`feature_map_for`)."""
    entry = _index().get(k)
    if not entry:
        return None
    from .measure import LayerMeasurement

    try:
        return from_dict(LayerMeasurement, _read(entry["measurement"]))
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None  # a damaged asset: compute live instead


def feature_map_for(m):
    """The shipped feature map of a shipped measurement ``m`` (default UMAP settings), or ``None``."""
    entry = _index().get(getattr(m, "shipped_key", "") or "")
    if not entry or not entry.get("feature_map"):
        return None
    from .feature_map import FeatureMap

    try:
        return from_dict(FeatureMap, _read(entry["feature_map"]))
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None


def write(entries: list[tuple[str, Any, Any]], folder: Path = ASSETS) -> None:
    """Write ``(key, measurement, feature_map or None)`` entries and their index into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {}
    for k, m, fm in entries:
        stem = f"{m.model}-L{m.layer}-{m.site}"
        (folder / f"{stem}.json").write_text(m.to_json())
        index[k] = {"measurement": f"{stem}.json"}
        if fm is not None:
            (folder / f"{stem}-feature-map.json").write_text(fm.to_json())
            index[k]["feature_map"] = f"{stem}-feature-map.json"
    (folder / INDEX).write_text(json.dumps(index, indent=1))
    _index.cache_clear()
    _read.cache_clear()
