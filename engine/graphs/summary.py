"""The result of a graph summariser: :class:`GraphSummaryResult` (the metrics, the provenance and the
:class:`~engine.graphs.costs.Summary` arrays), built by :func:`make_result` for SSumM and every baseline alike,
and :class:`SummaryGraph`, the summary graph itself as a download (supernodes with their members, superedges
with their weights).

Sizes and errors are those of :mod:`engine.graphs.costs` (Lee et al., "SSumM: Sparse Summarization of Massive
Graphs", KDD 2020, Sec. 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engine.graphs.costs import Summary, errors, input_bits, summary_bits
from engine.graphs.io import Graph
from engine.registry import InputError
from engine.results import Provenance, Result

__all__ = ["GraphSummaryResult", "SummaryGraph", "make_result", "check_inputs", "ROW_KEYS"]

# the numbers of one summary, in the order every table shows them (metrics() and the comparison rows)
ROW_KEYS = ("nodes", "edges", "supernodes", "superedges", "input_bits", "size_bits", "l1_error", "l2_error")


@dataclass
class GraphSummaryResult(Result):
    """A summary of a graph and its metrics. ``summary`` holds the arrays (see :class:`Summary`)."""

    method: str
    graph_name: str
    nodes: int
    edges: int
    supernodes: int
    superedges: int
    input_bits: float
    size_bits: float
    budget: float
    budget_bits: float
    error: str
    l1_error: float
    l2_error: float
    seconds: float
    notices: list[str] = field(default_factory=list)
    summary: Summary | None = field(default=None, repr=False)

    def metrics(self) -> dict:
        out = {k: getattr(self, k) for k in ROW_KEYS}
        out["size_fraction"] = self.size_bits / self.input_bits
        out["seconds"] = self.seconds
        return out

    def row(self) -> dict:
        """One table row: method, budget and :meth:`metrics` (the single-run table and comparison rows)."""
        return {"method": self.method, "budget": self.budget, **self.metrics()}

    def to_dict(self) -> dict:
        """Every field, plus ``graph``, ``size_fraction`` and ``seed`` (what ``redex graph --json`` prints)."""
        d = super().to_dict()
        d.update(
            graph=self.graph_name, size_fraction=self.size_bits / self.input_bits, seed=self.provenance.seed
        )
        return d

    def tables(self) -> dict[str, list[dict]]:
        s = self.summary
        return {
            "node_to_supernode": [{"node": i, "supernode": int(x)} for i, x in enumerate(s.labels)],
            "superedges": [
                {"a": int(a), "b": int(b), "edges": int(c), "pairs": float(p), "density": float(c / p)}
                for a, b, c, p in zip(s.se_a, s.se_b, s.se_count, s.se_pairs)
            ],
        }

    def summary_graph(self, labels: np.ndarray | None = None) -> SummaryGraph:
        """The summary graph as a result of its own: supernodes with their members (named by ``labels``, the
        input's node names, when given), superedges with weights, and these metrics and provenance."""
        s = self.summary
        order = np.argsort(s.labels, kind="stable")
        bounds = np.r_[0, np.cumsum(s.sizes)]
        names = labels if labels is not None else np.arange(s.labels.size)
        members = [[str(names[i]) for i in order[bounds[j] : bounds[j + 1]]] for j in range(s.n_super)]
        return SummaryGraph(
            provenance=self.provenance,
            method=self.method,
            graph=self.graph_name,
            metrics=self.metrics(),
            supernodes=[{"id": j, "size": int(s.sizes[j]), "members": members[j]} for j in range(s.n_super)],
            superedges=[
                {"a": int(a), "b": int(b), "edges": int(c), "density": float(c / p)}
                for a, b, c, p in zip(s.se_a, s.se_b, s.se_count, s.se_pairs)
            ],
            node_names=[str(x) for x in names],
            node_labels=s.labels.tolist(),
        )


@dataclass
class SummaryGraph(Result):
    """A summary graph for download: its JSON lists supernodes (id, size, members) and superedges (endpoints,
    edges, density); its ``node_to_supernode`` table maps each input node (by name) to its supernode."""

    method: str
    graph: str
    metrics: dict
    supernodes: list[dict]
    superedges: list[dict]
    node_names: list[str] = field(default_factory=list, repr=False)
    node_labels: list[int] = field(default_factory=list, repr=False)

    def tables(self) -> dict[str, list[dict]]:
        return {
            "node_to_supernode": [
                {"node": name, "supernode": s} for name, s in zip(self.node_names, self.node_labels)
            ],
            "superedges": self.superedges,
        }

    def edge_list(self) -> str:
        """The superedges as a text edge list: ``supernode_a supernode_b edges density`` per line."""
        head = f"# superedges of {self.method} on {self.graph}: supernode_a supernode_b edges density\n"
        return head + "".join(f"{e['a']} {e['b']} {e['edges']} {e['density']:.6g}\n" for e in self.superedges)


def check_inputs(graph: Graph, budget: float, error: str) -> None:
    """The guard of every summariser called directly (the registry's ``Param`` checks the app and CLI)."""
    if not isinstance(graph, Graph):
        raise InputError(f"expected an engine.graphs.io.Graph, got {type(graph).__name__}")
    if not (0.0 < budget <= 1.0) or budget != budget:
        raise InputError(f"budget must be a fraction of the input size in (0, 1], got {budget}")
    if error not in ("l1", "l2"):
        raise InputError(f"error must be 'l1' or 'l2', got {error!r}")


def make_result(
    method: str, graph: Graph, summary: Summary, *, params: dict, seed: int | None, timings: dict, notices=()
) -> GraphSummaryResult:
    """Metrics and provenance around a :class:`Summary` (shared by SSumM and the baselines)."""
    t0 = time.perf_counter()
    l1, l2 = errors(graph, summary)
    timings["errors"] = time.perf_counter() - t0
    ib = input_bits(graph.n, graph.m)
    seconds = sum(v for k, v in timings.items() if k != "errors")
    return GraphSummaryResult(
        provenance=Provenance(method, dict(params), graph.fingerprint, seed, "cpu", dict(timings)),
        method=method,
        graph_name=graph.name,
        nodes=graph.n,
        edges=graph.m,
        supernodes=summary.n_super,
        superedges=summary.n_superedges,
        input_bits=ib,
        size_bits=summary_bits(graph.n, summary.n_super, summary.n_superedges, summary.w_max),
        budget=float(params.get("budget", 0.0)),
        budget_bits=float(params.get("budget", 0.0)) * ib,
        error=str(params.get("error", "l2")),
        l1_error=l1,
        l2_error=l2,
        seconds=seconds,
        notices=list(graph.notices) + list(notices),
        summary=summary,
    )
