"""`redex graph`: summarise a graph with SSumM or a baseline and print its size and reconstruction errors.

Examples::

    redex graph --builtin karate --budget 0.5 --json
    redex graph --input edges.txt --method ssumm --budget 0.2 --error l1 --json
    redex graph --generate rmat --edges 100000 --method saa-gs --budget 0.3

``--json`` prints the result's own ``to_dict()``; ``--save`` writes the summary graph exactly as the tab's
"summary JSON" download (``GraphSummaryResult.summary_graph().to_json()``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "graph"
HELP = "summarise a graph (SSumM or a baseline) within a bit budget; print sizes and L1/L2 errors"
DEFAULT_METHOD = "ssumm"


def _known(choices: list[str]):
    """argparse ``type`` that names an unknown method the way the engine does (exit status 2)."""

    def check(name: str) -> str:
        if name not in choices:
            raise argparse.ArgumentTypeError(f"unknown method {name!r}; graph methods: {choices}")
        return name

    return check


def add_arguments(p: argparse.ArgumentParser) -> None:
    from app.commands import param_flag
    from engine.registry import get, names

    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--input", metavar="PATH", help="edge list file: 'u v' per line (.txt/.csv/.tsv, .gz ok)"
    )
    src.add_argument("--builtin", metavar="NAME", help="built-in graph (karate, les_miserables, ...)")
    src.add_argument("--generate", metavar="NAME", help="generator: rmat, sbm, barabasi_albert, lfr")
    p.add_argument("--edges", type=int, default=100_000, help="edges to generate with --generate")
    choices = names("graphs")
    p.add_argument(
        "--method", default=DEFAULT_METHOD, choices=choices, type=_known(choices),
        help="registered graph method",
    )  # fmt: skip
    default = get(DEFAULT_METHOD, family="graphs")
    param_flag(p, default.param("budget"), help="summary size / input size, in (0, 1]")
    param_flag(p, default.param("error"), help="error to minimise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="other method parameter")
    p.add_argument("--save", metavar="PATH", help="write the summary graph (supernodes, superedges) as JSON")


def load_graph(args: argparse.Namespace):
    from engine.graphs import io

    if args.input:
        return io.load_edge_list(args.input)
    if args.builtin:
        return io.builtin(args.builtin)
    return io.generate(args.generate, args.edges, seed=args.seed)


def run(args: argparse.Namespace):
    from engine.graphs.compare import summarize
    from engine.registry import InputError

    extra = {}
    for kv in args.param:
        if "=" not in kv:
            raise InputError(f"--param expects K=V, got {kv!r}")
        k, v = kv.split("=", 1)
        extra[k.strip()] = v.strip()
    graph = load_graph(args)
    res = summarize(graph, args.method, seed=args.seed, budget=args.budget, error=args.error, **extra)
    if args.save:
        Path(args.save).write_text(res.summary_graph(graph.labels).to_json())
    return res


def render(out: dict) -> str:
    lines = [
        f"{out['method']} on {out['graph']} ({out['nodes']:,} nodes, {out['edges']:,} edges), "
        f"budget {out['budget']:g}, {out['error'].upper()}",
        f"  supernodes {out['supernodes']:,}, superedges {out['superedges']:,}",
        f"  size {out['size_bits']:,.0f} / {out['input_bits']:,.0f} bits ({out['size_fraction']:.3f} of input)",
        f"  L1 error {out['l1_error']:.3e}, L2 error {out['l2_error']:.3e}, {out['seconds']:.2f} s",
    ]
    lines += [f"  note: {n}" for n in out["notices"]]
    return "\n".join(lines)
