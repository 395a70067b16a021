"""Graph Summaries tab: SSumM (Lee et al., KDD 2020) and baselines on built-in, generated or uploaded graphs.

Handlers are plain functions (testable without the UI); the layout below only wires them. Methods, their
parameter controls and the comparison's settings come from the registry (:mod:`engine.graphs.compare`);
summaries and comparisons are cached by the engine, downloads are written by :func:`app.export.export`.
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from app.controls import control, controls, method_dropdown, method_info, values
from app.errors import user_errors
from app.export import export
from app.inputs import as_int, upload_path
from app.progress import gradio_progress
from engine.graphs import io
from engine.graphs.compare import COMPARE, compare, method_params, summarize_cached, warmup
from engine.registry import InputError, get
from visualizers.graphs import (
    METRIC_HEADERS,
    caption,
    comparison_caption,
    metrics_table,
    plot_adjacency,
    plot_size_error,
    plot_summary_graphs,
)

__all__ = ["build_tab", "summarize_handler", "compare_handler", "load_graph", "warmup"]

TAB_TITLE = "Graph Summaries"
TAB_ORDER = 50

SOURCES = ("Built-in graph", "Generator", "Upload edge list")
DEFAULT_METHOD = "ssumm"  # its parameters are the tab's controls; a method takes those it declares
SHARED = ("budget", "error")  # parameters every graph method takes, shown above the method's own


def load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload) -> io.Graph:
    """The graph the inputs describe (the engine keeps it: a generated million-edge graph is built once)."""
    if source == SOURCES[0]:
        return io.cached_builtin(builtin_name or "karate")
    if source == SOURCES[1]:
        m, seed = as_int(gen_edges, "edge count"), as_int(gen_seed, "generator seed")
        return io.cached_generate(generator or "rmat", m, seed=seed)
    if source == SOURCES[2]:
        path = upload_path(upload)
        if not path:
            raise InputError("'Upload edge list' is selected but no file was uploaded")
        return io.cached_edge_list(path)
    raise InputError(f"unknown source {source!r}; choose one of {list(SOURCES)}")


def _exports(graph: io.Graph, r) -> list[str]:
    """Summary graph as JSON, its superedges as an edge list, node -> supernode map as CSV."""
    sg = r.summary_graph(graph.labels)
    stem = re.sub(
        r"[^A-Za-z0-9_.-]+", "_", f"{Path(graph.name).stem or 'graph'}_{r.method}_b{r.budget:g}_{r.error}"
    )
    return export(
        sg, stem, json_name=f"{stem}_summary.json", csv={"node_to_supernode": f"{stem}_node_to_supernode.csv"},
        extra={f"{stem}_superedges.txt": sg.edge_list()}, prefix="graphs",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- handlers


@user_errors
def summarize_handler(
    source, builtin_name, generator, gen_edges, gen_seed, upload, method, budget, error, iterations, hashes,
    seed, progress=gr.Progress(),
):  # fmt: skip
    """Summarise the chosen graph with one method: graphs, matrices, metrics, caption, export files."""
    progress(0.05, desc="loading graph")
    graph = load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload)
    method = method or DEFAULT_METHOD
    progress(0.25, desc=f"{method} on {graph.m:,} edges")
    form = {"budget": budget, "error": error or "l2", "iterations": iterations, "hashes": hashes}
    r = summarize_cached(graph, method, seed=as_int(seed, "seed"), **method_params(method, form))
    progress(0.75, desc="drawing")
    fig_g, fig_a = plot_summary_graphs(graph, r), plot_adjacency(graph, r)
    return fig_g, fig_a, metrics_table([r.row()]), caption(graph, r), _exports(graph, r)


@user_errors
def compare_handler(
    source, builtin_name, generator, gen_edges, gen_seed, upload, error, seed, progress=gr.Progress()
):
    """Every graph method at the comparison's budgets on the same graph: size-vs-error curve and table."""
    graph = load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload)
    settings = values(COMPARE, ["error", "seed"], [error or "l2", seed])
    res = compare(graph, settings=settings, progress=gradio_progress(progress))
    title = f"{graph.name}: size vs {res.error.upper()} error, every method"
    return (
        plot_size_error(res.rows, error=res.error, title=title),
        metrics_table(res.rows),
        comparison_caption(res),
    )


# ------------------------------------------------------------------------------------------------- layout


def build_tab() -> None:
    default = get(DEFAULT_METHOD, family="graphs")
    gens = list(io.GENERATORS)
    gr.Markdown(
        "Summarise a graph into supernodes and weighted superedges within a bit budget, and compare the "
        "methods at the same budgets (size vs reconstruction error)."
    )
    with gr.Accordion("Methods", open=False):
        gr.Markdown(method_info("graphs"))
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
            method = method_dropdown("graphs", value=DEFAULT_METHOD, label="Method")
            budget = control(default.param("budget"), value=0.3)
            error = control(default.param("error"))
            with gr.Accordion(f"{default.name} parameters", open=False):
                own = controls(default, only=[p.name for p in default.params if p.name not in SHARED])
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
        inputs=[*graph_inputs, method, budget, error, own["iterations"], own["hashes"], seed],
        outputs=[fig_graphs, fig_adj, metrics, cap, files],
        api_name="graph_summarize",
    )
    cmp_btn.click(
        compare_handler,
        inputs=[*graph_inputs, error, seed],
        outputs=[fig_curve, cmp_table, cmp_cap],
        api_name="graph_compare",
    )
