"""Prune a scene with a registered method and measure what was lost: the pipeline of the tab and ``redex splats``.

- :func:`evaluate` prunes (with importance when the method ``needs`` it), optionally stores the result lossily
  (fp16, SH degree, sub-vector quantisation: :func:`engine.splats.storage.store`), renders the evaluation views
  and reports count, bytes, PSNR / SSIM and render time as a :class:`PruneReport`, kept in memory by scene
  fingerprint, cameras, method, parameters and storage, so a repeated request answers at once.
- :func:`method_params` turns the shared fields of a form (a kept fraction; a score-mass target for a method
  that declares one) into one method's parameters.
- :func:`write_pruned` writes the pruned scene (.ply or .splat) and records where in the report.

Scenes and cameras come from :mod:`engine.splats.bundle`; comparisons of many methods from
:mod:`engine.splats.compare`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.cache import ResultCache
from engine.registry import InputError
from engine.results import Provenance, Result
from engine.splats.bundle import SceneBundle, cameras_key, scene_importance
from engine.splats.metrics import psnr, ssim
from engine.splats.ply import GaussianScene, write_ply, write_splat
from engine.splats.prune import PruneResult, check_params, prune, pruning_method
from engine.splats.render import image_uint8, render
from engine.splats.storage import STORAGE_PARAM, ply_size, store

__all__ = ["PruneReport", "evaluate", "measure", "method_params", "write_pruned"]

_REPORTS = ResultCache("splats-report", maxsize=8)  # memory only: a report holds the pruned scene
_FULL_RENDERS = ResultCache("splats-full-render", maxsize=16)


@dataclass
class PruneReport(Result):
    scene_name: str = ""
    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    storage: str = "fp32"
    count_before: int = 0
    count_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    psnr: float | None = None  # against ground truth (demo scene) or None
    ssim: float | None = None
    psnr_before: float | None = None  # the unpruned scene against ground truth
    ssim_before: float | None = None
    reference: str = ""  # what psnr / ssim compare against: "ground truth" or "unpruned render"
    psnr_vs_full: float = 0.0  # against the unpruned render (any scene)
    ssim_vs_full: float = 0.0
    backend: str = ""
    render_ms: float = 0.0  # mean per view, pruned scene
    render_ms_before: float = 0.0
    views: list[str] = field(default_factory=list)
    before: np.ndarray | None = field(default=None, repr=False)  # uint8 [H, W, 3], the chosen view
    after: np.ndarray | None = field(default=None, repr=False)
    gt: np.ndarray | None = field(default=None, repr=False)
    result: PruneResult | None = field(default=None, repr=False)
    pruned: GaussianScene | None = field(default=None, repr=False)
    out: str | None = None  # where the pruned scene was written (write_pruned), if it was

    def metrics(self) -> dict[str, Any]:
        keys = (
            "count_before",
            "count_after",
            "bytes_before",
            "bytes_after",
            "psnr",
            "ssim",
            "backend",
            "render_ms",
            "reference",
        )
        return {k: getattr(self, k) for k in keys}

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        row = {"scene": self.scene_name, "method": self.method, "storage": self.storage, **self.metrics(),
               "psnr_vs_full": self.psnr_vs_full, "ssim_vs_full": self.ssim_vs_full}  # fmt: skip
        return {"metrics": [row]}

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus the names ``redex splats --json`` has always printed them under."""
        d = super().to_dict()
        d.update(scene=self.scene_name, psnr_vs_unpruned=d["psnr_vs_full"], ssim_vs_unpruned=d["ssim_vs_full"],
                 timings=d["provenance"]["timings"])  # fmt: skip
        return d


def _full_renders(bundle: SceneBundle, backend: str):
    def go():
        outs = [render(bundle.scene, c, backend=backend) for c in bundle.eval_cams]
        return [image_uint8(o) for o in outs], float(np.mean([o.ms for o in outs])), outs[0].backend

    return _FULL_RENDERS.get_or_compute((bundle.key, backend, cameras_key(bundle.eval_cams)), go)


def method_params(method: str, *, keep: Any, mass: Any = None) -> dict[str, Any]:
    """One method's parameters from a form's shared fields: the kept fraction ``keep``, or, when ``mass`` is
    given and the method has a score-mass rule (``facts["mass_param"]``, OMG's ``tau``), that rule instead
    (``keep`` 0 = "use the rule"). Values are checked when the method runs, not here."""
    target = pruning_method(method).fact("mass_param")
    if target and mass is not None:
        return {target: mass, "keep": 0.0}
    return {"keep": keep}


def evaluate(
    bundle: SceneBundle,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    storage: str = "fp32",
    view: int = 0,
    backend: str = "auto",
    progress=None,
) -> PruneReport:
    """Prune ``bundle.scene`` with ``method`` and measure the result on ``bundle.eval_cams`` (cached).

    Raises
    ------
    InputError
        An unknown method or storage, a parameter outside its range (the message names the control), a view
        outside the bundle's, or nothing left after pruning.
    """
    checked = check_params(method, dict(params or {}))  # range errors before the cache key
    storage = STORAGE_PARAM.check(storage)
    if not 0 <= view < len(bundle.eval_cams):
        raise InputError(f"view must be in 0..{len(bundle.eval_cams) - 1}, got {view}")
    key = (bundle.key, cameras_key(bundle.eval_cams), bundle.gts is not None, method, checked, storage, view,
           backend)  # fmt: skip
    return _REPORTS.get_or_compute(
        key, lambda: measure(bundle, method, checked, storage=storage, view=view, backend=backend,
                             progress=progress)
    )  # fmt: skip


def measure(
    bundle: SceneBundle,
    method: str,
    params: dict[str, Any],
    *,
    storage: str = "fp32",
    view: int = 0,
    backend: str = "auto",
    progress=None,
) -> PruneReport:
    """:func:`evaluate` without its cache (comparisons call this for each of their cells)."""
    t0 = time.perf_counter()
    needs_imp = "importance" in pruning_method(method).needs
    imp = scene_importance(bundle, progress=progress) if needs_imp else None
    t_imp = time.perf_counter() - t0
    res = prune(bundle.scene, method, importance=imp, **params)
    stored = store(res.scene, storage)
    pruned = stored.scene
    if len(pruned) == 0:
        raise InputError("nothing is left after pruning; raise keep")
    full_imgs, full_ms, _ = _full_renders(bundle, backend)
    outs = [render(pruned, c, backend=backend) for c in bundle.eval_cams]
    imgs = [image_uint8(o) for o in outs]
    rep = PruneReport(
        provenance=Provenance(
            method,
            res.provenance.params,
            bundle.key,
            res.provenance.seed,
            outs[0].backend,
            {"importance": t_imp, **res.provenance.timings, "render": sum(o.ms for o in outs) / 1000},
        ),  # fmt: skip
        scene_name=bundle.name,
        method=method,
        params=res.provenance.params,
        storage=storage,
        count_before=len(bundle.scene),
        count_after=len(pruned),
        bytes_before=ply_size(bundle.scene),
        bytes_after=stored.bytes,
        psnr_vs_full=float(np.mean([psnr(a, b) for a, b in zip(imgs, full_imgs)])),
        ssim_vs_full=float(np.mean([ssim(a, b) for a, b in zip(imgs, full_imgs)])),
        backend=outs[0].backend,
        render_ms=float(np.mean([o.ms for o in outs])),
        render_ms_before=full_ms,
        views=[c.name for c in bundle.eval_cams],
        before=full_imgs[view],
        after=imgs[view],
        gt=bundle.gts[view] if bundle.gts else None,
        result=res,
        pruned=pruned,
    )
    if bundle.gts:
        rep.psnr = float(np.mean([psnr(a, g) for a, g in zip(imgs, bundle.gts)]))
        rep.ssim = float(np.mean([ssim(a, g) for a, g in zip(imgs, bundle.gts)]))
        rep.psnr_before = float(np.mean([psnr(a, g) for a, g in zip(full_imgs, bundle.gts)]))
        rep.ssim_before = float(np.mean([ssim(a, g) for a, g in zip(full_imgs, bundle.gts)]))
        rep.reference = "ground truth"
    else:
        rep.reference = "unpruned render"
        rep.psnr, rep.ssim = rep.psnr_vs_full, rep.ssim_vs_full
    return rep


def write_pruned(rep: PruneReport, path: str | Path) -> PruneReport:
    """Write ``rep``'s pruned scene to ``path`` (``.splat`` by suffix, else the INRIA PLY); return a copy of
    the report that records the path (the cached report stays as it was)."""
    path = Path(path)
    if path.suffix.lower() == ".splat":
        write_splat(rep.pruned, path)
    else:
        write_ply(rep.pruned, path)
    return replace(rep, out=str(path))
