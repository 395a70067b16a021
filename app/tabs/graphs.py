"""Graph Summaries tab: SSumM (Lee et al., KDD 2020) and baselines on built-in, generated or uploaded graphs.

Handlers are plain functions (testable without the UI); the layout below only wires them.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from pathlib import Path

import gradio as gr

from app.errors import user_errors
from engine.cache import MemoryCache, disk_get, disk_put
from engine.config import LIMITS
from engine.graphs import io
from engine.graphs.ssumm import graph_methods, summarize
from engine.registry import InputError
from engine.results import fingerprint
from visualizers.graphs import caption, plot_adjacency, plot_size_error, plot_summary_graphs

TAB_TITLE = "Graph Summaries"
TAB_ORDER = 50

SOURCES = ("Built-in graph", "Generator", "Upload edge list")
COMPARE_BUDGETS = (0.1, 0.2, 0.3, 0.5)
METRIC_HEADERS = [
    "method",
    "budget",
    "supernodes",
    "superedges",
    "size / input",
    "L1 error",
    "L2 error",
    "seconds",
]

_graphs = MemoryCache(maxsize=6)
_results = MemoryCache(maxsize=24)  # a million-edge summary holds ~10 MB of arrays


# ------------------------------------------------------------------------------------------------ helpers


def _int(value, what: str) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, got {value!r}") from None
    if f != f or not f.is_integer():
        raise InputError(f"{what} must be a whole number, got {value!r}")
    return int(f)


def _float(value, what: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if f != f:
        raise InputError(f"{what} is NaN")
    return f


def _upload_path(upload) -> Path:
    if upload is None or upload == "":
        raise InputError("'Upload edge list' is selected but no file was uploaded")
    path = Path(upload if isinstance(upload, str | Path) else getattr(upload, "name", upload["path"]))
    if not path.is_file():
        raise InputError("the uploaded file could not be read; upload it again")
    if path.stat().st_size > LIMITS.max_upload_bytes:
        raise InputError(
            f"{path.name} is {path.stat().st_size:,} bytes, over the cap of {LIMITS.max_upload_bytes:,}"
        )
    return path


def load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload) -> io.Graph:
    """The graph the inputs describe (cached: a generated million-edge graph is built once)."""
    if source == SOURCES[0]:
        name = builtin_name or "karate"
        return _graphs.get_or_compute(f"builtin:{name}", lambda: io.builtin(name))
    if source == SOURCES[1]:
        m, seed = _int(gen_edges, "edge count"), _int(gen_seed, "generator seed")
        gen = generator or "rmat"
        return _graphs.get_or_compute(f"gen:{gen}:{m}:{seed}", lambda: io.generate(gen, m, seed=seed))
    if source == SOURCES[2]:
        path = _upload_path(upload)
        data = path.read_bytes()
        key = "upload:" + fingerprint(data)
        return _graphs.get_or_compute(key, lambda: io.parse_edge_list(data, name=path.name))
    raise InputError(f"unknown source {source!r}; choose one of {list(SOURCES)}")


def _params(method: str, budget, error, iterations, hashes) -> dict:
    params = {"budget": _float(budget, "budget"), "error": error or "l2"}
    if method == "ssumm":
        params["iterations"] = _int(iterations, "iterations T")
        params["hashes"] = _int(hashes, "min-hash functions")
    return params


def _summarize(graph: io.Graph, method: str, params: dict, seed: int):
    methods = graph_methods()
    if method not in methods:
        raise InputError(f"unknown method {method!r}; choose one of {sorted(methods)}")
    checked = methods[method].validate(params)  # range errors before the cache key
    key = fingerprint(graph.fingerprint, method, checked, seed)
    return _results.get_or_compute(key, lambda: summarize(graph, method, seed=seed, **checked))


def _row(r) -> list:
    return [
        r.method,
        r.budget,
        r.supernodes,
        r.superedges,
        round(r.size_bits / r.input_bits, 4),
        f"{r.l1_error:.3e}",
        f"{r.l2_error:.3e}",
        round(r.seconds, 3),
    ]


def _exports(graph: io.Graph, r) -> list[str]:
    """Summary graph as JSON and as an edge list, node -> supernode map as CSV (files for gr.File)."""
    out = Path(tempfile.mkdtemp(prefix="redex-graphs-"))
    stem = re.sub(
        r"[^A-Za-z0-9_.-]+", "_", f"{Path(graph.name).stem or 'graph'}_{r.method}_b{r.budget:g}_{r.error}"
    )
    s = r.summary
    js = out / f"{stem}_summary.json"
    js.write_text(json.dumps(r.summary_dict(graph.labels)))
    el = out / f"{stem}_superedges.txt"
    with el.open("w") as fh:
        fh.write(f"# superedges of {r.method} on {graph.name}: supernode_a supernode_b edges density\n")
        for a, b, c, p in zip(s.se_a.tolist(), s.se_b.tolist(), s.se_count.tolist(), s.se_pairs.tolist()):
            fh.write(f"{a} {b} {c} {c / p:.6g}\n")
    cv = out / f"{stem}_node_to_supernode.csv"
    with cv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["node", "supernode"])
        labels = s.labels.tolist()
        w.writerows((graph.label(i), labels[i]) for i in range(graph.n))
    return [str(js), str(el), str(cv)]


# ----------------------------------------------------------------------------------------------- handlers


@user_errors
def summarize_handler(
    source,
    builtin_name,
    generator,
    gen_edges,
    gen_seed,
    upload,
    method,
    budget,
    error,
    iterations,
    hashes,
    seed,
    progress=gr.Progress(),
):
    """Summarise the chosen graph with one method: graphs, matrices, metrics, caption, export files."""
    progress(0.05, desc="loading graph")
    graph = load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload)
    progress(0.25, desc=f"{method} on {graph.m:,} edges")
    r = _summarize(
        graph, method or "ssumm", _params(method, budget, error, iterations, hashes), _int(seed, "seed")
    )
    progress(0.75, desc="drawing")
    fig_g = plot_summary_graphs(graph, r)
    fig_a = plot_adjacency(graph, r)
    return fig_g, fig_a, [_row(r)], caption(graph, r), _exports(graph, r)


@user_errors
def compare_handler(
    source, builtin_name, generator, gen_edges, gen_seed, upload, error, seed, progress=gr.Progress()
):
    """Every graph method at budgets 0.1, 0.2, 0.3, 0.5 on the same graph: size-vs-error curve and table."""
    graph = load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload)
    seed = _int(seed, "seed")
    error = error or "l2"
    methods = sorted(graph_methods(), key=lambda m: (m != "ssumm", m))
    # the curve's numbers (not the summaries) survive a restart: keyed by graph, methods, budgets, error, seed
    key = fingerprint(graph.fingerprint, methods, COMPARE_BUDGETS, error, seed, "v1")
    rows = disk_get("graph-compare", key)
    rows = rows["rows"] if rows else []
    if not rows:
        total = len(methods) * len(COMPARE_BUDGETS)
        for i, m in enumerate(methods):
            for j, b in enumerate(COMPARE_BUDGETS):
                progress((i * len(COMPARE_BUDGETS) + j) / total, desc=f"{m} at budget {b}")
                r = _summarize(graph, m, {"budget": b, "error": error}, seed)
                rows.append({"method": m, "budget": b, **r.metrics()})
        disk_put("graph-compare", key, {"rows": rows})
    table = [
        [
            r["method"],
            r["budget"],
            r["supernodes"],
            r["superedges"],
            round(r["size_fraction"], 4),
            f"{r['l1_error']:.3e}",
            f"{r['l2_error']:.3e}",
            round(r["seconds"], 3),
        ]
        for r in rows
    ]
    fig = plot_size_error(
        rows, error=error, title=f"{graph.name}: size vs {error.upper()} error, every method"
    )
    bits = rows[0]["input_bits"] if rows else 0.0
    text = (
        f"Each method summarised **{graph.name}** ({graph.n:,} nodes, {graph.m:,} edges) at budgets "
        f"{', '.join(map(str, COMPARE_BUDGETS))} of its 2|E| log2|V| = {bits:,.0f} input bits, minimising "
        f"{error.upper()}, seed {seed}. Lower and further left is better; seconds are those of the first run "
        "(repeats are answered from the cache)."
    )
    return fig, table, text


def warmup() -> None:
    """Compile the numba kernels once, so the first click answers quickly."""
    summarize(io.builtin("karate"), "ssumm", budget=0.5)
    summarize(io.builtin("karate"), "saa-gs", budget=0.5)


# ------------------------------------------------------------------------------------------------- layout


def build_tab() -> None:
    methods = sorted(graph_methods(), key=lambda m: (m != "ssumm", m))
    gens = list(io.GENERATORS)
    gr.Markdown(
        "Summarise a graph into supernodes and weighted superedges within a bit budget. **SSumM** "
        "(Lee et al., *SSumM: Sparse Summarization of Massive Graphs*, KDD 2020) merges nodes chosen by "
        "min-hash groups under an MDL saving threshold and sparsifies superedges; compare it with a "
        "random-merge baseline and **SAA-Gs** (LeFevre & Terzi, *GraSS*, SDM 2010) at the same budget."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Graph")
            builtin_name = gr.Dropdown(
                [(f"{k}: {v}", k) for k, v in io.BUILTINS.items()], value="karate", label="Built-in graph"
            )
            with gr.Row():
                generator = gr.Dropdown(
                    [(f"{k}: {io.GENERATORS[k][2]}", k) for k in gens], value="rmat", label="Generator"
                )
                gen_edges = gr.Number(value=20_000, label="Edges", precision=0, minimum=10)
                gen_seed = gr.Number(value=0, label="Graph seed", precision=0)
            upload = gr.File(
                label="Edge list ('u v' per line; .txt .csv .tsv .gz)",
                file_types=[".txt", ".csv", ".tsv", ".gz", ".edges", ".el"],
                type="filepath",
            )
            method = gr.Dropdown(methods, value="ssumm", label="Method")
            budget = gr.Slider(0.01, 1.0, value=0.3, step=0.01, label="Budget (summary bits / input bits)")
            error = gr.Radio(["l2", "l1"], value="l2", label="Error to minimise")
            with gr.Accordion("SSumM parameters", open=False):
                iterations = gr.Slider(1, 100, value=20, step=1, label="T (iterations; theta(t) = 1/(1+t))")
                hashes = gr.Slider(1, 32, value=10, step=1, label="Min-hash functions per iteration")
            seed = gr.Number(value=0, label="Seed", precision=0)
            with gr.Row():
                run_btn = gr.Button("Apply", variant="primary")
                cmp_btn = gr.Button("Compare methods across budgets")
        with gr.Column(scale=3):
            fig_graphs = gr.Plot(label="Original and summary graph")
            fig_adj = gr.Plot(label="Adjacency vs reconstruction")
            metrics = gr.Dataframe(headers=METRIC_HEADERS, label="Metrics", interactive=False)
            cap = gr.Markdown(elem_classes="caption")
            files = gr.File(
                label="Export: summary JSON, superedge list, node -> supernode CSV", file_count="multiple"
            )
            fig_curve = gr.Plot(label="Size vs error, every method")
            cmp_table = gr.Dataframe(headers=METRIC_HEADERS, label="Comparison", interactive=False)
            cmp_cap = gr.Markdown(elem_classes="caption")

    graph_inputs = [source, builtin_name, generator, gen_edges, gen_seed, upload]
    run_btn.click(
        summarize_handler,
        inputs=[*graph_inputs, method, budget, error, iterations, hashes, seed],
        outputs=[fig_graphs, fig_adj, metrics, cap, files],
        api_name="graph_summarize",
    )
    cmp_btn.click(
        compare_handler,
        inputs=[*graph_inputs, error, seed],
        outputs=[fig_curve, cmp_table, cmp_cap],
        api_name="graph_compare",
    )
