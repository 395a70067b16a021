"""Train the demo scene: 3DGS (Kerbl et al., 2023) fitted to ray-traced views of :mod:`engine.splats.scene_gen`.

The usual recipe, as gsplat's ``simple_trainer`` runs it: Gaussians initialised at surface points with colours
from the images (the part SfM plays for real captures) and scales from the mean distance to their 3 nearest
neighbours; Adam with the 3DGS learning rates (means decayed 100x over training); loss 0.8 L1 + 0.2 (1 - SSIM);
gsplat's :class:`~gsplat.DefaultStrategy` for densification (clone / split on view-space gradient, prune by
opacity and size, opacity reset every 3000 steps); one SH band more every 1000 steps up to degree 3.

Only deviation: a cap on the number of Gaussians (``--cap``) so the shipped PLY fits the asset budget.
Densification stops once the count passes 85% of the cap; if the last refine step still overshoots, the
lowest-opacity Gaussians beyond the cap are dropped before export (the card reports the count).

GPU: ``python -m engine.splats.train --out DIR``. CPU smoke test: ``--quick`` (tiny images, a few steps,
the torch renderer, no densification).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.splats.cameras import Camera, save_cameras
from engine.splats.metrics import psnr, ssim, ssim_map
from engine.splats.ply import GaussianScene, rgb_to_sh, write_ply
from engine.splats.render import gsplat_available, render
from engine.splats.scene_gen import demo_cameras, trace

__all__ = ["TrainConfig", "train", "finetune", "main"]


@dataclass(frozen=True)
class TrainConfig:
    iters: int = 10_000  # optimisation steps (one image each)
    n_train: int = 120  # training views
    n_test: int = 12  # held-out views
    width: int = 256
    height: int = 256
    sh_degree: int = 3  # final SH degree
    sh_up_every: int = 1000  # steps per additional SH band
    init_points: int = 16_000  # surface samples used as initial Gaussians
    dome_points: int = 8_000  # extra samples on the background dome (its far parts are seen by few views)
    cap: int = 60_000  # most Gaussians exported (asset budget)
    refine_start: int = 500
    refine_stop: int = 6_000
    refine_every: int = 100
    reset_every: int = 3000
    grow_grad2d: float = 0.0002  # gsplat's default
    ssim_lambda: float = 0.2
    seed: int = 0
    quick: bool = False  # CPU smoke test: torch renderer, no densification


def _knn_scale(points: torch.Tensor, k: int = 3, block: int = 4096) -> torch.Tensor:
    """Mean distance to the k nearest other points (blocked brute force)."""
    out = torch.empty(len(points), device=points.device)
    for s in range(0, len(points), block):
        d = torch.cdist(points[s : s + block], points)
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = math.inf
        out[s : s + block] = d.topk(k, largest=False).values.mean(-1)
    return out


def _init_params(
    cfg: TrainConfig, cams: list[Camera], images: torch.Tensor, device
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(cfg.seed)
    per_view = math.ceil(cfg.init_points / len(cams))
    pts, cols = [], []
    for i, cam in enumerate(cams):
        _, p, _, _ = trace(cam, device=device, return_points=True)
        idx = torch.randint(0, p.shape[0], (per_view,), generator=g).to(device)
        pts.append(p[idx])
        cols.append(images[i].reshape(-1, 3)[idx])
    pts = torch.cat(pts)[: cfg.init_points]
    cols = torch.cat(cols)[: cfg.init_points]
    if cfg.dome_points:
        # Background points, as SfM gives for real captures: uniform directions above -30 degrees on the dome.
        from engine.splats.scene_gen import _DOME_R, _albedo

        z = torch.rand(cfg.dome_points, generator=g) * 1.5 - 0.5
        phi = torch.rand(cfg.dome_points, generator=g) * 2 * math.pi
        r = torch.sqrt(1 - z * z)
        dome = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1) * (_DOME_R * 0.995)
        dome_col = _albedo(dome, torch.full((cfg.dome_points,), 5))
        pts = torch.cat([pts, dome.to(device)])
        cols = torch.cat([cols, dome_col.to(device)])
    pts = pts + 0.002 * torch.randn(pts.shape, generator=g).to(device)
    n = len(pts)
    scale = _knn_scale(pts).clamp(min=1e-4)
    k = (cfg.sh_degree + 1) ** 2
    return {
        "means": pts,
        "scales": torch.log(scale)[:, None].repeat(1, 3),
        "quats": torch.tensor([1.0, 0, 0, 0], device=device).repeat(n, 1),
        "opacities": torch.logit(torch.full((n,), 0.1, device=device)),
        "sh0": rgb_to_sh(cols)[:, None, :],
        "shN": torch.zeros(n, k - 1, 3, device=device),
    }


def _activated(params, degree_max: int) -> dict[str, torch.Tensor]:
    return {
        "means": params["means"],
        "quats": params["quats"],
        "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]),
        "sh": torch.cat([params["sh0"], params["shN"]], 1),
    }


def _to_scene(params) -> GaussianScene:
    def a(t):
        return t.detach().float().cpu().numpy()

    return GaussianScene(
        means=a(params["means"]),
        quats=a(params["quats"]),
        log_scales=a(params["scales"]),
        opacity_logits=a(params["opacities"]),
        sh=np.ascontiguousarray(np.concatenate([a(params["sh0"]), a(params["shN"])], 1)),
    )


def _from_scene(scene: GaussianScene, device) -> torch.nn.ParameterDict:
    def p(a):
        return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(device))

    return torch.nn.ParameterDict({
        "means": p(scene.means), "scales": p(scene.log_scales), "quats": p(scene.quats),
        "opacities": p(scene.opacity_logits), "sh0": p(scene.sh[:, :1]), "shN": p(scene.sh[:, 1:]),
    })  # fmt: skip


def finetune(
    scene: GaussianScene, cams: list[Camera], images: torch.Tensor, *, steps: int = 500, seed: int = 0
) -> GaussianScene:
    """A short fine-tune of every attribute after pruning (no densification), as LightGaussian does.

    Uses gsplat on a GPU, the torch renderer otherwise; learning rates are the 3DGS ones at the end of training.
    """
    use_gpu = gsplat_available()
    device = torch.device("cuda" if use_gpu else "cpu")
    params = _from_scene(scene, device)
    images = images.to(device)
    lrs = {
        "means": 1.6e-6,
        "scales": 5e-3,
        "quats": 1e-3,
        "opacities": 5e-2,
        "sh0": 2.5e-3,
        "shN": 2.5e-3 / 20,
    }
    opt = torch.optim.Adam([{"params": params[k], "lr": lr} for k, lr in lrs.items()], eps=1e-15)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        i = int(rng.integers(len(cams)))
        g = _activated(params, scene.sh_degree)
        img = render(g, cams[i], backend="gsplat" if use_gpu else "torch").image
        gt = images[i]
        s = ssim_map(img.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], padding="same").mean()
        loss = 0.8 * (img - gt).abs().mean() + 0.2 * (1 - s)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return _to_scene(params)


def train(cfg: TrainConfig, out_dir: str | Path | None = None, *, log=print) -> dict:
    """Train and (when ``out_dir`` is given) export scene.ply, cameras.json, test_*.png and train.json."""
    torch.manual_seed(cfg.seed)
    use_gpu = torch.cuda.is_available() and not cfg.quick
    device = torch.device("cuda" if use_gpu else "cpu")
    t_start = time.perf_counter()
    train_cams, test_cams = demo_cameras(cfg.n_train, cfg.n_test, width=cfg.width, height=cfg.height)
    gt_train = torch.stack([trace(c, device=device) for c in train_cams])
    gt_test = torch.stack([trace(c, device=device) for c in test_cams])
    raw = _init_params(cfg, train_cams, gt_train, device)
    params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.contiguous()) for k, v in raw.items()})
    centre = torch.as_tensor(np.mean([c.position for c in train_cams], 0), device=device)
    scene_scale = float(max(np.linalg.norm(c.position - centre.cpu().numpy()) for c in train_cams)) * 1.1
    lrs = {"means": 1.6e-4 * scene_scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2,
           "sh0": 2.5e-3, "shN": 2.5e-3 / 20}  # fmt: skip
    optimizers = {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15)
                  for k, lr in lrs.items()}  # fmt: skip
    sched = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=0.01 ** (1.0 / cfg.iters))
    strategy = state = None
    if use_gpu:
        from gsplat import DefaultStrategy

        strategy = DefaultStrategy(
            refine_start_iter=cfg.refine_start, refine_stop_iter=cfg.refine_stop, refine_every=cfg.refine_every,
            reset_every=cfg.reset_every, grow_grad2d=cfg.grow_grad2d, verbose=False,
        )  # fmt: skip
        strategy.check_sanity(params, optimizers)
        state = strategy.initialize_state(scene_scale=scene_scale)
    rng = np.random.default_rng(cfg.seed)
    order: list[int] = []
    history = []
    for step in range(cfg.iters):
        if not order:
            order = list(rng.permutation(len(train_cams)))
        i = order.pop()
        degree = min(step // cfg.sh_up_every, cfg.sh_degree)
        g = _activated(params, degree)
        if use_gpu:
            from gsplat import rasterization

            cam = train_cams[i]
            vm = torch.as_tensor(cam.viewmat, device=device)[None]
            K = torch.as_tensor(cam.K, device=device)[None]
            img, _, info = rasterization(g["means"], g["quats"], g["scales"], g["opacities"], g["sh"], vm, K,
                                         cam.width, cam.height, sh_degree=degree, packed=False)  # fmt: skip
            img = img[0]
            strategy.step_pre_backward(params, optimizers, state, step, info)
        else:
            img = render(g, train_cams[i], backend="torch", sh_degree=degree).image
        gt = gt_train[i]
        l1 = (img - gt).abs().mean()
        s = ssim_map(img.permute(2, 0, 1)[None], gt.permute(2, 0, 1)[None], padding="same").mean()
        loss = (1 - cfg.ssim_lambda) * l1 + cfg.ssim_lambda * (1 - s)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        sched.step()
        if use_gpu:
            strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
            n = len(params["means"])
            if n > 0.85 * cfg.cap and strategy.refine_stop_iter > step:
                strategy.refine_stop_iter = step  # stop densifying: the cap (asset budget) is near
                log(f"step {step}: {n} Gaussians, densification stopped (cap {cfg.cap})")
        if step % max(1, cfg.iters // 20) == 0 or step == cfg.iters - 1:
            history.append({"step": step, "loss": loss.item(), "n": len(params["means"])})
            log(f"step {step} loss {loss.item():.4f} n {len(params['means'])} "
                f"t {time.perf_counter() - t_start:.1f}s")  # fmt: skip
    train_s = time.perf_counter() - t_start
    scene = _to_scene(params)
    dropped = 0
    if len(scene) > cfg.cap:
        dropped = len(scene) - cfg.cap
        scene = scene.subset(np.sort(np.argsort(-scene.opacity_logits, kind="stable")[: cfg.cap]))
    scores = []
    renders = []
    with torch.no_grad():
        for c, gt in zip(test_cams, gt_test):
            out = render(scene, c, backend="auto")
            renders.append(out.image.cpu())
            scores.append((psnr(out.image, gt), ssim(out.image, gt)))
    report = {
        "config": asdict(cfg),
        "gaussians": len(scene),
        "dropped_over_cap": dropped,
        "test_psnr": float(np.mean([p for p, _ in scores])),
        "test_ssim": float(np.mean([s for _, s in scores])),
        "per_view": [{"camera": c.name, "psnr": p, "ssim": s} for c, (p, s) in zip(test_cams, scores)],
        "train_seconds": train_s,
        "device": torch.cuda.get_device_name() if use_gpu else "cpu",
        "history": history,
    }
    if out_dir is not None:
        from PIL import Image

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_ply(scene, out / "scene.ply")
        save_cameras(train_cams + test_cams, out / "cameras.json")
        for c, gt in zip(test_cams, gt_test):
            Image.fromarray((gt.cpu().numpy() * 255 + 0.5).astype(np.uint8)).save(out / f"{c.name}.png")
        (out / "train.json").write_text(json.dumps(report, indent=1))
    report["scene"] = scene
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the demo 3DGS scene (gsplat on a GPU).")
    p.add_argument("--out", default="assets/splats", help="output folder")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--cap", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="CPU smoke test: tiny images, few steps")
    args = p.parse_args(argv)
    cfg = TrainConfig()
    if args.quick:
        cfg = TrainConfig(iters=20, n_train=4, n_test=2, width=32, height=24, init_points=300, dome_points=100,
                          sh_up_every=5, quick=True)  # fmt: skip
    kw = {k: v for k, v in (("iters", args.iters), ("cap", args.cap)) if v is not None}
    if kw:
        cfg = TrainConfig(**{**asdict(cfg), **kw})
    rep = train(cfg, args.out)
    print(json.dumps({k: v for k, v in rep.items() if k not in ("scene", "history", "per_view")}, indent=1))


if __name__ == "__main__":
    main()
