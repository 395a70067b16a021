"""Run registered graph summarisers by name, and compare them across budgets on the same graph.

- :func:`summarize`: any registered graph method (:func:`engine.registry.by_family`) with parameters checked
  by its :class:`~engine.registry.Method` (the one range check); :func:`summarize_cached` is the same, kept in
  memory by graph fingerprint, method, parameters and seed, so a repeated request answers at once.
- :func:`compare`: every chosen method at every budget of :data:`COMPARE` on the same graph, the same error
  and seed, as one :class:`GraphComparison` (one row per method and budget: size, L1/L2 error, time). Its
  numbers are cached by graph fingerprint on disk (:class:`engine.cache.ResultCache`), so they survive a
  restart; bump :data:`COMPARE_VERSION` when a method's numbers change.

This is the size-vs-error comparison of the SSumM paper (Lee et al., KDD 2020, Fig. 3): SSumM against
SAA-Gs (LeFevre & Terzi, SDM 2010) and a random-merge baseline at the same bit budgets.

Serving: answers already cached cost nothing; a summary or a comparison that must be computed on a graph of
more than :data:`engine.graphs.io.HEAVY_EDGES` edges is refused when its memory estimate
(:func:`summary_bytes`) is more than the server can give, and otherwise runs in a heavy-job slot
(:func:`engine.graphs.io.heavy`); a small graph runs at once. ``progress(frac, desc)`` reaches the methods'
own loops, so a Stop or the request time limit ends a long run within about a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.cache import ResultCache
from engine.graphs.io import Graph, builtin, heavy
from engine.graphs.summary import GraphSummaryResult
from engine.registry import InputError, Method, Param, Settings, by_family
from engine.results import ComparisonResult, Provenance, Stopwatch, from_dict

__all__ = [
    "COMPARE",
    "COMPARE_VERSION",
    "GraphComparison",
    "compare",
    "graph_methods",
    "method_params",
    "summarize",
    "summarize_cached",
    "summary_bytes",
    "warmup",
]

Progress = Callable[[float, str], None]

COMPARE = Settings(
    "graph comparison",
    (
        Param(
            "budgets", (0.1, 0.2, 0.3, 0.5), help="budgets (summary bits / input bits) every method runs at"
        ),
        Param(
            "error",
            "l2",
            choices=("l1", "l2"),
            label="Error to minimise",
            help="error every method minimises",
        ),
        Param(
            "seed",
            0,
            low=0,
            high=2**32 - 1,
            help="seeds every method's sampling; equal seeds give equal summaries",
        ),
    ),
)
COMPARE_VERSION = 2  # 1 was the tab's own disk cache ("v1")

SUMMARY_BYTES_PER_EDGE = 800  # peak bytes per edge of one summary (merge state, errors; ~650 measured)
SUMMARY_BYTES_PER_NODE = 200  # per-supernode arrays of the merge state
SECONDS_PER_EDGE = 1e-4  # SSumM's time per edge on one core (200k edges: ~17 s), for "try again in N s"

_summaries = ResultCache("graph-summary", maxsize=24)  # memory only: a million-edge summary holds ~10 MB
_comparisons = ResultCache(
    "graph-compare", version=COMPARE_VERSION, maxsize=32, load=lambda d: from_dict(GraphComparison, d)
)


def graph_methods() -> dict[str, Method]:
    """The registered graph summarisers, by name, in registration order (imports only this family)."""
    return {m.name: m for m in by_family("graphs")}


def _method(name: str) -> Method:
    methods = graph_methods()
    if name not in methods:
        raise InputError(f"unknown method {name!r}; graph methods: {sorted(methods)}")
    return methods[name]


def method_params(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that ``method`` declares as parameters (a form holds every method's fields;
    each method takes its own). Values are checked when the method runs, not here."""
    declared = {p.name for p in _method(method).params}
    return {k: v for k, v in values.items() if k in declared}


def summary_bytes(graph: Graph) -> int:
    """Estimated peak memory of summarising ``graph`` with any graph method."""
    return graph.m * SUMMARY_BYTES_PER_EDGE + graph.n * SUMMARY_BYTES_PER_NODE


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise InputError(f"seed must be a whole number in [0, 2**32), got {seed!r}")
    return int(seed)


def summarize(
    graph: Graph, method: str = "ssumm", *, seed: int = 0, progress: Progress | None = None, **params
) -> GraphSummaryResult:
    """Run any registered graph summariser by name with validated parameters. ``progress(frac, desc)`` is
    passed to the method's loops (it never changes the result)."""
    meth = _method(method)
    checked = meth.validate(params)
    seed = _check_seed(seed)
    if progress is None:
        return meth(graph, seed=seed, **checked)
    return meth(graph, seed=seed, progress=progress, **checked)


def summarize_cached(
    graph: Graph, method: str = "ssumm", *, seed: int = 0, progress: Progress | None = None, **params
) -> GraphSummaryResult:
    """:func:`summarize`, answered from memory when the same graph, method, parameters and seed come again.
    Computing one on a big graph is heavy work (memory estimate, then a slot: :func:`engine.graphs.io.heavy`);
    a cached answer and a small graph never wait."""
    checked = _method(method).validate(params)  # range errors before the cache key
    seed = _check_seed(seed)
    # the name and the loader's notices are part of the result, so part of the key: two uploads with the same
    # edges under different names (or read with different notices) each get their own caption
    key = (graph.fingerprint, graph.name, tuple(graph.notices), method, checked, seed)

    def compute() -> GraphSummaryResult:
        what = f"{method} on {graph.m:,} edges"
        with heavy(graph.m, what, memory=summary_bytes(graph), expect_s=5 + graph.m * SECONDS_PER_EDGE,
                   progress=progress):  # fmt: skip
            return summarize(graph, method, seed=seed, progress=progress, **checked)

    return _summaries.get_or_compute(key, compute)


@dataclass
class GraphComparison(ComparisonResult):
    """Every method at every budget on one graph. ``rows``: one per (method, budget), with ``method``,
    ``budget`` and the summary's metrics (nodes, edges, supernodes, superedges, input_bits, size_bits,
    l1_error, l2_error, size_fraction, seconds)."""

    graph_name: str = ""
    nodes: int = 0
    edges: int = 0
    input_bits: float = 0.0

    @property
    def budgets(self) -> list[float]:
        return list(self.settings.get("budgets", ()))

    @property
    def error(self) -> str:
        return str(self.settings.get("error", "l2"))

    @property
    def seed(self) -> int:
        return int(self.settings.get("seed", 0))


def _budgets(value: Any) -> tuple[float, ...]:
    """Budgets from a sequence or a comma-separated string; each is range-checked by the method's Param."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    if not items:
        raise InputError("budgets: give at least one budget")
    try:
        return tuple(float(b) for b in items)
    except (TypeError, ValueError):
        raise InputError(f"budgets must be numbers, got {value!r}") from None


def compare(
    graph: Graph,
    methods: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> GraphComparison:
    """Every method in ``methods`` (default: every registered graph method) at every budget of ``settings``
    (a :data:`COMPARE` table: ``budgets``, ``error``, ``seed``) on ``graph``.

    Raises
    ------
    InputError
        For an unknown method, a setting outside its range, or a budget a method rejects.
    """
    names = list(methods) if methods else list(graph_methods())
    for name in names:
        _method(name)
    checked = COMPARE.validate(settings)
    checked["budgets"] = _budgets(checked["budgets"])
    for name in names:  # every budget through every method's own check, before anything runs
        for b in checked["budgets"]:
            _method(name).validate({"budget": b, "error": checked["error"]})
    checked["seed"] = _check_seed(checked["seed"])
    key = (graph.fingerprint, graph.name, names, checked)

    def compute() -> GraphComparison:
        runs = len(names) * len(checked["budgets"])
        what = f"comparison of {runs} summaries on {graph.m:,} edges"
        with heavy(graph.m, what, memory=summary_bytes(graph), expect_s=5 + runs * graph.m * SECONDS_PER_EDGE,
                   progress=progress):  # fmt: skip
            return _compare(graph, names, checked, progress)

    return _comparisons.get_or_compute(key, compute)


def _compare(graph: Graph, names: list[str], settings: dict, progress) -> GraphComparison:
    budgets, error, seed = settings["budgets"], settings["error"], settings["seed"]
    timings: dict[str, float] = {}
    watch = Stopwatch(timings)
    rows = []
    total = len(names) * len(budgets)
    for i, name in enumerate(names):
        with watch(name):
            for j, b in enumerate(budgets):
                done = i * len(budgets) + j
                sub = None
                if progress is not None:
                    progress(done / total, f"{name} at budget {b} ({done + 1} of {total})")

                    def sub(frac: float, desc: str, done: int = done) -> None:
                        progress((done + frac) / total, f"{desc} ({done + 1} of {total})")

                r = summarize_cached(graph, name, seed=seed, progress=sub, budget=b, error=error)
                rows.append(r.row())
    return GraphComparison(
        provenance=Provenance("compare", dict(settings), graph.fingerprint, seed, "cpu", timings),
        family="graphs",
        methods=names,
        settings=dict(settings),
        rows=rows,
        graph_name=graph.name,
        nodes=graph.n,
        edges=graph.m,
        input_bits=rows[0]["input_bits"] if rows else 0.0,
    )


def warmup() -> None:
    """Compile every method's numba kernels once (on a small graph), so the first real request is quick."""
    g = builtin("karate")
    for name in graph_methods():
        summarize(g, name, budget=0.5)
