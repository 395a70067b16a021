"""`redex splats`: prune a 3D Gaussian scene with a registered method and report what it cost.

Example::

    redex splats --input assets/splats/scene.ply --method lightgaussian --keep 0.34 --out /tmp/pruned.ply --json

``run`` returns the engine's :class:`~engine.splats.evaluate.PruneReport`, the object the tab's JSON download
is written from; the CLI prints its ``to_dict()``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.registry import names

NAME = "splats"
HELP = "prune a 3D Gaussian splat scene (.ply / .splat) and measure count, bytes, PSNR, SSIM, render time"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.splats.prune import KEEP
    from engine.splats.storage import STORAGE

    methods = names("splats")
    p.add_argument("--input", default=None, help="scene .ply or .splat (default: the shipped demo scene)")
    # The registry's names, checked by the registry when the command runs (an unknown name is a clean error
    # with exit status 2, not argparse's SystemExit).
    p.add_argument("--method", default="lightgaussian", metavar="{" + ",".join(methods) + "}",
                   help="registered splat pruning method: " + ", ".join(methods))  # fmt: skip
    p.add_argument("--keep", type=float, default=None, help=f"{KEEP.help} (OMG: replaces tau)")
    p.add_argument("--tau", type=float, default=None, help="OMG: share of score mass kept (default 0.96)")
    p.add_argument("--storage", default="fp32", help=", ".join(repr(s) for s in STORAGE))
    p.add_argument("--views", type=int, default=4, help="evaluation views")
    p.add_argument("--backend", default="auto", choices=["auto", "gsplat", "cpu"])
    p.add_argument("--out", default=None, help="write the pruned scene here (.ply or .splat)")


def run(args: argparse.Namespace):
    from app.commands import tqdm_progress
    from engine.splats.bundle import load_bundle
    from engine.splats.evaluate import evaluate, write_pruned

    params = {k: v for k, v in (("keep", args.keep), ("tau", args.tau)) if v is not None}
    if args.input is not None and not Path(args.input).is_file():
        raise FileNotFoundError(f"no such file: {args.input}")
    bundle = load_bundle(args.input, eval_views=max(1, args.views))
    rep = evaluate(bundle, args.method, params, storage=args.storage, backend=args.backend,
                   progress=tqdm_progress())  # fmt: skip
    return write_pruned(rep, args.out) if args.out else rep


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
