"""Benchmarks of the 3D Gaussian family; results as JSON (never part of the test suite's pass/fail).

CPU (here): ``python -m bench.splats`` -> bench/results/splats.json
    torch tile renderer at 10k / 100k / 1M random Gaussians, 256 x 256; the method-vs-PSNR table on the
    shipped demo scene at the same kept fraction (importance over training views, CPU renderer).
GPU (device): ``python -m bench.splats --gpu --out DIR`` -> DIR/splats_gpu.json and the trained demo scene
    compiles gsplat, trains the demo scene, computes importance over all training views, the method table
    (with and without a short fine-tune), CPU-vs-gsplat parity on one camera, importance over 50 views of a
    1,000,000-Gaussian scene, and FPS at 1920 x 1080 before and after pruning to 34%.
``--tiny`` runs every GPU stage on the CPU with toy sizes (to debug the script without a GPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import tarfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _methods():
    """The registered splat methods, in registration order (a newly registered one is benchmarked too)."""
    from engine.registry import by_family

    return by_family("splats")


def random_scene(n: int, *, degree: int = 3, seed: int = 0, spread: float = 1.0):
    from engine.splats.ply import GaussianScene

    r = np.random.default_rng(seed)
    f = np.float32
    return GaussianScene(
        means=(r.normal(size=(n, 3)) * spread).astype(f),
        quats=r.normal(size=(n, 4)).astype(f),
        log_scales=(r.normal(size=(n, 3)) * 0.3 + np.log(0.02 * spread * (1e5 / n) ** (1 / 3))).astype(f),
        opacity_logits=r.normal(size=n).astype(f),
        sh=(r.normal(size=(n, (degree + 1) ** 2, 3)) * 0.3).astype(f),
    )


def upsample_scene(scene, n: int, seed: int = 0):
    """A denser scene of ``n`` Gaussians: samples of ``scene`` jittered within their own extent and shrunk so
    the total volume stays about the same."""
    from engine.splats.ply import GaussianScene

    r = np.random.default_rng(seed)
    idx = r.integers(0, len(scene), n)
    shrink = np.log((len(scene) / n) ** (1 / 3))
    s = np.exp(scene.log_scales[idx])
    jitter = (r.normal(size=(n, 3)) * s).astype(np.float32)
    return GaussianScene(scene.means[idx] + jitter, scene.quats[idx], scene.log_scales[idx] + np.float32(shrink),
                         scene.opacity_logits[idx], scene.sh[idx])  # fmt: skip


def method_table(scene, imp, test_cams, gts, keep: float, *, backend: str, finetune_fn=None) -> list[dict]:
    from engine.splats.metrics import psnr, ssim
    from engine.splats.prune import prune
    from engine.splats.render import render
    from engine.splats.storage import ply_size

    rows = []
    for m in (m.name for m in _methods()):
        params = {"keep": keep}
        r = prune(scene, m, importance=imp, **params)
        sc = r.scene
        outs = [render(sc, c, backend=backend).image.cpu() for c in test_cams]
        row = {"method": m, "keep": keep, "count": r.n_after, "bytes": ply_size(sc),
               "psnr": float(np.mean([psnr(o, g) for o, g in zip(outs, gts)])),
               "ssim": float(np.mean([ssim(o, g) for o, g in zip(outs, gts)]))}  # fmt: skip
        if finetune_fn is not None:
            t0 = time.perf_counter()
            ft = finetune_fn(sc)
            outs = [render(ft, c, backend=backend).image.cpu() for c in test_cams]
            row["psnr_finetuned"] = float(np.mean([psnr(o, g) for o, g in zip(outs, gts)]))
            row["finetune_s"] = time.perf_counter() - t0
        rows.append(row)
    for m in (m for m in _methods() if m.fact("mass_param")):  # OMG with its own tau rule (score mass)
        rule = m.fact("mass_param")
        r = prune(scene, m.name, importance=imp)  # the default: tau = 0.96, keep 0 (the rule decides)
        outs = [render(r.scene, c, backend=backend).image.cpu() for c in test_cams]
        rows.append({"method": f"{m.name} ({rule}={m.param(rule).default})", "keep": r.n_after / r.n_before,
                     "count": r.n_after, "bytes": ply_size(r.scene),
                     "psnr": float(np.mean([psnr(o, g) for o, g in zip(outs, gts)])),
                     "ssim": float(np.mean([ssim(o, g) for o, g in zip(outs, gts)]))})  # fmt: skip
    return rows


def fps(scene, cam, *, repeats: int = 100) -> float:
    from engine.splats.render import render, to_tensors

    g = to_tensors(scene, "cuda")
    for _ in range(10):
        render(g, cam, backend="gsplat")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        render(g, cam, backend="gsplat")
    torch.cuda.synchronize()
    return repeats / (time.perf_counter() - t0)


def run_gpu(out: Path, tiny: bool) -> dict:
    from engine.splats.cameras import orbit_cameras
    from engine.splats.importance import compute_importance
    from engine.splats.prune import prune
    from engine.splats.render import render
    from engine.splats.scene_gen import demo_cameras, trace
    from engine.splats.train import TrainConfig, finetune, train

    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"host": platform.node(), "torch": torch.__version__, "tiny": tiny, "stages": {}}
    gpu = torch.cuda.is_available() and not tiny
    backend = "gsplat" if gpu else "cpu"
    res["device"] = torch.cuda.get_device_name() if gpu else "cpu"

    def save():
        (out / "splats_gpu.json").write_text(json.dumps(res, indent=1))

    def stage(name):
        print(f"== {name}", flush=True)
        res["stages"][name] = time.perf_counter()

    def done(name):
        res["stages"][name] = time.perf_counter() - res["stages"][name]
        save()

    if gpu:
        stage("compile_gsplat")
        from gsplat import rasterization

        x = torch.zeros(1, 3, device="cuda")
        rasterization(x + torch.tensor([0, 0, 2.0], device="cuda"), torch.tensor([[1.0, 0, 0, 0]], device="cuda"),
                      torch.full((1, 3), 0.1, device="cuda"), torch.ones(1, device="cuda"),
                      torch.ones(1, 3, device="cuda"), torch.eye(4, device="cuda")[None],
                      torch.tensor([[[50.0, 0, 8], [0, 50, 8], [0, 0, 1]]], device="cuda"), 16, 16)  # fmt: skip
        torch.cuda.synchronize()
        done("compile_gsplat")

    stage("train")
    cfg = TrainConfig(iters=8000) if not tiny else TrainConfig(iters=30, n_train=6, n_test=2, width=32, height=32,
                                                     init_points=400, dome_points=100, quick=True)  # fmt: skip
    import tempfile

    scene_dir = Path(tempfile.mkdtemp(prefix="splats_scene_"))  # $OUT takes at most 8 files back
    rep = train(cfg, scene_dir)
    scene = rep.pop("scene")
    res["train"] = {k: v for k, v in rep.items() if k != "history"}
    (out / "train.json").write_text(json.dumps(rep, indent=1))
    (out / "scene.ply").write_bytes((scene_dir / "scene.ply").read_bytes())
    (out / "cameras.json").write_text((scene_dir / "cameras.json").read_text())
    with tarfile.open(out / "test_views.tar", "w") as tf:
        for p in sorted(scene_dir.glob("test_*.png")):
            tf.add(p, arcname=p.name)
    done("train")

    train_cams, test_cams = demo_cameras(cfg.n_train, cfg.n_test, width=cfg.width, height=cfg.height)
    dev = "cuda" if gpu else "cpu"
    gts = [trace(c, device=dev).cpu() for c in test_cams]
    gt_train = torch.stack([trace(c, device=dev) for c in train_cams])

    stage("importance_demo")
    imp = compute_importance(scene, train_cams, backend=backend, need_hits=True)
    np.savez_compressed(out / "importance.npz", weight=imp.weight.astype(np.float32),
                        hits=imp.hits.astype(np.float32), n_views=imp.n_views, width=imp.width,
                        height=imp.height, backend=imp.provenance.backend)  # fmt: skip
    res["importance_demo"] = {"views": len(train_cams), "seconds": imp.provenance.timings["importance"]}
    done("importance_demo")

    stage("method_table")
    ft_steps = 300 if gpu else 3

    def ft(sc):
        return finetune(sc, train_cams, gt_train, steps=ft_steps)

    res["finetune_steps"] = ft_steps
    res["method_table"] = method_table(scene, imp, test_cams, gts, 0.34, backend=backend, finetune_fn=ft)
    res["pareto"] = []
    for keep in (0.1, 0.2, 0.5, 0.7):
        res["pareto"] += method_table(scene, imp, test_cams, gts, keep, backend=backend)[: len(_methods())]
    done("method_table")

    stage("parity")
    cam = test_cams[0]
    a = render(scene, cam, backend="cpu")
    b = render(scene, cam, backend=backend)
    diff = (a.image - b.image.cpu()).abs()
    res["parity"] = {"camera": cam.name, "width": cam.width, "height": cam.height, "gaussians": len(scene),
                     "cpu_backend": a.backend, "other_backend": b.backend,
                     "mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max()),
                     "cpu_ms": a.ms, "other_ms": b.ms}  # fmt: skip
    if gpu:
        from engine.splats.render import to_tensors

        d = render(to_tensors(scene, "cuda"), cam, backend="torch")
        res["parity"]["torch_cuda_vs_gsplat_mean_abs_diff"] = float(
            (d.image.cpu() - b.image.cpu()).abs().mean()
        )
        res["parity"]["torch_cuda_ms"] = d.ms
    done("parity")

    stage("importance_1m")
    n_big = 1_000_000 if gpu else 5_000
    big = upsample_scene(scene, n_big)
    far = {"distance": 2.2, "percentile": 90.0}  # the camera placement the recorded GPU numbers used
    views = orbit_cameras(big.means, 50, width=1920 if gpu else 64, height=1080 if gpu else 36, **far)
    views_256 = orbit_cameras(big.means, 50, width=256 if gpu else 32, height=256 if gpu else 32, **far)
    for tag, vs in (("1080p", views), ("256", views_256)):
        compute_importance(big, vs[:2], backend=backend, need_hits=False)  # warm-up
        imp_big = compute_importance(big, vs, backend=backend, need_hits=False)
        res[f"importance_1m_{tag}"] = {"gaussians": n_big, "views": len(vs), "width": vs[0].width,
                                       "height": vs[0].height,
                                       "seconds": imp_big.provenance.timings["importance"]}  # fmt: skip
    done("importance_1m")

    if gpu:
        stage("fps")
        res["fps"] = []
        for name, sc, im in (("demo", scene, imp), ("1M", big, imp_big)):
            cam = orbit_cameras(sc.means, 1, width=1920, height=1080, distance=2.0, percentile=90.0)[0]
            pr = prune(sc, "lightgaussian", importance=im, keep=0.34).scene
            res["fps"].append({"scene": name, "gaussians_before": len(sc), "gaussians_after": len(pr),
                               "fps_before": fps(sc, cam), "fps_after": fps(pr, cam), "width": 1920,
                               "height": 1080})  # fmt: skip
        done("fps")
    save()
    return res


def run_cpu(out_json: Path, *, sizes=(10_000, 100_000, 1_000_000), render_only: bool = False) -> dict:
    import os

    from engine.splats.cameras import load_cameras, orbit_cameras
    from engine.splats.importance import compute_importance
    from engine.splats.ply import read_ply
    from engine.splats.render import render

    res: dict = {"host": platform.node(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if render_only and out_json.exists():
        res = {**json.loads(out_json.read_text()), **res}
    res["load_average_before"] = os.getloadavg()
    res["cpu_render_256"] = []
    for n in sizes:
        sc = random_scene(n)
        cam = orbit_cameras(sc.means, 1, width=256, height=256, distance=2.2, percentile=90.0)[0]
        render(sc, cam)
        times = [render(sc, cam).ms for _ in range(3 if n < 1_000_000 else 2)]  # min: the CPU is shared
        res["cpu_render_256"].append({"gaussians": n, "ms": min(times)})
        print(res["cpu_render_256"][-1], flush=True)
    res["load_average_after"] = os.getloadavg()
    demo = ROOT / "assets" / "splats" / "scene.ply"
    if demo.exists() and not render_only:
        from PIL import Image

        scene = read_ply(demo)
        cams = load_cameras(ROOT / "assets" / "splats" / "cameras.json")
        train_cams = [c for c in cams if c.name.startswith("train")]
        test_cams = [c for c in cams if c.name.startswith("test")]
        gts = [np.asarray(Image.open(ROOT / "assets" / "splats" / f"{c.name}.png")) for c in test_cams]
        views = [c.resized(128, 128) for c in train_cams[::4]]
        imp = compute_importance(scene, views, backend="cpu")
        res["importance_cpu"] = {
            "views": len(views),
            "width": 128,
            "seconds": imp.provenance.timings["importance"],
        }
        res["method_table_cpu"] = method_table(scene, imp, test_cams[:4], gts[:4], 0.34, backend="cpu")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(res, indent=1))
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument(
        "--render-only", action="store_true", help="CPU: only re-time the renderer (keeps the rest)"
    )
    a = p.parse_args(argv)
    if a.gpu or a.tiny:
        try:
            run_gpu(Path(a.out), a.tiny)
        except Exception:
            traceback.print_exc()
            raise
    else:
        sizes = tuple(int(s) for s in a.sizes.split(","))
        run_cpu(Path(a.out) / "splats.json", sizes=sizes, render_only=a.render_only)


if __name__ == "__main__":
    main()
