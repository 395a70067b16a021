"""Prune a scene with a registered method and measure what was lost: the pipeline of the tab and ``redex splats``.

- :func:`evaluate` prunes (with importance when the method ``needs`` it), optionally stores the result lossily
  (fp16, SH degree, sub-vector quantisation: :func:`engine.splats.storage.store`), renders the evaluation views
  and reports count, bytes, PSNR / SSIM and render time as a :class:`PruneReport`, kept in memory by scene
  fingerprint, cameras, method, parameters and storage, so a repeated request answers at once.
- :func:`method_params` turns the shared fields of a form (a kept fraction; a score-mass target for a method
  that declares one) into one method's parameters.
- :func:`write_pruned` writes the pruned scene (.ply or .splat) and records where in the report.

Serving: a request whose work (:func:`splat_work`: Gaussians x rendered pixels) is above :data:`HEAVY_WORK`
takes one of the server's heavy-job slots (:func:`engine.admission.heavy_slot`) after the cache missed, and
every stage (importance, pruning, storage, each rendered view, the metrics) calls ``progress``, so the bar
moves and a Stop or the time limit ends the job between two views.

Scenes and cameras come from :mod:`engine.splats.bundle`; comparisons of many methods from
:mod:`engine.splats.compare`.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.admission import heavy_slot
from engine.cache import ResultCache
from engine.registry import InputError
from engine.results import Provenance, Result
from engine.splats.bundle import SceneBundle, cameras_key, scene_importance
from engine.splats.metrics import psnr, ssim
from engine.splats.ply import GaussianScene, write_ply, write_splat
from engine.splats.prune import PruneResult, check_params, prune, pruning_method
from engine.splats.render import image_uint8, render
from engine.splats.storage import STORAGE_PARAM, ply_size, store

__all__ = ["PruneReport", "evaluate", "measure", "method_params", "write_pruned", "splat_work", "work_slot",
           "HEAVY_WORK"]  # fmt: skip

# Gaussians x rendered pixels above which a request is heavy work (about a second of the CPU renderer): the
# demo scene's Apply (59,497 Gaussians x 8 views of 256 px, 3e10) is heavy, a 300-Gaussian upload's is not.
HEAVY_WORK = 2e9
WORK_PER_S = 3e9  # Gaussians x pixels per second of the CPU tile renderer, for the "try again in" estimate

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


def _part(progress, lo: float, hi: float):
    """``progress`` squeezed into [lo, hi] (a stage's own 0..1 as a share of the whole job)."""
    return None if progress is None else (lambda frac, desc="": progress(lo + (hi - lo) * frac, desc))


def _say(progress, frac: float, desc: str) -> None:
    if progress is not None:
        progress(frac, desc)


def splat_work(bundle: SceneBundle, *, renders_per_view: int = 2, with_importance: bool = False) -> float:
    """Gaussians x pixels rendered: each evaluation view ``renders_per_view`` times (unpruned and pruned), plus
    one pass over every training view when importance must be computed."""
    n = len(bundle.scene)
    work = n * renders_per_view * sum(c.width * c.height for c in bundle.eval_cams)
    if with_importance and bundle.importance is None:
        work += n * sum(c.width * c.height for c in bundle.train_cams)
    return float(work)


def work_slot(what: str, work: float, progress=None):
    """A heavy-job slot for work above :data:`HEAVY_WORK`, else nothing (small scenes run at once)."""
    if work <= HEAVY_WORK:
        return nullcontext()
    return heavy_slot(what, expect_s=max(5.0, work / WORK_PER_S), progress=progress)


def _full_renders(bundle: SceneBundle, backend: str, progress=None):
    def go():
        outs = []
        for i, c in enumerate(bundle.eval_cams):
            _say(progress, i / len(bundle.eval_cams), f"rendering the unpruned scene: view {i + 1} of "
                                                      f"{len(bundle.eval_cams)}")  # fmt: skip
            outs.append(render(bundle.scene, c, backend=backend))
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
    work = splat_work(bundle, with_importance="importance" in pruning_method(method).needs)

    def compute() -> PruneReport:  # only on a cache miss: a cached report takes no slot
        with work_slot(f"3D Gaussian pruning ({method})", work, progress):
            return measure(bundle, method, checked, storage=storage, view=view, backend=backend,
                           progress=progress)  # fmt: skip

    return _REPORTS.get_or_compute(key, compute)


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
    lo = 0.3 if needs_imp and bundle.importance is None else 0.0  # the share of the job importance takes
    if needs_imp:
        _say(progress, 0.0, "importance over the training views")
    imp = scene_importance(bundle, progress=_part(progress, 0.0, lo)) if needs_imp else None
    t_imp = time.perf_counter() - t0
    _say(progress, lo, f"pruning with {method}")
    res = prune(bundle.scene, method, importance=imp, **params)
    _say(progress, lo + 0.03, f"storing the pruned scene as {storage}")
    stored = store(res.scene, storage)
    pruned = stored.scene
    if len(pruned) == 0:
        raise InputError("nothing is left after pruning; raise keep")
    mid = lo + 0.05 + (0.95 - lo - 0.05) * 0.6  # unpruned renders cost more than pruned ones
    full_imgs, full_ms, _ = _full_renders(bundle, backend, progress=_part(progress, lo + 0.05, mid))
    outs = []
    n_views = len(bundle.eval_cams)
    for i, c in enumerate(bundle.eval_cams):
        _say(
            progress,
            mid + (0.95 - mid) * i / n_views,
            f"rendering the pruned scene: view {i + 1} of {n_views}",
        )
        outs.append(render(pruned, c, backend=backend))
    _say(progress, 0.95, "PSNR and SSIM")
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
