"""`redex layers`: LLM-Drop similarity per layer, optionally drop layers and report perplexity.

``--drop`` takes a registered drop method (``attn-drop``, ``random-drop``, ...) or a curve label that names
one with its parameters (``attn``, ``random-mlp``); the flags' defaults come from the registry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands import param_flag, tqdm_progress
from engine.registry import InputError

NAME = "layers"
HELP = "attention/MLP/block similarity per layer (LLM-Drop) and the cost of dropping layers"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engine.layers.curve import curve_choices
    from engine.registry import get, names

    scan = get("layer-similarity", family="layers")
    p.add_argument("--model", default="smollm2", help="smollm2, minilm, a local directory, or a hub id")
    p.add_argument("--allow-network", action="store_true", help="allow downloading a hub model")
    p.add_argument("--text-file", type=Path, help="UTF-8 text to use instead of the default corpus")
    for param in scan.params:
        param_flag(p, param)
    p.add_argument(
        "--drop", choices=[*curve_choices(), *names("layers", role="drop")],
        help="drop sublayers with this method (or curve label) and report perplexity",
    )  # fmt: skip
    param_flag(p, get("attn-drop", family="layers").param("n"), flag="--n")
    param_flag(p, get("attn-drop", family="layers").param("iterative"))
    param_flag(p, get("random-drop", family="layers").param("seed"))


def run(args: argparse.Namespace):
    from app.inputs import read_text_upload
    from engine.layers.curve import curve_choices
    from engine.layers.pipeline import ScanRequest
    from engine.layers.report import layers_report

    text = None
    if args.text_file is not None:
        if not args.text_file.is_file():
            raise InputError(f"no such text file: {args.text_file}")
        text = read_text_upload(args.text_file)
    req = ScanRequest(
        model=args.model, text=text, samples=args.samples, seq_len=args.seq_len, head_layer=args.head_layer,
        allow_network=args.allow_network,
    )  # fmt: skip
    method, params = curve_choices().get(args.drop, (args.drop, {}))
    values = {"n": args.n, "iterative": args.iterative, "seed": args.seed, **params}
    return layers_report(req, method, values, progress=tqdm_progress())


def render(out: dict) -> str:
    lines = [f"{out['model']}: {out['samples']} x {out['seq_len']} tokens of {out['text_source']}"]
    lines.append(f"{'layer':>5} {'attn':>8} {'mlp':>8} {'block':>8}")
    for r in out["layers"]:
        lines.append(
            f"{r['index']:>5} {r['attn_similarity']:>8.4f} {r['mlp_similarity']:>8.4f} {r['block_similarity']:>8.4f}"
        )
    if "dropped" in out:
        lines.append(f"dropped ({out['strategy']}): {out['dropped_by_kind']}")
        for k in ("perplexity", "embedding_cosine"):
            if k in out:
                lines.append(f"{k}: full {out[k]['full']:.3f} -> dropped {out[k]['dropped']:.3f}")
    return "\n".join(lines)
