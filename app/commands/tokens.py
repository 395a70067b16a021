"""`redex tokens`: prune the image tokens of the scene VLM with a registered method.

Examples::

    redex tokens --image photo.png --method flowcut --keep 0.25 --json
    redex tokens --scene 3 --method cls-attention --keep 0.25 --layer 3 --json
    redex tokens --eval --method pyramiddrop --keep 0.25 --n 16 --json

``--method`` lists the registered token-pruning methods; every method parameter is a flag built from its
registration (``--keep``, ``--layer``, ``--alpha``, ``--K``, ...), checked by ``Method.validate`` only. The
command returns the engine's result (:class:`~engine.tokens.run.TokenPruning`, or
:class:`~engine.tokens.evaluate.AccuracyReport` with ``--eval``), printed as its ``to_dict()``.
"""

from __future__ import annotations

import argparse
import dataclasses

from app.commands import method_flag, param_flag, tqdm_progress

NAME = "tokens"
HELP = "visual token pruning on the scene VLM: kept patches and scores for one image, or accuracy (--eval)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.tokens.evaluate import EVAL
    from engine.tokens.methods import family_params

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="image file (PNG, JPEG, GIF, TIFF, WebP, BMP)")
    src.add_argument("--scene", type=int, metavar="I", help="validation scene I of the built-in generator")
    src.add_argument(
        "--eval", action="store_true", help="accuracy on the validation split instead of one image"
    )
    method_flag(p, "tokens", default="flowcut")
    params = family_params()
    for param in params:
        param_flag(p, param)
    # a parameter flag not given is not passed: the chosen method's own default applies, and a flag the method
    # does not take is an error from Method.validate (except --keep, which every method takes)
    p.set_defaults(**{q.name: None for q in params if q.name != "keep"})
    p.add_argument("--question", default=None, help="question for the VLM (its scene vocabulary)")
    p.add_argument("--model", default="scene-vlm", help="scene-vlm (the runner's model)")
    p.add_argument("--seed", type=int, default=0, help="random-keep / --control: seed")
    p.add_argument("--control", action="store_true", help="the method's random control at the same place")
    p.add_argument("--n", type=int, default=EVAL["n"].default, help="--eval: " + EVAL["n"].help)


def _params(args) -> dict:
    from engine.tokens.methods import family_params

    return {q.name: getattr(args, q.name) for q in family_params() if getattr(args, q.name) is not None}


def run(args: argparse.Namespace):
    import torch

    with torch.no_grad():  # a context, not set_grad_enabled(False): run() is also called in-process
        return _run(args)


def _run(args: argparse.Namespace):
    from engine.registry import InputError

    params = _params(args)
    keep = params.pop("keep")
    if args.eval:
        from engine.tokens.evaluate import accuracy_at
        from engine.vision.loading import load_vlm

        if args.model != "scene-vlm":
            raise InputError("--eval runs on the scene VLM's validation split (--model scene-vlm)")
        return accuracy_at(
            load_vlm("scene-vlm"), args.method, keep, params, n=args.n, progress=tqdm_progress()
        )
    from engine.tokens.run import prune_image

    if args.image:
        from engine.vision.images import load_image

        image, notices = load_image(args.image)
    else:
        from app.inputs import as_int
        from engine.vision import scenes

        image, notices = scenes.make_batch("val", as_int(args.scene, "--scene", low=0), 1).image_uint8(0), []
    r = prune_image(image, method=args.method, keep=keep, params=params, question=args.question,
                    model=args.model, seed=args.seed, control=args.control, progress=tqdm_progress())  # fmt: skip
    return dataclasses.replace(r, notices=notices + r.notices) if notices else r


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
