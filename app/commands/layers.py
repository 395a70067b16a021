"""`redex layers`: LLM-Drop similarity per layer, optionally drop layers and report perplexity."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.registry import InputError

NAME = "layers"
HELP = "attention/MLP/block similarity per layer (LLM-Drop) and the cost of dropping layers"
DROPS = ("attn", "mlp", "block", "joint", "random-attn", "random-mlp", "random-block")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="smollm2, minilm, a local directory, or a hub id")
    p.add_argument("--allow-network", action="store_true", help="allow downloading a hub model")
    p.add_argument("--text-file", type=Path, help="UTF-8 text to use instead of the default corpus")
    p.add_argument("--samples", type=int, default=8, help="calibration windows (default 8)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per window (default 256)")
    p.add_argument("--head-layer", type=int, default=-1, help="layer whose heads are compared (default last)")
    p.add_argument("--drop", choices=DROPS, help="drop sublayers with this strategy and report perplexity")
    p.add_argument("--n", type=int, default=4, help="how many sublayers to drop (default 4)")
    p.add_argument("--iterative", action="store_true", help="re-score after each dropped sublayer")
    p.add_argument("--seed", type=int, default=42, help="seed of the random-drop baseline")


def _progress():
    from tqdm import tqdm

    bar = tqdm(total=100, file=sys.stderr, leave=False, disable=not sys.stderr.isatty())

    def update(frac: float, desc: str) -> None:
        bar.set_description(desc)
        bar.n = int(frac * 100)
        bar.refresh()

    return update


def run(args: argparse.Namespace) -> dict:
    from app.inputs import read_text_upload
    from engine.layers.drop import evaluate_drop, plan_drop
    from engine.layers.pipeline import ScanRequest, calibration_windows, heldout_windows, run_scan

    text = None
    if args.text_file is not None:
        if not args.text_file.is_file():
            raise InputError(f"no such text file: {args.text_file}")
        text = read_text_upload(args.text_file)
    req = ScanRequest(
        model=args.model, text=text, samples=args.samples, seq_len=args.seq_len, head_layer=args.head_layer,
        allow_network=args.allow_network,
    )  # fmt: skip
    loaded, corpus, scan = run_scan(req, progress=_progress())
    out = {
        "model": scan.model,
        "layout": scan.layout,
        "samples": scan.samples,
        "seq_len": scan.seq_len,
        "tokens": scan.tokens,
        "text_source": scan.text_source,
        "layers": [
            {k: r[k] for k in ("index", "attn_similarity", "mlp_similarity", "block_similarity")}
            for r in scan.tables()["layers"]
        ],
        "provenance": scan.provenance,
    }
    if args.drop:
        if args.drop.startswith("random-"):
            plan = plan_drop(
                loaded, None, strategy="random", n=args.n, random_kind=args.drop[7:], seed=args.seed
            )
        else:
            windows = (
                calibration_windows(loaded, corpus, req.samples, req.seq_len) if args.iterative else None
            )
            plan = plan_drop(
                loaded, windows, strategy=args.drop, n=args.n, iterative=args.iterative, scan=scan
            )
        heldout = heldout_windows(loaded, corpus, min(req.seq_len, 256))
        ev = evaluate_drop(loaded, plan, heldout, max_new_tokens=16)
        out["dropped"] = sorted(set(plan.attn) | set(plan.mlp) | set(plan.block))
        out["dropped_by_kind"] = ev.dropped
        out["strategy"] = plan.strategy
        key = ev.metric
        out[key] = {"full": ev.full[key], "dropped": ev.pruned[key]}
        out["tokens_per_s"] = {"full": ev.full.get("tokens_per_s"), "dropped": ev.pruned.get("tokens_per_s")}
        out["params_removed"] = ev.params_removed
        out["kv_saving"] = ev.kv_saving
    return out


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
