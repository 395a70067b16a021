"""One render function, two backends: gsplat's CUDA rasterizer on a GPU, a tile-binned torch renderer otherwise.

The torch renderer follows gsplat 1.5.3's classic 3DGS pipeline step by step so that the two agree to float
rounding:

1. projection (EWA): 3D covariance from quaternion and scale, world -> camera, the perspective Jacobian with
   gsplat's 1.3 x FOV clamp (reused from ``gsplat.cuda._torch_impl``), a 0.3 px^2 low-pass blur, the conic,
   and the opacity-aware bounding box of gsplat's CUDA kernel: radius = ceil(extend * sigma) with
   extend = min(3.33, sqrt(2 ln(255 opacity))); Gaussians with opacity < 1/255, behind the near plane or off
   screen are culled.
2. colour from spherical harmonics in the direction camera -> Gaussian, + 0.5, clamped at 0 (as gsplat).
3. tile binning: each Gaussian goes to every tile its box touches (floor/ceil of (mean +- radius)/tile),
   pairs sorted by (tile, depth). gsplat uses 16 x 16 tiles, and so does the torch renderer by default; the
   image does not depend on the tile size (tested): outside its box a Gaussian's alpha is below 1/255 (the box half-width is ceil(extend * sigma_x) and the quadratic form is at least
   dx^2 / Sigma_xx, so alpha <= opacity * exp(-extend^2 / 2) <= 1/255), so it is skipped in either tiling.
4. alpha compositing front to back per pixel (centre at +0.5): alpha = min(0.999, o exp(-sigma)), skipped
   when alpha < 1/255, and the pixel stops (exclusively) at the first Gaussian that would take the
   transmittance to <= 1e-4. The torch version evaluates K Gaussians of a tile at a time and turns the
   sequential loop into a cumulative product; the stop rule stays exact because the running transmittance
   only falls, so "included" is a prefix of each pixel's list, and a per-pixel ``done`` flag carries across
   chunks.

The torch renderer is differentiable (used by ``train --quick`` on the CPU) and can accumulate, per Gaussian,
the sum of its blending weights alpha * T over all pixels and the number of pixels it contributes to, which
the importance scores of LightGaussian and OMG need.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.splats.cameras import Camera
from engine.splats.ply import GaussianScene

__all__ = ["RenderOutput", "render", "to_tensors", "gsplat_available", "project"]

ALPHA_MIN = 1.0 / 255.0  # gsplat's ALPHA_THRESHOLD
T_MIN = 1e-4  # a pixel stops once its transmittance would reach this
EPS2D = 0.3  # low-pass blur added to every 2D covariance (pixels^2)
NEAR, FAR = 0.01, 1e10


@dataclass
class RenderOutput:
    image: torch.Tensor  # [H, W, 3]
    alpha: torch.Tensor  # [H, W]
    backend: str  # "cuda (gsplat)" or "cpu (torch tiles)" / "cuda (torch tiles)"
    ms: float
    weight_sum: torch.Tensor | None = None  # [N] sum over pixels of alpha * T (blending weight)
    hit_count: torch.Tensor | None = None  # [N] number of pixels the Gaussian contributes to
    info: dict[str, Any] | None = None  # means2d / radii for densification (training)


def to_tensors(scene: GaussianScene | dict, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Activated tensors: means [N,3], quats [N,4], scales [N,3], opacities [N], sh [N,K,3]."""
    if isinstance(scene, dict):
        return scene
    t = {
        "means": torch.from_numpy(np.ascontiguousarray(scene.means, np.float32)),
        "quats": torch.from_numpy(np.ascontiguousarray(scene.quats, np.float32)),
        "scales": torch.from_numpy(np.exp(scene.log_scales).astype(np.float32)),
        "opacities": torch.from_numpy(scene.opacities.astype(np.float32)),
        "sh": torch.from_numpy(np.ascontiguousarray(scene.sh, np.float32)),
    }
    return {k: v.to(device) for k, v in t.items()}


_GSPLAT_OK: bool | None = None


def gsplat_available() -> bool:
    """True when a CUDA device is present and gsplat imports (its extension compiles on first use)."""
    global _GSPLAT_OK
    if _GSPLAT_OK is None:
        try:
            import gsplat  # noqa: F401

            _GSPLAT_OK = torch.cuda.is_available()
        except Exception:  # noqa: BLE001 - any import failure means "not available"
            _GSPLAT_OK = False
    return _GSPLAT_OK


def _camera_tensors(cam: Camera, device) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(np.asarray(cam.viewmat), dtype=torch.float32, device=device),
            torch.as_tensor(np.asarray(cam.K), dtype=torch.float32, device=device))  # fmt: skip


def _ewa(means, quats, scales, viewmat, K, width, height):
    """World -> camera, 3D covariance R S S^T R^T, and the clamped perspective Jacobian J Sigma J^T.

    The same arithmetic as ``gsplat.cuda._torch_impl`` (``_quat_scale_to_covar_preci``, ``_world_to_cam``,
    ``_persp_proj``) written out per component, which is several times faster on the CPU than its einsums.
    Returns camera-space means [N,3], the 2D covariance as (xx, xy, yy) [3,N] and pixel means [N,2].
    """
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], dim=-1,
    ).reshape(-1, 3, 3)  # fmt: skip
    Rw, tw = viewmat[:3, :3], viewmat[:3, 3]
    M = Rw @ (R * scales[:, None, :])  # camera-space R S
    means_c = means @ Rw.T + tw
    tx, ty, tz = means_c.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    txc = tz * torch.clamp(tx / tz, min=-lim_xn, max=lim_xp)
    tyc = tz * torch.clamp(ty / tz, min=-lim_yn, max=lim_yp)
    # rows of J: [fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]
    j0 = torch.stack([fx / tz, torch.zeros_like(tz), -fx * txc / (tz * tz)], dim=-1)
    j1 = torch.stack([torch.zeros_like(tz), fy / tz, -fy * tyc / (tz * tz)], dim=-1)
    u = (j0[:, :, None] * M).sum(1)  # J0 M  [N,3]
    v = (j1[:, :, None] * M).sum(1)
    cov2d = torch.stack([(u * u).sum(-1), (u * v).sum(-1), (v * v).sum(-1)])
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], dim=-1)
    return means_c, cov2d, means2d


def project(g: dict[str, torch.Tensor], viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int):
    """EWA projection as gsplat's CUDA kernel does it.

    Returns means2d [N,2], conics [N,3] (a, b, c of the inverse 2D covariance), depths [N], radii [N,2] (int,
    0 = culled) and the opacity [N].
    """
    means_c, cov2d, means2d = _ewa(g["means"], g["quats"], g["scales"], viewmat, K, width, height)
    depths = means_c[:, 2]
    a = cov2d[0] + EPS2D
    b = cov2d[1]
    c = cov2d[2] + EPS2D
    det = a * c - b * b
    ok = det > 0
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    opac = g["opacities"]
    with torch.no_grad():
        extend = torch.sqrt(2.0 * torch.log(torch.clamp(opac, min=ALPHA_MIN) / ALPHA_MIN)).clamp(max=3.33)
        rx = torch.ceil(extend * torch.sqrt(a.clamp(min=0)))
        ry = torch.ceil(extend * torch.sqrt(c.clamp(min=0)))
        keep = ok & (depths > NEAR) & (depths < FAR) & (opac >= ALPHA_MIN) & ((rx > 0) | (ry > 0))
        mx, my = means2d[:, 0], means2d[:, 1]
        keep &= ~((mx + rx <= 0) | (mx - rx >= width) | (my + ry <= 0) | (my - ry >= height))
        radii = torch.stack([rx, ry], dim=-1) * keep[:, None]
    return means2d, conics, depths, radii.to(torch.int32), opac


def _sh_colors(g: dict[str, torch.Tensor], viewmat: torch.Tensor, sh_degree: int) -> torch.Tensor:
    from gsplat.cuda._torch_impl import _spherical_harmonics

    campos = torch.linalg.inv(viewmat)[:3, 3]
    dirs = g["means"] - campos
    col = _spherical_harmonics(sh_degree, dirs, g["sh"])
    return torch.clamp_min(col + 0.5, 0.0)


def _bin_tiles(means2d, radii, depths, width, height, tile):
    """(tile id, Gaussian id) pairs sorted by tile then depth; also per-tile offsets and counts."""
    tw, th = math.ceil(width / tile), math.ceil(height / tile)
    vis = torch.nonzero((radii[:, 0] > 0) & (radii[:, 1] > 0)).squeeze(1)
    m = means2d.detach()[vis] / tile
    r = radii[vis].float() / tile
    x0 = torch.floor(m[:, 0] - r[:, 0]).clamp(0, tw).long()
    x1 = torch.ceil(m[:, 0] + r[:, 0]).clamp(0, tw).long()
    y0 = torch.floor(m[:, 1] - r[:, 1]).clamp(0, th).long()
    y1 = torch.ceil(m[:, 1] + r[:, 1]).clamp(0, th).long()
    nx, ny = x1 - x0, y1 - y0
    per = nx * ny
    # depth order first (stable), so the stable sort by tile below keeps depth order inside each tile
    order = torch.argsort(depths.detach()[vis], stable=True)
    vis, x0, y0, nx, per = vis[order], x0[order], y0[order], nx[order], per[order]
    total = int(per.sum())
    owner = torch.repeat_interleave(torch.arange(len(vis), device=vis.device), per)
    start = torch.cumsum(per, 0) - per
    local = torch.arange(total, device=vis.device) - start[owner]
    nxo = nx[owner].clamp(min=1)
    tx = x0[owner] + local % nxo
    ty = y0[owner] + local // nxo
    tile_id = ty * tw + tx
    srt = torch.argsort(tile_id, stable=True)
    tile_id, gid = tile_id[srt], vis[owner[srt]]
    counts = torch.bincount(tile_id, minlength=tw * th)
    offsets = torch.cumsum(counts, 0) - counts
    return gid, counts, offsets, tw, th


def _rasterize_tiles(
    means2d, conics, opac, colors, gid, counts, offsets, tw, th, width, height, tile, *, accumulate, chunk=64,
    budget=1 << 22,
):  # fmt: skip
    """Composite the binned Gaussians; returns image [H,W,C], transmittance [H,W] and optional stats."""
    dev, C = colors.device, colors.shape[-1]
    n = means2d.shape[0]
    P = tile * tile
    ar = torch.arange(tile, device=dev, dtype=torch.float32)
    py_l, px_l = torch.meshgrid(ar, ar, indexing="ij")
    px_l, py_l = px_l.reshape(-1), py_l.reshape(-1)
    out_tiles = torch.zeros(tw * th, P, C, device=dev, dtype=colors.dtype)
    T_tiles = torch.ones(tw * th, P, device=dev, dtype=colors.dtype)
    wsum = torch.zeros(n, device=dev) if accumulate else None
    hits = torch.zeros(n, device=dev) if accumulate else None
    tiles_all = torch.nonzero(counts > 0).squeeze(1)
    fast = not (torch.is_grad_enabled() and any(t.requires_grad for t in (means2d, conics, opac, colors)))
    per_group = max(1, budget // (P * chunk))
    out_parts, T_parts, tile_parts = [], [], []
    for gstart in range(0, len(tiles_all), per_group):
        tiles = tiles_all[gstart : gstart + per_group]
        A = len(tiles)
        tx, ty = (tiles % tw).float(), (tiles // tw).float()
        px = tx[:, None] * tile + px_l[None]  # [A, P]
        py = ty[:, None] * tile + py_l[None]
        inside = (px < width) & (py < height)
        px, py = px + 0.5, py + 0.5
        acc = torch.zeros(A, P, C, device=dev, dtype=colors.dtype)
        T = torch.ones(A, P, device=dev, dtype=colors.dtype)
        done = ~inside
        cnt, off = counts[tiles], offsets[tiles]
        active = torch.arange(A, device=dev)
        for c0 in range(0, int(cnt.max()), chunk):
            live = active[(cnt[active] > c0) & ~done[active].all(dim=1)]
            if len(live) == 0:
                break
            k = torch.arange(chunk, device=dev)
            idx = off[live, None] + c0 + k[None]  # [L, K]
            valid = (c0 + k[None]) < cnt[live, None]
            g = gid[torch.where(valid, idx, off[live, None])]  # [L, K]
            m = means2d[g]  # [L, K, 2]
            cn = conics[g]  # [L, K, 3]
            T0 = T[live][:, :, None]
            if fast:
                w, keep, T_cur = _chunk_weights_inplace(
                    m, cn, opac[g], px[live], py[live], valid, done[live], T0
                )
            else:
                w, keep, T_cur = _chunk_weights(m, cn, opac[g], px[live], py[live], valid, done[live], T0)
            acc_l = acc[live] + torch.bmm(w, colors[g])
            T_l = torch.minimum(T0[..., 0], torch.where(keep, T_cur, T0).amin(dim=-1))
            stopped = ~keep[..., -1]
            acc = acc.index_copy(0, live, acc_l)
            T = T.index_copy(0, live, T_l)
            done = done.index_copy(0, live, done[live] | stopped)
            if accumulate:
                with torch.no_grad():
                    wd = w.detach()
                    wsum.index_add_(0, g.reshape(-1), wd.sum(dim=1).reshape(-1))
                    hits.index_add_(0, g.reshape(-1), (wd > 0).sum(dim=1).reshape(-1).float())
        out_parts.append(acc)
        T_parts.append(T)
        tile_parts.append(tiles)
    if tile_parts:
        tiles_cat = torch.cat(tile_parts)
        out_tiles = out_tiles.index_copy(0, tiles_cat, torch.cat(out_parts))
        T_tiles = T_tiles.index_copy(0, tiles_cat, torch.cat(T_parts))
    img = out_tiles.reshape(th, tw, tile, tile, C).permute(0, 2, 1, 3, 4).reshape(th * tile, tw * tile, C)
    Tm = T_tiles.reshape(th, tw, tile, tile).permute(0, 2, 1, 3).reshape(th * tile, tw * tile)
    return img[:height, :width], Tm[:height, :width], wsum, hits


def _chunk_weights(m, cn, op, px, py, valid, done, T0):
    """Blending weights of K depth-ordered Gaussians over the P pixels of L tiles (differentiable).

    m [L,K,2] means, cn [L,K,3] conics, op [L,K] opacities, px/py [L,P] pixel centres, valid [L,K], done [L,P],
    T0 [L,P,1] transmittance before the chunk. Returns w [L,P,K], keep [L,P,K], T_cur [L,P,K].
    """
    dx = m[:, None, :, 0] - px[:, :, None]  # [L, P, K]
    dy = m[:, None, :, 1] - py[:, :, None]
    ca, cb, cc = (cn[:, None, :, i] for i in range(3))
    sigma = dx * (0.5 * ca * dx + cb * dy) + 0.5 * cc * dy * dy
    alpha = torch.clamp_max(op[:, None, :] * torch.exp(-sigma), 0.999)
    use = (sigma >= 0) & (alpha >= ALPHA_MIN) & (valid[:, None, :] & ~done[:, :, None])
    alpha = torch.where(use, alpha, torch.zeros_like(alpha))
    T_cur = T0 * torch.cumprod(1.0 - alpha, dim=-1)  # transmittance after each Gaussian [L, P, K]
    # T_cur only falls, so "T_cur > T_MIN" is a prefix: exactly the Gaussians gsplat composites
    keep = T_cur > T_MIN
    T_prev = torch.cat([T0, T_cur[..., :-1]], dim=-1)
    w = torch.where(keep, alpha * T_prev, torch.zeros_like(alpha))
    return w, keep, T_cur


@torch.no_grad()
def _chunk_weights_inplace(m, cn, op, px, py, valid, done, T0):
    """The same arithmetic as :func:`_chunk_weights` with in-place operations on a few buffers (no autograd):
    on the CPU, allocating a fresh [L, P, K] tensor per operation costs as much as the operation."""
    dx = m[:, None, :, 0] - px[:, :, None]
    dy = m[:, None, :, 1] - py[:, :, None]
    ca, cb, cc = (cn[:, None, :, i] for i in range(3))
    sig = dy * cb
    sig.addcmul_(0.5 * ca, dx).mul_(dx)  # dx (0.5 a dx + b dy)
    dy.mul_(dy).mul_(0.5 * cc)
    sig.add_(dy)
    use = sig >= 0
    alpha = sig.neg_().exp_().mul_(op[:, None, :]).clamp_max_(0.999)
    use &= alpha >= ALPHA_MIN
    use &= valid[:, None, :] & ~done[:, :, None]
    alpha.mul_(use)
    one_m = dx.copy_(alpha).neg_().add_(1.0)
    T_cur = torch.cumprod(one_m, dim=-1).mul_(T0)
    keep = T_cur > T_MIN
    T_prev = dx  # reuse the buffer
    T_prev[..., 0:1] = T0
    T_prev[..., 1:] = T_cur[..., :-1]
    w = alpha.mul_(T_prev).mul_(keep)
    return w, keep, T_cur


def _render_torch(g, cam, sh_degree, background, accumulate, tile, device):
    viewmat, K = _camera_tensors(cam, device)
    means2d, conics, depths, radii, opac = project(g, viewmat, K, cam.width, cam.height)
    colors = _sh_colors(g, viewmat, sh_degree)
    gid, counts, offsets, tw, th = _bin_tiles(means2d, radii, depths, cam.width, cam.height, tile)
    img, T, wsum, hits = _rasterize_tiles(
        means2d, conics, opac, colors, gid, counts, offsets, tw, th, cam.width, cam.height, tile,
        accumulate=accumulate,
    )  # fmt: skip
    if background is not None:
        img = img + T[..., None] * background
    return img, 1.0 - T, wsum, hits, {"means2d": means2d, "radii": radii}


def _render_gsplat(g, cam, sh_degree, background, accumulate, device, absgrad=False):
    from gsplat import rasterization

    viewmat, K = _camera_tensors(cam, device)
    bg = None if background is None else background[None]
    colors, alphas, meta = rasterization(
        g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], viewmat[None], K[None],
        cam.width, cam.height, sh_degree=sh_degree, backgrounds=bg, packed=False, absgrad=absgrad,
    )  # fmt: skip
    wsum = None
    if accumulate:
        wsum = blending_weights_gsplat(g, cam, device)
    return colors[0], alphas[0, ..., 0], wsum, None, meta


def blending_weights_gsplat(g: dict[str, torch.Tensor], cam: Camera, device) -> torch.Tensor:
    """Sum over pixels of each Gaussian's blending weight alpha * T in one forward + backward pass.

    Renders a 1-channel image with colour v_j = 1 for every Gaussian; d(sum of pixels)/d v_j is exactly
    sum over pixels of alpha_j T_j, which gsplat's backward kernel computes.
    """
    from gsplat import rasterization

    viewmat, K = _camera_tensors(cam, device)
    v = torch.ones(g["means"].shape[0], 1, device=device, requires_grad=True)
    with torch.enable_grad():
        out, _, _ = rasterization(
            g["means"].detach(), g["quats"].detach(), g["scales"].detach(), g["opacities"].detach(), v,
            viewmat[None], K[None], cam.width, cam.height, packed=False,
        )  # fmt: skip
        out.sum().backward()
    return v.grad[:, 0]


def render(
    scene: GaussianScene | dict[str, torch.Tensor],
    camera: Camera,
    *,
    backend: str = "auto",
    sh_degree: int | None = None,
    background: tuple[float, float, float] | torch.Tensor | None = (0.0, 0.0, 0.0),
    accumulate: bool = False,
    tile_size: int = 16,
) -> RenderOutput:
    """Render ``scene`` from ``camera``.

    Parameters
    ----------
    scene : a :class:`GaussianScene` or a dict of activated tensors (see :func:`to_tensors`)
    backend : "auto" (gsplat on CUDA when available, else torch on the CPU), "gsplat", "torch" (torch tiles on
        the scene's device) or "cpu"
    sh_degree : SH degree to evaluate (default: all the scene has)
    accumulate : also return per-Gaussian blending-weight sums and hit counts (torch backend; with gsplat the
        weight sum only, through one extra backward pass)
    tile_size : tile edge of the torch renderer (the image does not depend on it; see the module doc)
    """
    if backend not in ("auto", "gsplat", "torch", "cpu"):
        raise ValueError(f"unknown backend {backend!r}")
    use_gsplat = backend == "gsplat" or (backend == "auto" and gsplat_available())
    if backend == "gsplat" and not gsplat_available():
        raise ValueError("the gsplat backend needs a CUDA GPU and gsplat")
    if isinstance(scene, dict):
        device = scene["means"].device
        if backend == "cpu":
            scene = {k: v.cpu() for k, v in scene.items()}
            device = torch.device("cpu")
        g = scene
    else:
        device = torch.device("cuda" if use_gsplat else "cpu")
        g = to_tensors(scene, device)
    if use_gsplat and device.type != "cuda":
        device = torch.device("cuda")
        g = {k: v.to(device) for k, v in g.items()}
    deg = int(round(math.sqrt(g["sh"].shape[1]))) - 1 if sh_degree is None else min(sh_degree, 3)
    bg = None
    if background is not None:
        bg = torch.as_tensor(background, dtype=torch.float32, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    if use_gsplat:
        img, alpha, wsum, hits, info = _render_gsplat(g, camera, deg, bg, accumulate, device)
        name = "cuda (gsplat)"
    else:
        img, alpha, wsum, hits, info = _render_torch(g, camera, deg, bg, accumulate, tile_size, device)
        name = f"{device.type} (torch tiles)"
    if device.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1000.0
    return RenderOutput(img, alpha, name, ms, wsum, hits, info)


def image_uint8(out: RenderOutput | torch.Tensor) -> np.ndarray:
    img = out.image if isinstance(out, RenderOutput) else out
    return (img.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def _reference_render(
    g: dict[str, torch.Tensor], cam: Camera, sh_degree: int, tile: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slow per-pixel twin of the torch renderer for tests: float64, projection through gsplat's own
    ``_fully_fused_projection``, and gsplat's sequential compositing loop written out literally.

    Returns image [H, W, 3], transmittance [H, W] and the per-Gaussian blending-weight sums [N].
    """
    from gsplat.cuda._torch_impl import (
        _fully_fused_projection,
        _quat_scale_to_covar_preci,
        _spherical_harmonics,
    )

    g = {k: v.detach().double() for k, v in g.items()}
    vm = torch.as_tensor(np.asarray(cam.viewmat), dtype=torch.float64)
    K = torch.as_tensor(np.asarray(cam.K), dtype=torch.float64)
    covars, _ = _quat_scale_to_covar_preci(g["quats"], g["scales"], compute_preci=False)
    _, means2d, depths, conics, _ = _fully_fused_projection(
        g["means"], covars, vm[None], K[None], cam.width, cam.height, eps2d=EPS2D
    )
    means2d, depths, conics = means2d[0], depths[0], conics[0]
    # gsplat's torch twin returns the full conic [a, b, c] with b the off-diagonal: the same layout as ours
    cov2d_inv_det = conics
    opac = g["opacities"]
    campos = torch.linalg.inv(vm)[:3, 3]
    colors = torch.clamp_min(_spherical_harmonics(sh_degree, g["means"] - campos, g["sh"]) + 0.5, 0.0)
    n = len(opac)
    # bounding boxes as gsplat's CUDA kernel computes them
    a, c = conics[:, 2], conics[:, 0]  # inverse of the conic back to covariance diagonals:
    det_c = conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2
    var_x, var_y = a / det_c, c / det_c
    boxes = []
    for j in range(n):
        o = float(opac[j])
        if o < ALPHA_MIN or not (NEAR < float(depths[j]) < FAR):
            boxes.append(None)
            continue
        ext = min(3.33, math.sqrt(2.0 * math.log(o / ALPHA_MIN)))
        rx, ry = math.ceil(ext * math.sqrt(float(var_x[j]))), math.ceil(ext * math.sqrt(float(var_y[j])))
        mx, my = float(means2d[j, 0]), float(means2d[j, 1])
        if mx + rx <= 0 or mx - rx >= cam.width or my + ry <= 0 or my - ry >= cam.height:
            boxes.append(None)
            continue
        tw, th = math.ceil(cam.width / tile), math.ceil(cam.height / tile)
        x0 = min(max(0, math.floor((mx - rx) / tile)), tw)
        x1 = min(max(0, math.ceil((mx + rx) / tile)), tw)
        y0 = min(max(0, math.floor((my - ry) / tile)), th)
        y1 = min(max(0, math.ceil((my + ry) / tile)), th)
        boxes.append((x0, x1, y0, y1))
    order = sorted(range(n), key=lambda j: float(depths[j]))
    img = torch.zeros(cam.height, cam.width, 3, dtype=torch.float64)
    Tm = torch.ones(cam.height, cam.width, dtype=torch.float64)
    wsum = torch.zeros(n, dtype=torch.float64)
    for y in range(cam.height):
        for x in range(cam.width):
            tx, ty = x // tile, y // tile
            T = 1.0
            for j in order:
                b = boxes[j]
                if b is None or not (b[0] <= tx < b[1] and b[2] <= ty < b[3]):
                    continue
                dx, dy = float(means2d[j, 0]) - (x + 0.5), float(means2d[j, 1]) - (y + 0.5)
                ca, cb, cc = (float(v) for v in cov2d_inv_det[j])
                sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                alpha = min(0.999, float(opac[j]) * math.exp(-sigma))
                if sigma < 0 or alpha < ALPHA_MIN:
                    continue
                next_T = T * (1 - alpha)
                if next_T <= T_MIN:
                    break
                img[y, x] += alpha * T * colors[j]
                wsum[j] += alpha * T
                T = next_T
            Tm[y, x] = T
    return img, Tm, wsum
