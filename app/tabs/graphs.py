"""Graph Summaries tab: SSumM (Lee et al., KDD 2020) and baselines on built-in, generated or uploaded graphs.

Handlers are plain functions (testable without the UI); the layout below only wires them. Methods, their
parameter controls and the comparison's settings come from the registry (:mod:`engine.graphs.compare`);
summaries and comparisons are cached by the engine, downloads are written by :func:`app.export.export`.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import gradio as gr

from app.controls import control, controls, method_dropdown, method_info, values
from app.errors import user_errors
from app.export import export
from app.figures import fit
from app.inputs import as_int, upload_path
from app.progress import gradio_progress, wire_stop
from engine.graphs import io
from engine.graphs.compare import COMPARE, compare, method_params, summarize_cached
from engine.graphs.compare import warmup as warm_kernels
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

__all__ = ["build_tab", "summarize_handler", "compare_handler", "load_graph", "show_source", "warmup"]

TAB_TITLE = "Graph Summaries"
TAB_ORDER = 50

SOURCES = ("Built-in graph", "Generator", "Upload edge list")
DEFAULT_METHOD = "ssumm"  # its parameters are the tab's controls; a method takes those it declares
SHARED = ("budget", "error")  # parameters every graph method takes, shown above the method's own
MAX_SEED = 2**32 - 1
FOLDER = "redex-graphs-"  # prefix of this tab's download folders (inside Gradio's cache folder)


def _span(progress, lo: float, hi: float):
    """``progress`` for one step of a request: the step's 0..1 drawn as lo..hi of the bar."""
    return lambda frac, desc: progress(lo + (hi - lo) * frac, desc)


def load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload, progress=None) -> io.Graph:
    """The graph the inputs describe (the engine keeps it: a generated million-edge graph is built once)."""
    if source == SOURCES[0]:
        return io.cached_builtin(builtin_name or "karate")
    if source == SOURCES[1]:
        m = as_int(gen_edges, "edge count")
        seed = as_int(gen_seed, "graph seed", 0, MAX_SEED)
        return io.cached_generate(generator or "rmat", m, seed=seed, progress=progress)
    if source == SOURCES[2]:
        path = upload_path(upload)
        if not path:
            raise InputError("'Upload edge list' is selected but no file was uploaded")
        return io.cached_edge_list(path, progress=progress)
    raise InputError(f"unknown source {source!r}; choose one of {list(SOURCES)}")


def _served(paths: list[str]) -> list[str]:
    """Move download files into Gradio's cache folder and delete the temporary folder they were written in.

    Gradio serves a returned file by copying it into its cache, which ``delete_cache`` empties on a schedule;
    the folder the export was written in would stay in the temp directory for ever. Files already in the
    cache are served as they are, so after this a request leaves only its downloads behind, and those go
    with ``delete_cache``. Download folders of earlier requests that ``delete_cache`` emptied are removed.
    """
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder())
    for old in cache.glob(f"{FOLDER}*"):
        try:
            old.rmdir()  # only when empty: its files were deleted by delete_cache
        except OSError:
            pass
    dest = cache / f"{FOLDER}{uuid.uuid4().hex}"
    dest.mkdir(parents=True)
    out, made = [], {Path(p).parent for p in paths}
    for p in paths:
        target = dest / Path(p).name
        shutil.move(p, target)
        out.append(str(target))
    for folder in made:
        if folder != dest and folder.name.startswith("redex-"):
            shutil.rmtree(folder, ignore_errors=True)
    return out


def _stem(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts))


def _exports(graph: io.Graph, r) -> list[str]:
    """Summary graph as JSON, its superedges as an edge list, node -> supernode map as CSV."""
    sg = r.summary_graph(graph.labels)
    stem = _stem(Path(graph.name).stem or "graph", r.method, f"b{r.budget:g}", r.error)
    return _served(export(
        sg, stem, json_name=f"{stem}_summary.json", csv={"node_to_supernode": f"{stem}_node_to_supernode.csv"},
        extra={f"{stem}_superedges.txt": sg.edge_list()}, prefix="graphs",
    ))  # fmt: skip


def _compare_exports(res) -> list[str]:
    """The comparison as JSON (``to_json``) and its table as CSV (``tables()['comparison']``)."""
    stem = _stem(Path(res.graph_name).stem or "graph", "compare", res.error, f"seed{res.seed}")
    return _served(export(res, stem, csv={"comparison": f"{stem}_comparison.csv"}, prefix="graphs"))


# the named examples of this tab (app/examples.py) as engine calls with the tab's other defaults, so the
# warm-up puts their summaries in the engine's cache: (source, built-in or generator, method, budget, error)
EXAMPLE_RUNS = (
    (SOURCES[0], "karate", "ssumm", 0.3, "l2"),
    (SOURCES[0], "les_miserables", "ssumm", 0.1, "l1"),
    (SOURCES[1], "sbm", "saa-gs", 0.3, "l2"),
)


def warmup() -> None:
    """Compile the numba kernels, then compute the tab's examples into the engine's cache."""
    warm_kernels()
    for source, name, method, budget, error in EXAMPLE_RUNS:
        graph = load_graph(source, name, name, 20_000, 0, None)
        form = {"budget": budget, "error": error, "iterations": 20, "hashes": 10}
        summarize_cached(graph, method, seed=0, **method_params(method, form))


# ----------------------------------------------------------------------------------------------- handlers


def show_source(source):
    """Show the inputs of the chosen graph source only."""
    return [gr.update(visible=source == s) for s in SOURCES]


def generator_note(generator) -> str:
    if generator not in io.GENERATORS:
        return ""
    return f"{io.GENERATORS[generator][2]}; 10 to {io.generator_cap(generator):,} edges."


@user_errors
def summarize_handler(
    source, builtin_name, generator, gen_edges, gen_seed, upload, method, budget, error, iterations, hashes,
    seed, progress=gr.Progress(),
):  # fmt: skip
    """Summarise the chosen graph with one method: graphs, matrices, metrics, caption, export files."""
    watched = gradio_progress(progress)
    method = method or DEFAULT_METHOD
    form = {"budget": budget, "error": error or "l2", "iterations": iterations, "hashes": hashes}
    params = method_params(method, form)
    get(method, family="graphs").validate(params)  # every setting checked before a graph is built
    seed = as_int(seed, "seed", 0, MAX_SEED)
    watched(0.0, "loading graph")
    graph = load_graph(
        source, builtin_name, generator, gen_edges, gen_seed, upload, _span(watched, 0.0, 0.15)
    )
    watched(0.15, f"{method} on {graph.m:,} edges")
    r = summarize_cached(graph, method, seed=seed, progress=_span(watched, 0.15, 0.9), **params)
    watched(0.9, "drawing")
    fig_g, fig_a = plot_summary_graphs(graph, r), plot_adjacency(graph, r)
    return fit(fig_g), fit(fig_a), metrics_table([r.row()]), caption(graph, r), _exports(graph, r)


@user_errors
def compare_handler(
    source, builtin_name, generator, gen_edges, gen_seed, upload, error, seed, progress=gr.Progress()
):
    """Every graph method at the comparison's budgets on the same graph: size-vs-error curve, table, caption
    and downloads (the comparison's JSON and its table as CSV)."""
    watched = gradio_progress(progress)
    settings = values(COMPARE, ["error", "seed"], [error or "l2", seed])
    graph = load_graph(source, builtin_name, generator, gen_edges, gen_seed, upload, _span(watched, 0.0, 0.1))
    res = compare(graph, settings=settings, progress=_span(watched, 0.1, 1.0))
    title = f"{graph.name}: size vs {res.error.upper()} error, every method"
    return (
        fit(plot_size_error(res.rows, error=res.error, title=title)),
        metrics_table(res.rows),
        comparison_caption(res),
        _compare_exports(res),
    )


# ------------------------------------------------------------------------------------------------- layout


def _stop() -> gr.Button:
    """A narrow Stop button beside its action (wired by :func:`app.progress.wire_stop` below)."""
    return gr.Button("Stop", variant="stop", size="sm", scale=1, min_width=70)


def build_tab() -> None:
    default = get(DEFAULT_METHOD, family="graphs")
    gr.Markdown(
        "Summarise a graph into supernodes and weighted superedges within a bit budget, and compare the "
        "methods at the same budgets (size vs reconstruction error)."
    )
    with gr.Accordion("Methods", open=False):
        gr.Markdown(method_info("graphs"))
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Graph")
            with gr.Group(visible=True) as builtin_box:
                builtin_name = gr.Dropdown(
                    [(f"{k}: {v}", k) for k, v in io.BUILTINS.items()], value="karate", label="Built-in graph"
                )
            with gr.Group(visible=False) as gen_box:
                generator = gr.Dropdown(
                    [(io.GENERATOR_LABELS[k], k) for k in io.GENERATORS], value="rmat", label="Generator"
                )
                gen_note = gr.Markdown(generator_note("rmat"), elem_classes="caption", padding=True)
                with gr.Row():
                    gen_edges = gr.Number(value=20_000, label="Edges", minimum=10, min_width=100)
                    gen_seed = gr.Number(value=0, label="Graph seed", minimum=0, min_width=100)
            with gr.Group(visible=False) as upload_box:
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
            seed = gr.Number(value=0, label="Seed", minimum=0)
            with gr.Row():
                run_btn = gr.Button("Apply", variant="primary", scale=3)
                run_stop = _stop()
            with gr.Row():
                cmp_btn = gr.Button("Compare methods across budgets", scale=3)
                cmp_stop = _stop()
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
            cmp_files = gr.File(label="Export: comparison JSON and table CSV", file_count="multiple")

    source.change(
        show_source, source, [builtin_box, gen_box, upload_box], queue=False, api_visibility="private"
    )
    generator.change(generator_note, generator, gen_note, queue=False, api_visibility="private")
    graph_inputs = [source, builtin_name, generator, gen_edges, gen_seed, upload]
    run_ev = run_btn.click(
        summarize_handler,
        inputs=[*graph_inputs, method, budget, error, own["iterations"], own["hashes"], seed],
        outputs=[fig_graphs, fig_adj, metrics, cap, files],
        api_name="graph_summarize",
    )
    cmp_ev = cmp_btn.click(
        compare_handler,
        inputs=[*graph_inputs, error, seed],
        outputs=[fig_curve, cmp_table, cmp_cap, cmp_files],
        api_name="graph_compare",
    )
    wire_stop(run_stop, run_ev)
    wire_stop(cmp_stop, cmp_ev)
