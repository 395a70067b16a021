"""Load a scene with its cameras, prune it with a registered method, and measure what was lost.

The shared pipeline of the app tab and the ``redex splats`` command:

- :func:`load_bundle` reads the shipped demo scene (training and held-out cameras, ground-truth test views,
  importance precomputed on the GPU over all 120 training views) or any uploaded ``.ply`` / ``.splat`` (orbit
  cameras from robust bounds; quality measured against the unpruned render, since there is no ground truth).
- :func:`scene_importance` returns the shipped importance when it fits, else computes it (gsplat on a GPU, the
  torch renderer on the CPU at a reduced resolution), cached by scene fingerprint.
- :func:`evaluate` prunes, optionally stores the result lossily (fp16, SH degree, sub-vector quantisation),
  renders the evaluation views and reports count, bytes, PSNR / SSIM and render time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.cache import MemoryCache
from engine.config import LIMITS
from engine.registry import InputError
from engine.results import Provenance, Result, fingerprint
from engine.splats.cameras import Camera, load_cameras, orbit_cameras
from engine.splats.importance import Importance, compute_importance
from engine.splats.metrics import psnr, ssim
from engine.splats.ply import GaussianScene, load_scene
from engine.splats.prune import PruneResult, prune
from engine.splats.render import image_uint8, render
from engine.splats.storage import compress, ply_size

__all__ = ["DEMO_DIR", "SceneBundle", "PruneReport", "load_bundle", "scene_importance", "evaluate", "STORAGE"]

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "splats"
STORAGE = ("fp32", "fp16", "SH degree 1", "SH degree 0", "SVQ 8-bit", "SH0 + SVQ 8-bit")
_IMPORTANCE = MemoryCache(maxsize=8)
_FULL_RENDERS = MemoryCache(maxsize=16)


@dataclass
class SceneBundle:
    name: str
    scene: GaussianScene
    train_cams: list[Camera]  # views importance is accumulated over
    eval_cams: list[Camera]  # views quality is measured on
    gts: list[np.ndarray] | None  # ground truth for eval_cams (uint8 [H, W, 3]) or None
    importance: Importance | None  # precomputed (demo scene)
    key: str  # fingerprint of the scene


def _demo_importance(scene: GaussianScene, cams: list[Camera]) -> Importance | None:
    p = DEMO_DIR / "importance.npz"
    if not p.exists():
        return None
    z = np.load(p)
    if len(z["weight"]) != len(scene):
        return None
    prov = Provenance("importance", {"views": int(z["n_views"]), "precomputed": True}, "demo",
                      backend=str(z["backend"]))  # fmt: skip
    w, h = z["weight"].astype(np.float64), z["hits"].astype(np.float64)
    return Importance(prov, weight=w, hits=h, hits_opacity=h * scene.opacities, n_views=int(z["n_views"]),
                      width=int(z["width"]), height=int(z["height"]))  # fmt: skip


def load_bundle(
    source: str | Path | bytes | None = None, *, name: str = "", eval_views: int = 4, size: int = 256
) -> SceneBundle:
    """The demo scene (``source`` None or the demo path) or an uploaded scene with orbit cameras."""
    demo = DEMO_DIR / "scene.ply"
    if source is None or (not isinstance(source, bytes) and Path(source).resolve() == demo.resolve()):
        if not demo.exists():
            raise InputError("the demo scene is missing from assets/splats")
        scene = load_scene(demo, max_gaussians=LIMITS.max_gaussians)
        cams = load_cameras(DEMO_DIR / "cameras.json")
        train = [c for c in cams if c.name.startswith("train")]
        test = [c for c in cams if c.name.startswith("test")][:eval_views]
        from PIL import Image

        gts = [np.asarray(Image.open(DEMO_DIR / f"{c.name}.png").convert("RGB")) for c in test]
        return SceneBundle("demo scene", scene, train, test, gts, _demo_importance(scene, train),
                           fingerprint(demo.read_bytes()[:4096], demo.stat().st_size))  # fmt: skip
    if isinstance(source, bytes) and len(source) > LIMITS.max_upload_bytes:
        raise InputError(f"the file is {len(source):,} bytes; the upload cap is {LIMITS.max_upload_bytes:,}")
    if not isinstance(source, bytes):
        p = Path(source)
        if p.is_file() and p.stat().st_size > max(LIMITS.max_upload_bytes, LIMITS.max_gaussians * 256):
            raise InputError(
                f"{p.name} is {p.stat().st_size:,} bytes; the size cap is {LIMITS.max_upload_bytes:,}"
            )
    scene = load_scene(source, name=name, max_gaussians=LIMITS.max_gaussians)
    train = orbit_cameras(scene.means, 16, width=128, height=128, elevation_deg=20)
    train += orbit_cameras(scene.means, 8, width=128, height=128, elevation_deg=45)
    ev = orbit_cameras(scene.means, eval_views, width=size, height=size, elevation_deg=30)
    ev = [Camera(c.viewmat, c.K, c.width, c.height, f"view_{i}") for i, c in enumerate(ev)]
    key = fingerprint(scene.means, scene.opacity_logits)
    return SceneBundle(name or "uploaded scene", scene, train, ev, None, None, key)


def scene_importance(bundle: SceneBundle, *, backend: str = "auto", progress=None) -> Importance:
    if bundle.importance is not None:
        return bundle.importance
    return _IMPORTANCE.get_or_compute(
        bundle.key,
        lambda: compute_importance(bundle.scene, bundle.train_cams, backend=backend, progress=progress),
    )


def _store(scene: GaussianScene, storage: str):
    if storage not in STORAGE:
        raise InputError(f"storage must be one of {list(STORAGE)}, got {storage!r}")
    if storage == "fp32":
        return compress(scene)
    if storage == "fp16":
        return compress(scene, half=True)
    if storage.startswith("SH degree"):
        return compress(scene, sh_degree=int(storage[-1]))
    if storage == "SVQ 8-bit":
        return compress(scene, svq=True, bits=8)
    return compress(scene, sh_degree=0, svq=True, bits=8)


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


def _full_renders(bundle: SceneBundle, backend: str):
    def go():
        outs = [render(bundle.scene, c, backend=backend) for c in bundle.eval_cams]
        return [image_uint8(o) for o in outs], float(np.mean([o.ms for o in outs])), outs[0].backend

    views = ",".join(f"{c.name}@{c.width}x{c.height}" for c in bundle.eval_cams)
    return _FULL_RENDERS.get_or_compute(f"{bundle.key}:{backend}:{views}", go)


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
    """Prune ``bundle.scene`` with ``method`` and measure the result on ``bundle.eval_cams``."""
    params = dict(params or {})
    if not 0 <= view < len(bundle.eval_cams):
        raise InputError(f"view must be in 0..{len(bundle.eval_cams) - 1}, got {view}")
    t0 = time.perf_counter()
    needs_imp = method in ("lightgaussian", "lightgaussian-official", "omg")
    imp = scene_importance(bundle, progress=progress) if needs_imp else None
    t_imp = time.perf_counter() - t0
    res = prune(bundle.scene, method, importance=imp, **params)
    stored = _store(res.scene, storage)
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
