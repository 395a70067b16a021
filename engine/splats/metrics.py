"""Image quality: PSNR and SSIM (Wang et al., 2004), as 3DGS papers report them.

SSIM uses an 11 x 11 Gaussian window with sigma 1.5 and C1 = 0.01^2, C2 = 0.03^2 on images in [0, 1], valid
convolution ("same" padding only for the training loss, where it is differentiable), averaged over channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "as_tensor"]


def as_tensor(img) -> torch.Tensor:
    """[H, W, 3] float in [0, 1] from a tensor, a float array or a uint8 array."""
    if isinstance(img, torch.Tensor):
        t = img.detach().float().cpu()
    else:
        arr = np.asarray(img)
        t = torch.from_numpy(arr.astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0))
    return t[..., :3].clamp(0, 1)


def psnr(a, b) -> float:
    mse = float(((as_tensor(a) - as_tensor(b)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, padding: str = "valid") -> torch.Tensor:
    """x, y: [B, C, H, W] in [0, 1]. Differentiable."""
    C = x.shape[1]
    w = _window(device=x.device).expand(C, 1, 11, 11)
    pad = 0 if padding == "valid" else 5

    def f(t):
        return F.conv2d(t, w, padding=pad, groups=C)

    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(a, b) -> float:
    x = as_tensor(a).permute(2, 0, 1)[None]
    y = as_tensor(b).permute(2, 0, 1)[None]
    return float(ssim_map(x, y).mean())
