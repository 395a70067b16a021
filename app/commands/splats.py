"""`redex splats`: prune a 3D Gaussian scene with a registered method and report what it cost.

Example::

    redex splats --input assets/splats/scene.ply --method lightgaussian --keep 0.34 --out /tmp/pruned.ply --json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.registry import InputError

NAME = "splats"
HELP = "prune a 3D Gaussian splat scene (.ply / .splat) and measure count, bytes, PSNR, SSIM, render time"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default=None, help="scene .ply or .splat (default: the shipped demo scene)")
    p.add_argument("--method", default="lightgaussian",
                   help="opacity, random, lightgaussian, lightgaussian-official, omg, voxel-merge")  # fmt: skip
    p.add_argument("--keep", type=float, default=None, help="fraction of Gaussians kept (OMG: replaces tau)")
    p.add_argument("--tau", type=float, default=None, help="OMG: share of score mass kept (default 0.96)")
    p.add_argument("--storage", default="fp32", help="fp32, fp16, 'SH degree 1', 'SH degree 0', 'SVQ 8-bit'")
    p.add_argument("--views", type=int, default=4, help="evaluation views")
    p.add_argument("--backend", default="auto", choices=["auto", "gsplat", "cpu"])
    p.add_argument("--out", default=None, help="write the pruned scene here (.ply or .splat)")


def run(args: argparse.Namespace) -> dict:
    from engine.registry import get
    from engine.splats.evaluate import evaluate, load_bundle
    from engine.splats.ply import write_ply, write_splat

    method = get(args.method)
    if method.family != "splats":
        raise InputError(f"{args.method!r} is not a 3D Gaussian pruning method")
    params = {}
    names = {p.name for p in method.params}
    if args.keep is not None:
        if "keep" not in names:
            raise InputError(f"method {args.method!r} takes no --keep")
        params["keep"] = args.keep
    if args.tau is not None:
        if "tau" not in names:
            raise InputError(f"method {args.method!r} takes no --tau")
        params["tau"] = args.tau
    if args.input is not None and not Path(args.input).is_file():
        raise FileNotFoundError(f"no such file: {args.input}")
    bundle = load_bundle(args.input, eval_views=max(1, args.views))
    rep = evaluate(bundle, args.method, params, storage=args.storage, backend=args.backend)
    out = {**rep.metrics(), "method": args.method, "params": rep.params, "storage": rep.storage,
           "psnr_vs_unpruned": rep.psnr_vs_full, "ssim_vs_unpruned": rep.ssim_vs_full,
           "psnr_before": rep.psnr_before, "render_ms_before": rep.render_ms_before, "scene": rep.scene_name,
           "timings": rep.provenance.timings}  # fmt: skip
    if args.out:
        path = Path(args.out)
        if path.suffix.lower() == ".splat":
            write_splat(rep.pruned, path)
        else:
            write_ply(rep.pruned, path)
        out["out"] = str(path)
    return out


def render(out: dict) -> str:
    def f(x, fmt):
        return "n/a" if x is None else format(x, fmt)

    return (
        f"{out['method']} on {out['scene']}: {out['count_before']:,} -> {out['count_after']:,} Gaussians, "
        f"{out['bytes_before'] / 1e6:.2f} -> {out['bytes_after'] / 1e6:.2f} MB ({out['storage']})\n"
        f"PSNR {f(out['psnr'], '.2f')} dB, SSIM {f(out['ssim'], '.4f')} (vs {out['reference']}); "
        f"render {out['render_ms']:.0f} ms/view on {out['backend']}"
        + (f"\nwrote {out['out']}" if out.get("out") else "")
    )
