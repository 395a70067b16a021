"""Per-Gaussian importance accumulated over many views: the raw material of LightGaussian and OMG.

For every view and Gaussian j we accumulate

- ``weight``: sum over pixels of its blending weight alpha_j T_j (the contribution it makes to the pixel
  colour). This is OMG's importance I and LightGaussian's paper form (its Eq. 5 sums 1(G_j hits pixel) x
  opacity x transmittance-weighted alpha over all training pixels).
- ``hits``: the number of pixels it is composited into, and ``hits_opacity`` = hits x sigmoid opacity, which
  is what LightGaussian's official CUDA kernel adds (the opacity once per pixel hit, without transmittance).

On a GPU the weight sum comes from gsplat in one forward + backward pass per view (the gradient of the summed
render with respect to a per-Gaussian colour of 1 is exactly sum alpha T); hits need the per-pixel lists, so
they come from the tile renderer of :mod:`engine.splats.render`, run on the same device. On the CPU both come
from the tile renderer in one pass per view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.results import Provenance, Result, fingerprint
from engine.splats.cameras import Camera
from engine.splats.ply import GaussianScene
from engine.splats.render import blending_weights_gsplat, gsplat_available, render, to_tensors

__all__ = ["Importance", "compute_importance"]


@dataclass
class Importance(Result):
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [N] sum of alpha*T over views/pixels
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [N] pixels hit over all views
    hits_opacity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [N] hits x opacity
    n_views: int = 0
    width: int = 0
    height: int = 0


def compute_importance(
    scene: GaussianScene,
    cameras: list[Camera],
    *,
    backend: str = "auto",
    need_hits: bool = True,
    progress=None,
) -> Importance:
    """Accumulate blending weights (and hit counts) of every Gaussian over ``cameras``.

    Parameters
    ----------
    backend : "auto" | "gsplat" | "cpu"
    need_hits : also count pixel hits (needed by LightGaussian's official form); on the GPU this adds one
        tile-renderer pass per view.
    progress : optional callable(fraction, desc) for the UI.
    """
    if not cameras:
        raise ValueError("importance needs at least one camera")
    use_gpu = backend == "gsplat" or (backend == "auto" and gsplat_available())
    device = torch.device("cuda" if use_gpu else "cpu")
    g = to_tensors(scene, device)
    n = len(scene)
    weight = torch.zeros(n, device=device)
    hits = torch.zeros(n, device=device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, cam in enumerate(cameras):
            if use_gpu:
                weight += blending_weights_gsplat(g, cam, device)
                if need_hits:
                    hits += render(g, cam, backend="torch", accumulate=True).hit_count
            else:
                out = render(g, cam, backend="cpu", accumulate=True)
                weight += out.weight_sum
                hits += out.hit_count
            if progress is not None:
                progress((i + 1) / len(cameras), f"importance: view {i + 1}/{len(cameras)}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    w, h = weight.cpu().numpy(), hits.cpu().numpy()
    prov = Provenance(
        method="importance",
        params={"views": len(cameras), "need_hits": need_hits},
        input_fingerprint=fingerprint(scene.means[:1000], n, [c.to_dict() for c in cameras[:4]]),
        backend="cuda" if use_gpu else "cpu",
        timings={"importance": seconds},
    )
    return Importance(
        provenance=prov,
        weight=w.astype(np.float64),
        hits=h.astype(np.float64),
        hits_opacity=(h * scene.opacities).astype(np.float64),
        n_views=len(cameras),
        width=cameras[0].width,
        height=cameras[0].height,
    )
