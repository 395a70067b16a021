"""The torch tile renderer against a slow per-pixel float64 reference (gsplat's own projection, the CUDA
kernel's compositing loop written out), plus cameras, SH degrees and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.splats.cameras import Camera, orbit_cameras, robust_bounds
from engine.splats.ply import GaussianScene
from engine.splats.render import _reference_render, render, to_tensors


def tiny(n=40, degree=2, seed=0):
    r = np.random.default_rng(seed)
    f = np.float32
    return GaussianScene((r.normal(size=(n, 3)) * 0.6).astype(f), r.normal(size=(n, 4)).astype(f),
                         (r.normal(size=(n, 3)) * 0.4 - 2.2).astype(f), (r.normal(size=n) + 1).astype(f),
                         (r.normal(size=(n, (degree + 1) ** 2, 3)) * 0.4).astype(f))  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1])
def test_torch_renderer_matches_per_pixel_reference(seed):
    s = tiny(seed=seed)
    cam = orbit_cameras(s.means, 3, width=37, height=29, distance=2.0)[seed]  # 3 x 2 tiles, ragged edges
    out = render(s, cam, backend="cpu", accumulate=True, background=None, tile_size=8)
    ref_img, ref_T, ref_w = _reference_render(to_tensors(s), cam, s.sh_degree)  # gsplat's 16 x 16 tiles
    # float32 against float64 over <= 40 blended Gaussians: 1e-5 covers the rounding; a wrong rule (box,
    # order, stop) shifts pixels by >= 1/255.
    torch.testing.assert_close(out.image.double(), ref_img, atol=1e-5, rtol=0)
    torch.testing.assert_close(1 - out.alpha.double(), ref_T, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.weight_sum.double(), ref_w, atol=1e-4, rtol=1e-5)
    assert out.image.abs().sum() > 1.0  # the view is not empty


def test_tile_size_does_not_change_the_image():
    s = tiny(n=80, seed=3)
    cam = orbit_cameras(s.means, 2, width=45, height=33, distance=1.6)[1]
    a = render(s, cam, tile_size=16, accumulate=True)
    b = render(s, cam, tile_size=8, accumulate=True)
    torch.testing.assert_close(a.image, b.image, atol=1e-6, rtol=0)
    torch.testing.assert_close(a.hit_count, b.hit_count)


def test_saturated_pixels_stop_exactly():
    # 60 opaque Gaussians stacked on the axis: the stop rule (T <= 1e-4, exclusive) decides which count
    n = 60
    f = np.float32
    s = GaussianScene(np.c_[np.zeros(n), np.zeros(n), np.linspace(0, 1, n)].astype(f),
                      np.tile([1, 0, 0, 0], (n, 1)).astype(f), np.full((n, 3), -1.0, f), np.full(n, 3.0, f),
                      np.random.default_rng(0).normal(size=(n, 1, 3)).astype(f))  # fmt: skip
    from engine.splats.cameras import intrinsics, look_at

    cam = Camera(
        look_at(np.array([0, 0, -3.0]), np.zeros(3), np.array([0, 1.0, 0])), intrinsics(20, 20, 40), 20, 20
    )
    out = render(s, cam, backend="cpu", accumulate=True, background=None)
    ref_img, ref_T, ref_w = _reference_render(to_tensors(s), cam, 0)
    torch.testing.assert_close(out.image.double(), ref_img, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.weight_sum.double(), ref_w, atol=1e-4, rtol=1e-5)
    h = out.hit_count  # same footprint, front to back: a Gaussian is reached only where all before it were
    assert (h[1:] <= h[:-1]).all() and h[-1] < h[0]


def test_background_and_alpha():
    s = tiny()
    cam = orbit_cameras(s.means, 1, width=32, height=32)[0]
    black = render(s, cam, background=(0, 0, 0))
    white = render(s, cam, background=(1, 1, 1))
    torch.testing.assert_close(white.image - black.image, (1 - black.alpha)[..., None].expand(-1, -1, 3))
    assert black.backend.startswith("cpu")


def test_sh_degree_zero_ignores_view_dependence():
    s = tiny(degree=3)
    cam = orbit_cameras(s.means, 1, width=24, height=24)[0]
    a = render(s, cam, sh_degree=0).image
    b = render(s.with_sh_degree(0), cam).image
    torch.testing.assert_close(a, b)


def test_renderer_is_differentiable():
    s = tiny()
    g = {k: v.clone().requires_grad_(True) for k, v in to_tensors(s).items()}
    cam = orbit_cameras(s.means, 1, width=24, height=24)[0]
    render(g, cam, backend="torch").image.sum().backward()
    assert g["sh"].grad.abs().sum() > 0 and g["means"].grad.abs().sum() > 0


def test_robust_bounds_ignore_floaters():
    r = np.random.default_rng(0)
    pts = r.normal(size=(1000, 3)).astype(np.float32)
    pts[:20] = 1e4  # floaters
    centre, radius = robust_bounds(pts)
    assert np.abs(centre).max() < 0.2 and radius < 3
    cams = orbit_cameras(pts, 4)
    for c in cams:  # every camera looks at the centre: it projects to the principal point
        p = c.viewmat[:3, :3] @ centre + c.viewmat[:3, 3]
        assert p[2] > 0
        np.testing.assert_allclose((c.K @ p)[:2] / p[2], [c.width / 2, c.height / 2], atol=1e-3)


def test_differentiable_path_matches_fast_path():
    s = tiny(seed=4)
    cam = orbit_cameras(s.means, 2, width=40, height=24, distance=2.0)[0]
    fast = render(s, cam, accumulate=True)
    g = {k: v.clone().requires_grad_(True) for k, v in to_tensors(s).items()}
    slow = render(g, cam, accumulate=True)
    torch.testing.assert_close(slow.image.detach(), fast.image, atol=2e-6, rtol=0)
    torch.testing.assert_close(slow.weight_sum, fast.weight_sum, atol=1e-5, rtol=1e-5)
