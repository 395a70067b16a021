"""`redex flow`: attention rollout / attention flow of a vision model (or the scene VLM) on one image.

Examples::

    redex flow --image photo.png --json
    redex flow --image photo.png --model scene-vlm --question "how many red objects ?" --json
    redex flow --scene 3 --method attention-flow --json
"""

from __future__ import annotations

import argparse

NAME = "flow"
HELP = "information flow (attention rollout / max-flow) through a vision model for one image: graph + entropy"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", metavar="PATH", help="image file (PNG, JPEG, GIF, TIFF, WebP, BMP)")
    src.add_argument("--scene", type=int, metavar="I", help="validation scene I of the built-in generator")
    p.add_argument("--model", default="scene-vit", help="scene-vit, scene-vlm, a local folder or a hub id")
    p.add_argument("--method", default="attention-rollout", choices=("attention-rollout", "attention-flow"))
    p.add_argument("--target", default="output", choices=("output", "patches"),
                   help="trace into CLS / the last token (output) or into the mean of the last layer's patches")  # fmt: skip
    p.add_argument("--question", default=None, help="question for a VLM (scene VLM: its scene vocabulary)")
    p.add_argument("--residual", type=float, default=0.5, help="identity weight in A_hat (0.5 in the paper)")
    p.add_argument("--top-k", type=int, default=16, help="attention-flow: incoming edges kept per node")
    p.add_argument("--top-edges", type=int, default=300, help="strongest edges in the printed graph")
    p.add_argument("--allow-network", action="store_true", help="allow downloading a hub model")


def graph_json(res) -> dict:
    """``nodes``, ``edges`` (with weights) and per-layer ``entropy`` of a flow result, as plain JSON."""
    x = res.extra
    labels, kinds = x["labels"], x["kinds"]
    used = {(res.n_layers, res.output)} if res.output >= 0 else set()
    for lay, src, dst, _ in res.edges:
        used.add((lay, src))
        used.add((lay + 1, dst))
    relay_top = {(r["layer"], r["token"]) for r in res.relays}
    nodes = [
        {
            "id": f"L{lay}:T{tok}",
            "layer": lay,
            "token": tok,
            "label": labels[tok],
            "kind": kinds[tok],
            "share": float(res.node_share[lay, tok]),
            "relay": float(res.relay[lay, tok]),
            "is_relay": (lay, tok) in relay_top,
        }
        for lay, tok in sorted(used)
    ]
    edges = [
        {"source": f"L{lay}:T{src}", "target": f"L{lay + 1}:T{dst}", "weight": w}
        for lay, src, dst, w in res.edges
    ]
    order = res.importance.argsort()[::-1][:20]
    return {
        "model": x["model"],
        "model_kind": x["model_kind"],
        "method": res.method,
        "params": res.provenance.params,
        "n_layers": res.n_layers,
        "n_tokens": res.n_tokens,
        "grid": x["grid"],
        "output_token": {"index": res.output, "label": x["output_label"]},
        "target": x["target"],
        "question": x["question"],
        "answer": x["answer"],
        "nodes": nodes,
        "edges": edges,
        "entropy": [float(v) for v in res.entropy],
        "entropy_output": [float(v) for v in res.entropy_query],
        "top_inputs": [
            {"token": int(t), "label": labels[t], "importance": float(res.importance[t])} for t in order
        ],
        "relays": [dict(r, label=labels[r["token"]]) for r in res.relays],
        "notices": x["notices"],
        "timings": res.provenance.timings,
        "backend": res.provenance.backend,
        "input_fingerprint": res.provenance.input_fingerprint,
    }


def run(args: argparse.Namespace) -> dict:
    from engine.flow.run import flow_for_image
    from engine.vision.images import load_image

    if args.image:
        image, notices = load_image(args.image)
    else:
        import numpy as np

        from engine.vision import scenes

        if args.scene < 0:
            raise ValueError(f"--scene must be >= 0, got {args.scene}")
        b = scenes.make_batch("val", args.scene, 1)
        image, notices = (b.images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), []
    params = {"residual": args.residual, "top_edges": args.top_edges}
    if args.method == "attention-flow":
        params["top_k"] = args.top_k
    res = flow_for_image(
        image, model=args.model, method=args.method, question=args.question, params=params, target=args.target,
        allow_network=args.allow_network or None,
    )  # fmt: skip
    out = graph_json(res)
    out["notices"] = notices + out["notices"]
    return out


def render(out: dict) -> str:
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
    lines.append(f"{len(out['nodes'])} nodes, {len(out['edges'])} edges (use --json for all)")
    return "\n".join(lines)
