"""Every pruning method at several kept fractions on the same scene: the kept-fraction (or bytes) vs PSNR
Pareto comparison of the tab, as one :class:`SplatComparison`.

:func:`compare` measures each method at each kept fraction of :data:`COMPARE` on the bundle's first
evaluation views at a reduced resolution (the demo scene's ground truth is ray-traced at that resolution once
per scene and cameras, :func:`engine.splats.bundle.at_size`). Importance is computed once per scene and shared
by every scored method. Comparisons are cached by scene fingerprint, cameras and settings in memory and on
disk (:class:`engine.cache.ResultCache`); bump :data:`COMPARE_VERSION` when a method's numbers change.

:func:`shipped_rows` reads the GPU run's comparison of the demo scene shipped with it (12 held-out views at
256 px), in the same row layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.cache import ResultCache
from engine.registry import InputError, Param, Settings, names
from engine.results import ComparisonResult, Provenance, Stopwatch, from_dict
from engine.splats.bundle import DEMO_DIR, SceneBundle, at_size, cameras_key
from engine.splats.evaluate import measure, method_params, splat_work, work_slot
from engine.splats.prune import check_params
from engine.splats.storage import STORAGE_PARAM

__all__ = ["COMPARE", "COMPARE_VERSION", "KEEPS", "SplatComparison", "compare", "shipped_rows"]

KEEPS = (0.1, 0.2, 0.34, 0.5, 0.7)
COMPARE = Settings(
    "splat comparison",
    (
        Param("keeps", KEEPS, help="kept fractions every method is measured at"),
        Param("views", 1, low=1, high=12, help="evaluation views (the bundle's first ones)"),
        Param("size", 128, low=16, high=1024, help="width and height of the evaluation renders (pixels)"),
        STORAGE_PARAM,
    ),
)
COMPARE_VERSION = 1

_comparisons = ResultCache(
    "splats-compare", version=COMPARE_VERSION, maxsize=16, load=lambda d: from_dict(SplatComparison, d)
)


@dataclass
class SplatComparison(ComparisonResult):
    """Every method at every kept fraction on one scene. ``rows``: one per (method, kept fraction) with
    ``method``, ``keep`` (the fraction actually kept), ``count``, ``bytes``, ``psnr``, ``ssim`` and
    ``keep_requested``."""

    scene_name: str = ""
    reference: str = ""  # what psnr / ssim compare against: "ground truth" or "unpruned render"
    views: tuple[str, ...] | list[str] = ()  # the evaluation views' names
    backend: str = ""


def _keeps(value: Any) -> tuple[float, ...]:
    """Kept fractions as floats (each is then range-checked by every method's own Param)."""
    try:
        keeps = tuple(float(k) for k in value)
    except (TypeError, ValueError):
        raise InputError(f"keeps must be a sequence of numbers, got {value!r}") from None
    if not keeps:
        raise InputError("keeps: give at least one kept fraction")
    return keeps


def compare(
    bundle: SceneBundle,
    methods: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    *,
    backend: str = "auto",
    progress: Callable[[float, str], None] | None = None,
) -> SplatComparison:
    """Every method in ``methods`` (default: every registered splat method, in registration order) at every
    kept fraction of ``settings`` (a :data:`COMPARE` table: ``keeps``, ``views``, ``size``, ``storage``).

    Raises
    ------
    InputError
        For an unknown method or a setting outside its range (checked before anything runs).
    """
    chosen = list(methods) if methods else names("splats")
    checked = COMPARE.validate(settings)
    checked["keeps"] = _keeps(checked["keeps"])
    for name in chosen:  # every kept fraction through every method's own check, before anything runs
        for k in checked["keeps"]:
            check_params(name, method_params(name, keep=k))
    cams = [c.resized(checked["size"], checked["size"]) for c in bundle.eval_cams[: checked["views"]]]
    key = (bundle.key, cameras_key(cams), bool(bundle.gts), chosen, checked, backend)  # as at_size sets gts
    cells = len(chosen) * len(checked["keeps"])

    def compute() -> SplatComparison:  # only on a cache miss: a cached comparison takes no slot
        small = at_size(bundle, views=checked["views"], size=checked["size"])
        work = splat_work(small, renders_per_view=cells + 1, with_importance=True)
        with work_slot("3D Gaussian comparison", work, progress):
            if progress is not None and small.gts:
                progress(0.0, "ground truth at the comparison's size")
            return _compare(small, chosen, checked, backend, progress)

    return _comparisons.get_or_compute(key, compute)


def _compare(
    bundle: SceneBundle, chosen: list[str], settings: dict, backend: str, progress
) -> SplatComparison:
    timings: dict[str, float] = {}
    watch = Stopwatch(timings)
    keeps, rows, rep = settings["keeps"], [], None
    cells = len(chosen) * len(keeps)
    for i, name in enumerate(chosen):
        with watch(name):
            for j, k in enumerate(keeps):
                cell = i * len(keeps) + j
                step = None
                if progress is not None:
                    label = f"{name} keep {k:.0%} ({cell + 1} of {cells})"
                    progress(cell / cells, label)
                    # every stage of the cell (importance, pruning, each view) moves the bar and can stop
                    step = lambda f, d="", c=cell, lb=label: progress((c + f) / cells, f"{lb}: {d}")  # noqa: E731
                rep = measure(bundle, name, method_params(name, keep=k), storage=settings["storage"],
                              backend=backend, progress=step)  # fmt: skip
                rows.append({"method": name, "keep": rep.count_after / rep.count_before, "count": rep.count_after,
                             "bytes": rep.bytes_after, "psnr": rep.psnr, "ssim": rep.ssim,
                             "keep_requested": k})  # fmt: skip
    return SplatComparison(
        provenance=Provenance(
            "compare", dict(settings), bundle.key, None, rep.backend if rep else "", timings
        ),
        family="splats",
        methods=chosen,
        settings=dict(settings),
        rows=rows,
        scene_name=bundle.name,
        reference=rep.reference if rep else "",
        views=[c.name for c in bundle.eval_cams],
        backend=rep.backend if rep else "",
    )


def shipped_rows() -> list[dict[str, Any]]:
    """The GPU run's comparison rows for the demo scene (12 held-out views, 256 px), or [] if not shipped."""
    p = DEMO_DIR / "pareto_gpu.json"
    return json.loads(p.read_text()) if p.exists() else []
