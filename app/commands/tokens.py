"""`redex tokens`: prune the image tokens of the scene VLM with a registered method.

Examples::

    redex tokens --image photo.png --method flowcut --keep 0.25 --json
    redex tokens --scene 3 --method cls-attention --keep 0.25 --layer 3 --json
    redex tokens --eval --method pyramiddrop --keep 0.25 --n 16 --json
"""

from __future__ import annotations

import argparse

NAME = "tokens"
HELP = "visual token pruning on the scene VLM: kept patches and scores for one image, or accuracy (--eval)"

METHODS = (
    "random-keep",
    "cls-attention",
    "flowcut",
    "flowcut-select",
    "turbo",
    "llavolta",
    "pyramiddrop",
    "fastv",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="image file (PNG, JPEG, GIF, TIFF, WebP, BMP)")
    src.add_argument("--scene", type=int, metavar="I", help="validation scene I of the built-in generator")
    src.add_argument(
        "--eval", action="store_true", help="accuracy on the validation split instead of one image"
    )
    p.add_argument("--method", default="flowcut", choices=METHODS)
    p.add_argument("--keep", type=float, default=0.25, help="fraction of image tokens kept, in (0, 1]")
    p.add_argument(
        "--layer", type=int, default=None, help="cls-attention / turbo: encoder layer (-1: last read)"
    )
    p.add_argument("--K", type=int, default=None, help="fastv: prune before LM layer K (-1: scaled default)")
    p.add_argument("--question", default=None, help="question for the VLM (its scene vocabulary)")
    p.add_argument("--model", default="scene-vlm", help="scene-vlm (the runner's model)")
    p.add_argument("--seed", type=int, default=0, help="random-keep / --control: seed")
    p.add_argument("--control", action="store_true", help="the method's random control at the same place")
    p.add_argument(
        "--n", type=int, default=16, help="--eval: validation scenes (6 questions each; 16 ~ 10-20 s)"
    )


def _params(args) -> dict:
    out = {}
    if args.layer is not None:
        out["layer"] = args.layer
    if args.K is not None:
        out["K"] = args.K
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    with torch.no_grad():  # a context, not set_grad_enabled(False): run() is also called in-process
        return _run(args)


def _run(args: argparse.Namespace) -> dict:
    import numpy as np

    from engine.registry import InputError

    if not (0 < args.keep <= 1):
        raise InputError(f"--keep must be in (0, 1], got {args.keep}")
    if args.eval:
        from engine.tokens.evaluate import accuracy_at
        from engine.vision.loading import load_vlm

        if args.model != "scene-vlm":
            raise InputError("--eval runs on the scene VLM's validation split (--model scene-vlm)")
        return accuracy_at(load_vlm("scene-vlm"), args.method, args.keep, _params(args), n=args.n)
    from engine.tokens.run import prune_image

    if args.image:
        from engine.vision.images import load_image

        image, notices = load_image(args.image)
    else:
        from engine.vision import scenes

        if args.scene < 0:
            raise InputError(f"--scene must be >= 0, got {args.scene}")
        b = scenes.make_batch("val", args.scene, 1)
        image, notices = (b.images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), []
    r = prune_image(image, method=args.method, keep=args.keep, params=_params(args), question=args.question,
                    model=args.model, seed=args.seed, control=args.control)  # fmt: skip
    return {
        "method": r.method, "model": r.model, "place": r.place, "keep": r.keep, "grid": list(r.grid),
        "kept": [int(i) for i in r.kept],
        "scores": [None if not np.isfinite(s) else float(s) for s in r.scores],
        "stages": [{"place": s["place"], "layer": s["layer"], "kept": [int(i) for i in s["kept"]]} for s in r.stages],
        "question": r.question, "answer_full": r.answer_full, "answer_pruned": r.answer_pruned,
        "flops": r.flops, "flops_full": r.flops_full, "info": r.info, "notices": notices + r.notices,
        "timings": r.provenance.timings,
    }  # fmt: skip


def render(out: dict) -> str:
    if "accuracy_full" in out:
        return (f"{out['method']} keep {out['keep']}: accuracy {out['accuracy']:.3f} (all tokens "
                f"{out['accuracy_full']:.3f}) on {out['n_questions']} questions of {out['n_scenes']} validation "
                f"scenes; objects with a kept patch {out['objects_kept']:.3f}")  # fmt: skip
    lines = [
        f"{out['method']} ({out['place']}) keeps {len(out['kept'])} of {out['grid'][0] * out['grid'][1]} patches"
    ]
    lines += [f"notice: {n}" for n in out["notices"]]
    lines.append(
        f"question: {out['question']}  answer all tokens: {out['answer_full']}  pruned: {out['answer_pruned']}"
    )
    lines.append(f"prefill GFLOPs {out['flops'] / 1e9:.3f} (all tokens {out['flops_full'] / 1e9:.3f})")
    lines.append("kept: " + " ".join(str(i) for i in out["kept"]))
    return "\n".join(lines)
