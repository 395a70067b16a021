"""The procedural demo scene and its ground-truth renderer (an analytic ray tracer in torch).

The scene, z up, lit by one directional light with hard shadows and a Blinn-Phong highlight (so appearance
depends on the view, which is what the higher SH bands of 3DGS fit):

- a ground disk (radius 3) with a two-scale checker and thin grout lines (fine detail);
- a large "beach ball" sphere with longitude stripes and a latitude band;
- a small sphere with a dense checker (high frequency);
- a box whose faces carry a brick pattern;
- a cylinder (a "pillar") with vertical fluting stripes;
- a background dome (radius 8) with a sky gradient and soft cloud bands, so the background is geometry that
  3DGS can fit, as in real captures.

:func:`trace` renders any pinhole :class:`~engine.splats.cameras.Camera` as [H, W, 3] in [0, 1] and can also
return the first-hit points and colours, which :mod:`engine.splats.train` samples to initialise Gaussians (the
role SfM points play for real scenes).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.splats.cameras import Camera, intrinsics, look_at

__all__ = ["trace", "demo_cameras", "SCENE_CENTRE"]

SCENE_CENTRE = np.array([0.0, 0.0, 0.45], np.float32)
LIGHT = torch.tensor([0.45, -0.35, 0.82])
LIGHT = LIGHT / LIGHT.norm()
_SPHERES = [((0.0, 0.0, 0.55), 0.55, 1), ((1.05, 0.55, 0.28), 0.28, 2)]  # centre, radius, material
_BOX = ((-1.15, 0.45, 0.0), (-0.45, 1.15, 0.7), 3)  # min, max, material
_CYL = ((0.55, -1.0), 0.18, 1.1, 4)  # (x, y), radius, height, material
_DOME_R = 8.0
_GROUND_R = 3.0


def _ray_dirs(cam: Camera, device) -> tuple[torch.Tensor, torch.Tensor]:
    H, W = cam.height, cam.width
    K = torch.as_tensor(cam.K, dtype=torch.float32, device=device)
    vm = torch.as_tensor(cam.viewmat, dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing="ij")
    x = (xs.float() + 0.5 - K[0, 2]) / K[0, 0]
    y = (ys.float() + 0.5 - K[1, 2]) / K[1, 1]
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1).reshape(-1, 3)
    R = vm[:3, :3]
    d = d_cam @ R  # camera -> world (R^T d)
    d = d / d.norm(dim=-1, keepdim=True)
    o = (-R.T @ vm[:3, 3]).expand_as(d)
    return o, d


def _hit_sphere(o, d, c, r):
    c = torch.as_tensor(c, device=o.device)
    oc = o - c
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - r * r)
    sq = torch.sqrt(disc.clamp(min=0))
    t = -b - sq
    t = torch.where(t > 1e-4, t, -b + sq)
    return torch.where((disc > 0) & (t > 1e-4), t, torch.full_like(t, math.inf))


def _hit_box(o, d, lo, hi):
    lo = torch.as_tensor(lo, device=o.device)
    hi = torch.as_tensor(hi, device=o.device)
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (lo - o) * inv, (hi - o) * inv
    tmin = torch.minimum(t0, t1).amax(-1)
    tmax = torch.maximum(t0, t1).amin(-1)
    t = torch.where(tmin > 1e-4, tmin, tmax)
    return torch.where((tmax >= tmin) & (t > 1e-4), t, torch.full_like(t, math.inf))


def _hit_cyl(o, d, xy, r, h):
    cx, cy = xy
    ox, oy = o[:, 0] - cx, o[:, 1] - cy
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = ox * d[:, 0] + oy * d[:, 1]
    c = ox * ox + oy * oy - r * r
    disc = b * b - a * c
    sq = torch.sqrt(disc.clamp(min=0))
    a_s = a.clamp(min=1e-9)
    t = (-b - sq) / a_s
    z = o[:, 2] + t * d[:, 2]
    ok = (disc > 0) & (t > 1e-4) & (z >= 0) & (z <= h)
    t_side = torch.where(ok, t, torch.full_like(t, math.inf))
    # top cap
    tc = (h - o[:, 2]) / torch.where(d[:, 2].abs() < 1e-9, torch.full_like(a, 1e-9), d[:, 2])
    px, py = ox + tc * d[:, 0], oy + tc * d[:, 1]
    cap = (tc > 1e-4) & (px * px + py * py <= r * r)
    t_cap = torch.where(cap, tc, torch.full_like(tc, math.inf))
    return torch.minimum(t_side, t_cap)


def _hit_ground(o, d):
    t = -o[:, 2] / torch.where(d[:, 2].abs() < 1e-9, torch.full_like(d[:, 2], -1e-9), d[:, 2])
    p = o + t[:, None] * d
    ok = (t > 1e-4) & (p[:, 0] ** 2 + p[:, 1] ** 2 <= _GROUND_R**2)
    return torch.where(ok, t, torch.full_like(t, math.inf))


def _hit_dome(o, d):
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - _DOME_R**2)
    return -b + torch.sqrt(disc.clamp(min=0))


def _intersect(o, d, *, with_dome=True):
    ts = [_hit_ground(o, d)]
    ts += [_hit_sphere(o, d, c, r) for c, r, _ in _SPHERES]
    ts.append(_hit_box(o, d, _BOX[0], _BOX[1]))
    ts.append(_hit_cyl(o, d, *_CYL[:3]))
    mats = torch.tensor([0, _SPHERES[0][2], _SPHERES[1][2], _BOX[2], _CYL[3]], device=o.device)
    if with_dome:
        ts.append(_hit_dome(o, d))
        mats = torch.cat([mats, torch.tensor([5], device=o.device)])
    T = torch.stack(ts, -1)
    t, idx = T.min(-1)
    return t, mats[idx]


def _normal(p, mat):
    n = torch.zeros_like(p)
    n[:, 2] = 1.0  # ground
    for c, r, m in _SPHERES:
        sel = mat == m
        n[sel] = (p[sel] - torch.as_tensor(c, device=p.device)) / r
    sel = mat == _BOX[2]
    if sel.any():
        lo = torch.as_tensor(_BOX[0], device=p.device)
        hi = torch.as_tensor(_BOX[1], device=p.device)
        q = p[sel]
        dist = torch.cat([(q - lo).abs(), (q - hi).abs()], -1)
        face = dist.argmin(-1)
        nb = torch.zeros_like(q)
        axis = face % 3
        sign = torch.where(face < 3, -1.0, 1.0)
        nb[torch.arange(len(q)), axis] = sign
        n[sel] = nb
    sel = mat == _CYL[3]
    if sel.any():
        q = p[sel]
        (cx, cy), r, h = _CYL[0], _CYL[1], _CYL[2]
        side = torch.stack([(q[:, 0] - cx) / r, (q[:, 1] - cy) / r, torch.zeros_like(q[:, 0])], -1)
        top = torch.zeros_like(q)
        top[:, 2] = 1.0
        n[sel] = torch.where((q[:, 2] > h - 1e-3)[:, None], top, side)
    sel = mat == 5
    n[sel] = -p[sel] / _DOME_R
    return n


def _fr(x):
    """Fractional part in [0, 1) also for negative x (torch.frac keeps the sign)."""
    return x - torch.floor(x)


def _albedo(p, mat):
    col = torch.zeros_like(p)
    x, y, z = p.unbind(-1)
    # ground: two-scale checker with grout lines
    sel = mat == 0
    if sel.any():
        u, v = x[sel], y[sel]
        big = ((torch.floor(u * 2) + torch.floor(v * 2)) % 2).float()
        small = ((torch.floor(u * 8) + torch.floor(v * 8)) % 2).float()
        grout = ((_fr(u * 4) < 0.04) | (_fr(v * 4) < 0.04)).float()
        base = torch.stack([0.72 - 0.3 * big, 0.62 - 0.22 * big, 0.45 - 0.1 * big], -1)
        base = base * (0.9 + 0.1 * small[:, None])
        col[sel] = base * (1 - grout[:, None]) + 0.15 * grout[:, None]
    c0, r0, m0 = _SPHERES[0]
    sel = mat == m0
    if sel.any():
        q = p[sel] - torch.as_tensor(c0, device=p.device)
        lon = torch.atan2(q[:, 1], q[:, 0])
        lat = torch.asin((q[:, 2] / r0).clamp(-1, 1))
        stripe = torch.floor((lon + math.pi) / (2 * math.pi) * 8).long() % 4
        pal = torch.tensor([[0.85, 0.15, 0.1], [0.95, 0.85, 0.2], [0.1, 0.35, 0.85], [0.95, 0.95, 0.95]],
                           device=p.device)  # fmt: skip
        c = pal[stripe]
        band = (lat.abs() < 0.12).float()[:, None]
        col[sel] = c * (1 - band) + band * torch.tensor([0.1, 0.6, 0.3], device=p.device)
    c1, r1, m1 = _SPHERES[1]
    sel = mat == m1
    if sel.any():
        q = p[sel]
        chk = (
            (torch.floor(q[:, 0] * 24) + torch.floor(q[:, 1] * 24) + torch.floor(q[:, 2] * 24)) % 2
        ).float()
        col[sel] = torch.stack([0.15 + 0.75 * chk, 0.2 + 0.2 * chk, 0.55 - 0.35 * chk], -1)
    sel = mat == _BOX[2]
    if sel.any():
        q = p[sel]
        h = q[:, 2]
        row = torch.floor(h * 12)
        s = q[:, 0] + q[:, 1] + 0.5 * (row % 2) / 6
        mortar = ((_fr(h * 12) < 0.1) | (_fr(s * 6) < 0.06)).float()[:, None]
        brick = (
            torch.tensor([0.62, 0.25, 0.18], device=p.device) * (0.85 + 0.15 * torch.sin(row * 1.7))[:, None]
        )
        col[sel] = brick * (1 - mortar) + 0.8 * mortar
    sel = mat == _CYL[3]
    if sel.any():
        q = p[sel]
        (cx, cy) = _CYL[0]
        ang = torch.atan2(q[:, 1] - cy, q[:, 0] - cx)
        flute = 0.5 + 0.5 * torch.cos(ang * 12)
        col[sel] = (
            torch.stack([0.3 + 0.5 * flute, 0.55 + 0.3 * flute, 0.6 + 0.1 * flute], -1)
            * (0.8 + 0.2 * (q[:, 2] / _CYL[2]))[:, None]
        )
    sel = mat == 5
    if sel.any():
        q = p[sel] / _DOME_R
        elev = q[:, 2].clamp(-1, 1)
        az = torch.atan2(q[:, 1], q[:, 0])
        sky = torch.stack([0.55 + 0.3 * (1 - elev), 0.7 + 0.2 * (1 - elev), 0.95 * torch.ones_like(elev)], -1)
        cloud = (0.5 + 0.5 * torch.sin(az * 5 + 3 * elev)) * (0.5 + 0.5 * torch.sin(az * 11 - 7 * elev))
        cloud = (cloud * (elev > 0.02).float()).clamp(0, 1)[:, None] ** 2
        ground = torch.tensor([0.35, 0.42, 0.3], device=p.device).expand_as(sky)
        sky = torch.where((elev > 0)[:, None], sky, ground)
        col[sel] = sky * (1 - 0.6 * cloud) + 0.6 * cloud
    return col


@torch.no_grad()
def trace(cam: Camera, *, device: str | torch.device = "cpu", return_points: bool = False):
    """Ground-truth image [H, W, 3] of the demo scene from ``cam`` (and hit points + albedo if asked)."""
    o, d = _ray_dirs(cam, device)
    t, mat = _intersect(o, d)
    p = o + t[:, None] * d
    n = _normal(p, mat)
    n = torch.where(((n * d).sum(-1) > 0)[:, None], -n, n)
    alb = _albedo(p, mat)
    L = LIGHT.to(device)
    lam = (n @ L).clamp(min=0)
    so, _ = _intersect(p + 1e-3 * n, L.expand_as(p), with_dome=False)
    lit = (so == math.inf).float()
    half = L - d
    half = half / half.norm(dim=-1, keepdim=True)
    glossy = ((mat == 1) | (mat == 2) | (mat == 4)).float()
    spec = glossy * (n * half).sum(-1).clamp(min=0) ** 60 * 0.6 * lit
    shade = 0.28 + 0.72 * lam * lit
    img = alb * shade[:, None] + spec[:, None]
    img = torch.where((mat == 5)[:, None], alb, img).clamp(0, 1)
    out = img.reshape(cam.height, cam.width, 3)
    if return_points:
        return out, p, alb, mat
    return out


def demo_cameras(
    n_train: int = 120, n_test: int = 12, *, width: int = 256, height: int = 256, fov_x_deg: float = 55.0
) -> tuple[list[Camera], list[Camera]]:
    """Training cameras on a spiral (elevation 6-50 degrees, distance 3.1-3.9) and held-out test cameras at
    azimuths and elevations between them, all looking at the scene centre."""
    K = intrinsics(width, height, fov_x_deg)
    golden = math.pi * (3 - math.sqrt(5))

    def cam(i, az, el, dist, tag):
        eye = SCENE_CENTRE + dist * np.array(
            [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
        )
        return Camera(look_at(eye, SCENE_CENTRE), K, width, height, f"{tag}_{i:03d}")

    train = []
    for i in range(n_train):
        f = (i + 0.5) / n_train
        el = math.radians(6 + 44 * ((i * 0.618034) % 1.0))
        train.append(cam(i, i * golden, el, 3.1 + 0.8 * f, "train"))
    test = []
    for i in range(n_test):
        az = 2 * math.pi * (i + 0.37) / n_test
        el = math.radians(18 + 24 * ((i % 3) / 2))
        test.append(cam(i, az, el, 3.5, "test"))
    return train, test
