"""A scene with the cameras it is measured from: the shipped demo scene or an uploaded ``.ply`` / ``.splat``.

- :func:`load_bundle` reads the shipped demo scene (training and held-out cameras, ground-truth test views,
  importance precomputed on the GPU over all 120 training views) or any uploaded scene (orbit cameras from
  robust bounds; quality is then measured against the unpruned render, since there is no ground truth).
- :func:`demo_bundle` and :func:`upload_bundle` are the same, kept in memory by the file's fingerprint, so a
  repeated request does not re-read the scene.
- :func:`scene_importance` returns the shipped importance when it fits, else computes it (gsplat on a GPU, the
  torch renderer on the CPU), cached by scene fingerprint.
- :func:`at_size` re-aims a bundle's first evaluation views at another resolution, with the demo scene's
  ground truth ray-traced once per scene and cameras (cached), for comparisons at a lower resolution.
- :func:`memory_estimate` is what loading, pruning and rendering a scene of N Gaussians needs; an upload's
  header gives N before its body is read, and :func:`engine.admission.check_memory` refuses one that would
  need more than the server can give.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.admission import check_memory
from engine.cache import ResultCache
from engine.config import LIMITS
from engine.registry import InputError
from engine.results import Provenance, fingerprint
from engine.splats.cameras import Camera, load_cameras, orbit_cameras
from engine.splats.importance import Importance, compute_importance
from engine.splats.ply import GaussianScene, SceneHeader, load_scene, read_header

__all__ = [
    "DEMO_DIR",
    "SceneBundle",
    "load_bundle",
    "demo_bundle",
    "upload_bundle",
    "scene_importance",
    "at_size",
    "cameras_key",
    "memory_estimate",
    "check_scene_memory",
]

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "splats"
_BUNDLES = ResultCache("splats-bundle", maxsize=4)
_IMPORTANCE = ResultCache("splats-importance", maxsize=8)
_GROUND_TRUTH = ResultCache("splats-ground-truth", maxsize=8)


@dataclass
class SceneBundle:
    name: str
    scene: GaussianScene
    train_cams: list[Camera]  # views importance is accumulated over
    eval_cams: list[Camera]  # views quality is measured on
    gts: list[np.ndarray] | None  # ground truth for eval_cams (uint8 [H, W, 3]) or None
    importance: Importance | None  # precomputed (demo scene)
    key: str  # fingerprint of the scene


# Memory one pruning request holds, calibrated on the demo scene (59,497 Gaussians, SH degree 3, 256 px:
# peak RSS rose by ~210 MB; this estimate says ~250 MB).
SCENE_COPIES = 3  # the loaded scene, the pruned copy, and the activated tensors the renderer makes
RENDER_BYTES_PER_GAUSSIAN = 1024  # projection temporaries (covariances, conics, colours) and tile pairs
RENDER_FIXED_BYTES = 128 * 2**20  # the tile rasterizer's chunk buffers (6 float32 tensors of 2^22 elements)
RENDER_BYTES_PER_PIXEL = 64  # per-tile colour / transmittance buffers and the output images


def memory_estimate(count: int, sh_coeffs: int, *, file_bytes: int = 0, pixels: int = 256 * 256) -> int:
    """Bytes that loading, pruning and rendering a scene of ``count`` Gaussians with ``sh_coeffs`` SH
    coefficients per channel needs: the file, :data:`SCENE_COPIES` copies of every Gaussian's
    4 x (11 + 3 K) bytes (position, rotation, scale, opacity, SH), the renderer's per-Gaussian temporaries
    and tile pairs, its fixed chunk buffers, and per-pixel buffers of one ``pixels``-pixel view."""
    per_gaussian = SCENE_COPIES * 4 * (11 + 3 * sh_coeffs) + RENDER_BYTES_PER_GAUSSIAN
    return int(file_bytes + count * per_gaussian + RENDER_FIXED_BYTES + pixels * RENDER_BYTES_PER_PIXEL)


def check_scene_memory(header: SceneHeader, *, file_bytes: int = 0, pixels: int = 256 * 256) -> int:
    """Refuse (:class:`engine.admission.TooMuchMemory`, with the estimate in the message) a scene whose
    :func:`memory_estimate` is more than the server can give one request now; return the estimate."""
    need = memory_estimate(header.count, header.sh_coeffs, file_bytes=file_bytes, pixels=pixels)
    check_memory(need, f"Pruning a scene of {header.count:,} Gaussians (SH degree "
                       f"{round(header.sh_coeffs ** 0.5) - 1})")  # fmt: skip
    return need


def cameras_key(cams: list[Camera]) -> list:
    """What identifies a list of cameras in a cache key: names, sizes, poses and intrinsics."""
    return [(c.name, c.width, c.height, np.asarray(c.viewmat), np.asarray(c.K)) for c in cams]


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
    # the header first: a scene over the cap or the memory budget is refused before its body is read
    header = read_header(source, name=name, max_gaussians=LIMITS.max_gaussians)
    file_bytes = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    check_scene_memory(header, file_bytes=file_bytes, pixels=size * size)
    scene = load_scene(source, name=name, max_gaussians=LIMITS.max_gaussians)
    train = orbit_cameras(scene.means, 16, width=128, height=128, elevation_deg=20)
    train += orbit_cameras(scene.means, 8, width=128, height=128, elevation_deg=45)
    ev = orbit_cameras(scene.means, eval_views, width=size, height=size, elevation_deg=30)
    ev = [Camera(c.viewmat, c.K, c.width, c.height, f"view_{i}") for i, c in enumerate(ev)]
    key = fingerprint(scene.means, scene.opacity_logits)
    return SceneBundle(name or "uploaded scene", scene, train, ev, None, None, key)


def demo_bundle() -> SceneBundle:
    """The shipped demo scene with its 4 first held-out views, loaded once."""
    return _BUNDLES.get_or_compute("demo", lambda: load_bundle(None))


def upload_bundle(path: str | Path | None) -> SceneBundle:
    """An uploaded scene file (within the upload cap), loaded once per file content."""
    if not path:
        raise InputError("choose a .ply or .splat file to upload, or pick the demo scene")
    p = Path(path)
    if not p.is_file():
        raise InputError("the uploaded file is gone; upload it again")
    size = p.stat().st_size
    if size > LIMITS.max_upload_bytes:
        raise InputError(
            f"the file is {size / 1e6:.1f} MB; the upload cap is {LIMITS.max_upload_bytes / 1e6:.0f} MB"
        )
    header = read_header(p, max_gaussians=LIMITS.max_gaussians)  # before the body is read
    check_scene_memory(header, file_bytes=size)
    data = p.read_bytes()
    return _BUNDLES.get_or_compute(("upload", fingerprint(data)), lambda: load_bundle(data, name=p.name))


def scene_importance(bundle: SceneBundle, *, backend: str = "auto", progress=None) -> Importance:
    """Importance over the bundle's training views: the shipped one (demo scene) or computed once per scene."""
    if bundle.importance is not None:
        return bundle.importance
    return _IMPORTANCE.get_or_compute(
        (bundle.key, cameras_key(bundle.train_cams), backend),
        lambda: compute_importance(bundle.scene, bundle.train_cams, backend=backend, progress=progress),
    )


def at_size(bundle: SceneBundle, *, views: int, size: int) -> SceneBundle:
    """The bundle measured on its first ``views`` evaluation views at ``size`` x ``size`` pixels.

    A scene with ground truth (the demo scene) gets it ray-traced at that resolution, once per scene and
    cameras; a scene without keeps none (quality is then against the unpruned render).
    """
    cams = [c.resized(size, size) for c in bundle.eval_cams[:views]]
    gts = None
    if bundle.gts:
        from engine.splats.render import image_uint8
        from engine.splats.scene_gen import trace

        gts = _GROUND_TRUTH.get_or_compute(
            (bundle.key, cameras_key(cams)), lambda: [image_uint8(trace(c)) for c in cams]
        )
    return replace(bundle, eval_cams=cams, gts=gts)
