"""`redex flow`: attention rollout / attention flow of a vision model (or the scene VLM) on one image.

Examples::

    redex flow --image photo.png --json
    redex flow --image photo.png --model scene-vlm --question "how many red objects ?" --json
    redex flow --scene 3 --method attention-flow --json
"""

from __future__ import annotations

import argparse

from app.commands import method_flag, param_flag, tqdm_progress

NAME = "flow"
HELP = "information flow (attention rollout / max-flow) through a vision model for one image: graph + entropy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.flow.compare import COMPARE_SETTINGS
    from engine.flow.graph import FLOW_PARAMS
    from engine.flow.run import TARGET

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="image file (PNG, JPEG, GIF, TIFF, WebP, BMP)")
    src.add_argument("--scene", type=int, metavar="I", help="validation scene I of the built-in generator")
    p.add_argument("--model", default="scene-vit", help="scene-vit, scene-vlm, a local folder or a hub id")
    method_flag(p, "flow")
    param_flag(
        p,
        TARGET,
        help="trace into CLS / the last token (output) or into the mean of the last layer's patches",
    )
    p.add_argument("--question", default=None, help="question for a VLM (scene VLM: its scene vocabulary)")
    for param in FLOW_PARAMS.params:  # --residual, --top-k, --top-edges: each method takes the ones it uses
        param_flag(p, param)
    p.add_argument("--allow-network", action="store_true", help="allow downloading a hub model")
    method_flag(p, "flow", flag="--compare", nargs="+",
                help="compare these methods on the image instead: importance, rank agreement, time")  # fmt: skip
    param_flag(p, COMPARE_SETTINGS["top_fraction"])


def run(args: argparse.Namespace):
    """The flow report (:class:`engine.flow.report.FlowReport`) of one image, or with ``--compare`` the
    :class:`engine.flow.compare.FlowComparison` of several methods; the CLI prints its ``to_dict()``."""
    from app.image_inputs import cli_image
    from engine.flow.compare import compare
    from engine.flow.graph import FLOW_PARAMS
    from engine.flow.report import flow_report
    from engine.flow.run import flow_for_image, method_params

    image, notices = cli_image(args.image, args.scene)
    params = {p.name: getattr(args, p.name) for p in FLOW_PARAMS.params}
    if args.compare:
        settings = dict(params, target=args.target, top_fraction=args.top_fraction)
        return compare(image, args.compare, settings, model=args.model, question=args.question, notices=notices,
                       allow_network=args.allow_network or None, progress=tqdm_progress())  # fmt: skip
    res = flow_for_image(
        image, model=args.model, method=args.method, question=args.question, target=args.target,
        params=method_params(args.method, params), allow_network=args.allow_network or None,
        progress=tqdm_progress(),
    )  # fmt: skip
    return flow_report(res, notices=notices)


def render(out: dict) -> str:
    if "rows" in out:  # --compare
        return "\n".join(
            f"{r['method']}: importance {r['importance_s']:.3f} s, image share {r['image_share']:.3f}, top input "
            f"{r['top_input']} ({r['top_importance']:.3f}), Spearman vs {out['methods'][0]} {out['spearman'][0][i]:.3f}"
            for i, r in enumerate(out["rows"])
        )
    lines = [f"{out['method']} on {out['model']} ({out['n_layers']} layers, {out['n_tokens']} tokens)"]
    if out["question"]:
        lines.append(f"question: {out['question']}  answer: {out['answer']}")
    lines += [f"notice: {n}" for n in out["notices"]]
    lines.append("entropy (bits) per layer: " + " ".join(f"{v:.2f}" for v in out["entropy"]))
    lines.append(
        "top inputs: " + ", ".join(f"{t['label']} {t['importance']:.3f}" for t in out["top_inputs"][:8])
    )
    lines.append(
        "relays: " + ", ".join(f"L{r['layer']} {r['label']} {r['score']:.3f}" for r in out["relays"][:5])
    )
    lines.append(f"{len(out['nodes'])} nodes, {len(out['edges'])} strongest of {out.get('n_cross_edges', 0)} "
                 "cross-token edges (use --json for all)")  # fmt: skip
    return "\n".join(lines)
