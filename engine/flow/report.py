"""The flow graph of one image as a plain report: labelled nodes, weighted edges, per-layer entropy.

:func:`flow_report` turns a :class:`engine.flow.graph.FlowGraph` from :func:`engine.flow.run.flow_for_image`
(with its token labels in ``extra``) into a :class:`FlowReport`, whose ``to_dict()`` is what ``redex flow --json``
prints and what the Information Flow tab downloads: one serialiser for both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from engine.flow.graph import FlowGraph
from engine.results import Result

__all__ = ["FlowReport", "flow_report"]


@dataclass
class FlowReport(Result):
    model: str = ""
    model_kind: str = ""  # "encoder" or "vlm"
    method: str = ""
    params: dict = field(default_factory=dict)
    n_layers: int = 0
    n_tokens: int = 0
    grid: list = field(default_factory=list)  # patch rows, cols
    output_token: dict = field(default_factory=dict)  # {"index", "label"}; index -1: weights over tokens
    target: str = ""  # "output" or "patches"
    question: str = ""
    answer: str = ""
    nodes: list = field(
        default_factory=list
    )  # {"id": "L<layer>:T<token>", layer, token, label, kind, share, ...}
    edges: list = field(default_factory=list)  # {"source", "target", "weight"}, strongest first
    n_cross_edges: int = 0  # cross-token edges carrying flow; ``edges`` holds the strongest of them
    entropy: list = field(default_factory=list)  # [L] bits, mean over heads and queries
    entropy_output: list = field(default_factory=list)  # [L] bits, the output's row
    top_inputs: list = field(default_factory=list)  # the 20 most important input tokens
    relays: list = field(default_factory=list)  # top relay nodes with their labels
    notices: list = field(default_factory=list)  # what loading and resizing did to the image
    timings: dict = field(default_factory=dict)
    backend: str = "cpu"
    input_fingerprint: str = ""

    def tables(self):
        return {
            "nodes": self.nodes,
            "edges": self.edges,
            "entropy": [
                {"layer": i + 1, "entropy_bits": h, "output_entropy_bits": q}
                for i, (h, q) in enumerate(zip(self.entropy, self.entropy_output, strict=True))
            ],
            "top_inputs": self.top_inputs,
        }


def flow_report(res: FlowGraph, *, notices: list[str] | tuple[str, ...] = ()) -> FlowReport:
    """The report of a labelled flow graph; ``notices`` (from loading the image) come before the model's own."""
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
    return FlowReport(
        provenance=dataclasses.replace(res.provenance),
        model=x["model"], model_kind=x["model_kind"], method=res.method, params=res.provenance.params,
        n_layers=res.n_layers, n_tokens=res.n_tokens, grid=x["grid"],
        output_token={"index": res.output, "label": x["output_label"]}, target=x["target"],
        question=x["question"], answer=x["answer"], nodes=nodes, edges=edges, n_cross_edges=res.n_cross_edges,
        entropy=[float(v) for v in res.entropy], entropy_output=[float(v) for v in res.entropy_query],
        top_inputs=[{"token": int(t), "label": labels[t], "importance": float(res.importance[t])} for t in order],
        relays=[dict(r, label=labels[r["token"]]) for r in res.relays],
        notices=list(notices) + list(x["notices"]), timings=res.provenance.timings,
        backend=res.provenance.backend, input_fingerprint=res.provenance.input_fingerprint,
    )  # fmt: skip
