"""Layer Redundancy tab: LLM-Drop similarity scan, dropping, and the drop-strategy comparison.

Handlers are plain functions (testable without the UI); the layout below only wires them.
"""

from __future__ import annotations

import gradio as gr

from app.controls import control, controls, method_dropdown, values
from app.errors import user_errors
from app.export import export
from app.figures import fit
from app.inputs import TEXT_SOURCES, resolve_text
from app.progress import gradio_progress, wire_stop
from engine.layers.curve import CURVE, DEFAULT_CURVE, compare, curve_choices
from engine.layers.pipeline import (
    APPLY,
    DEFAULT_DROP,
    ScanRequest,
    default_plan,
    drop_plan,
    evaluate_plan,
    manual_plan,
    run_scan,
)
from engine.models import BUILTIN_MODELS
from engine.registry import InputError, get
from visualizers.layers import (
    caption_curve,
    caption_drop,
    caption_scan,
    drop_metrics_rows,
    plot_drop_curve,
    plot_head_similarity,
    plot_hidden_similarity,
    plot_importance_bars,
    plot_sublayer_heatmap,
)

TAB_TITLE = "Layer Redundancy"
TAB_ORDER = 10

SOURCES = TEXT_SOURCES
SCAN_PARAMS = ("samples", "seq_len", "head_layer")
_NO_SAMPLE = "(encoder: no generation)"


# ------------------------------------------------------------------------------------------------ helpers


def _request(model, allow_net, source, text, upload, samples, seq_len, head_layer) -> ScanRequest:
    if source not in SOURCES:
        raise InputError(f"unknown text source {source!r}; choose one of {list(SOURCES)}")
    if not isinstance(model, str | None):
        raise InputError(f"the model must be a name, got {type(model).__name__}")
    user_text = resolve_text(source, text, upload)
    checked = values(get("layer-similarity", family="layers"), SCAN_PARAMS, (samples, seq_len, head_layer))
    return ScanRequest(model=(model or "").strip(), text=user_text, allow_network=bool(allow_net), **checked)


def _state_request(state) -> ScanRequest:
    if not state or "request" not in state:
        raise InputError("run Compute first: there is no scan to work from")
    return ScanRequest(**state["request"])


def _files(paths: list[str]) -> list[str]:
    """Downloads in the order the tab has always listed them: PNG, then CSV, then JSON."""
    rank = {".png": 0, ".csv": 1, ".json": 2}
    return sorted(paths, key=lambda p: rank.get(p[p.rfind(".") :], 3))


def _stop_button() -> gr.Button:
    """A narrow Stop button beside its action (wired with ``wire_stop`` once the events exist)."""
    return gr.Button("Stop", variant="stop", size="sm", scale=0, min_width=80)


# ----------------------------------------------------------------------------------------------- handlers


@user_errors
def scan_handler(
    model, allow_net, source, text, upload, samples, seq_len, head_layer, progress=gr.Progress()
):
    req = _request(model, allow_net, source, text, upload, samples, seq_len, head_layer)
    watched = gradio_progress(progress)
    watched(0.0, f"loading {req.model}")
    loaded, _, scan = run_scan(req, progress=watched)
    files = export(scan, "layer_scan", csv={"layers": "layer_similarity.csv"}, prefix="layers")
    state = {"request": req.__dict__, "n_layers": scan.n_layers, "kind": loaded.kind}
    choices = list(range(scan.n_layers))
    default = default_plan(req)
    return (
        caption_scan(scan),
        fit(plot_sublayer_heatmap(scan)),
        fit(plot_importance_bars(scan)),
        fit(plot_hidden_similarity(scan)),
        fit(plot_head_similarity(scan)),
        gr.update(choices=choices, value=list(default.attn)),
        gr.update(choices=choices, value=[]),
        gr.update(choices=choices, value=[]),
        _files(files),
        state,
    )


@user_errors
def preselect_handler(state, method, n, iterative, seed, progress=gr.Progress()):
    values_ = {"n": n, "iterative": iterative, "seed": seed}
    plan = drop_plan(_state_request(state), method, values_, progress=gradio_progress(progress))
    return list(plan.attn), list(plan.mlp), list(plan.block)


@user_errors
def apply_handler(state, attn, mlp, block, prompt, max_new_tokens, progress=gr.Progress()):
    req = _state_request(state)
    plan = manual_plan(attn, mlp, block)
    settings = {"prompt": prompt, "max_new_tokens": max_new_tokens}
    ev = evaluate_plan(req, plan, settings, progress=gradio_progress(progress))
    _, _, scan = run_scan(req)
    files = export(ev, "drop_eval", csv={"metrics": "drop_eval.csv"}, prefix="layers")
    return (
        caption_drop(ev),
        drop_metrics_rows(ev),
        ev.full.get("sample", _NO_SAMPLE),
        ev.pruned.get("sample", _NO_SAMPLE),
        fit(plot_sublayer_heatmap(scan, dropped=ev.dropped)),
        _files(files),
    )


@user_errors
def curve_handler(state, strategies, max_n, step, n_seeds, progress=gr.Progress()):
    settings = {"max_n": max_n, "step": step, "seeds": n_seeds}
    curve = compare(_state_request(state), strategies or [], settings, progress=gradio_progress(progress))
    fig = plot_drop_curve(curve)
    files = export(curve, "drop_curve", csv={"curve": "drop_curve.csv"}, figures={"drop_curve": fig})
    return caption_curve(curve), fit(fig), _files(files)


@user_errors
def heatmap_png_handler(state):
    _, _, scan = run_scan(_state_request(state), progress=gradio_progress(None))
    figs = {"sublayer_similarity": plot_sublayer_heatmap(scan), "importance": plot_importance_bars(scan)}
    return export(None, "layers", figures=figs)


def warmup() -> None:
    """Load SmolLM2 (converting its GGUF once) and compute the default scan, so the first click is instant."""
    run_scan(ScanRequest())


# ------------------------------------------------------------------------------------------------- layout


def build_tab() -> None:
    gr.Markdown(
        "Which transformer layers barely change the residual stream? **LLM-Drop** (He et al. 2024, "
        "*What Matters in Transformers? Not All Attention is Needed*, arXiv:2406.15786) scores each attention, "
        "MLP and block by the mean cosine similarity of its input and output; the most similar can be dropped."
    )
    state = gr.State({})
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            model = gr.Dropdown(
                choices=list(BUILTIN_MODELS), value="smollm2", allow_custom_value=True, label="Model",
                info="built-in, a local directory, or a Hugging Face id (needs 'allow network')",
            )  # fmt: skip
            allow_net = gr.Checkbox(False, label="Allow network (hub models)")
            source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Text")
            text = gr.Textbox(
                lines=4, label="Pasted text", placeholder="paste text here (used when selected)"
            )
            upload = gr.File(
                label="Text file (.txt, .md, .gz)", file_types=[".txt", ".md", ".gz", ".csv", ".json"]
            )
            scan_controls = controls(get("layer-similarity", family="layers"), only=SCAN_PARAMS)
            samples, seq_len, head_layer = (scan_controls[n] for n in SCAN_PARAMS)
            with gr.Row():
                compute = gr.Button("Compute", variant="primary")
                compute_stop = _stop_button()
        with gr.Column(scale=3):
            caption = gr.Markdown(elem_classes="caption")
            heat = gr.Plot(label="Sublayer similarity")
            bars = gr.Plot(label="Importance")
            with gr.Row():
                hidden = gr.Plot(label="Hidden-state similarity")
                heads = gr.Plot(label="Head similarity")
            with gr.Row():
                scan_files = gr.File(label="Scan data (CSV, JSON)", file_count="multiple")
                png_btn = gr.Button("Render PNGs")
                png_files = gr.File(label="Figures (PNG)", file_count="multiple")

    gr.Markdown("### Drop layers and compare with the full model")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            method = method_dropdown("layers", role="drop", value=DEFAULT_DROP, label="Ranking")
            scored = get(DEFAULT_DROP, family="layers")
            n_drop, iterative = (control(scored.param(n)) for n in ("n", "iterative"))
            seed = control(get(scored.control, family="layers").param("seed"))  # its random control's seed
            with gr.Row():
                preselect = gr.Button("Preselect by ranking")
                preselect_stop = _stop_button()
            prompt, max_new = controls(APPLY).values()
        with gr.Column(scale=3):
            attn_sel = gr.CheckboxGroup([], label="Drop attention of layers")
            mlp_sel = gr.CheckboxGroup([], label="Drop MLP of layers")
            block_sel = gr.CheckboxGroup([], label="Drop whole block of layers")
            with gr.Row():
                apply = gr.Button("Apply drop", variant="primary")
                apply_stop = _stop_button()
            drop_caption = gr.Markdown(elem_classes="caption")
            table = gr.Dataframe(headers=["metric", "full", "dropped", "change"], interactive=False)
            with gr.Row():
                full_sample = gr.Textbox(label="Full model says", lines=4)
                drop_sample = gr.Textbox(label="Dropped model says", lines=4)
            drop_files = gr.File(label="Evaluation (CSV, JSON)", file_count="multiple")

    gr.Markdown("### Compare drop strategies: held-out perplexity vs sublayers dropped")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            strategies = gr.CheckboxGroup(
                list(curve_choices()), value=list(DEFAULT_CURVE), label="Strategies"
            )
            max_n, step, n_seeds = controls(CURVE).values()
            with gr.Row():
                run_curve = gr.Button("Compare strategies", variant="primary")
                curve_stop = _stop_button()
        with gr.Column(scale=3):
            curve_caption = gr.Markdown(elem_classes="caption")
            curve_plot = gr.Plot(label="Perplexity vs dropped")
            curve_files = gr.File(label="Curve (PNG, CSV, JSON)", file_count="multiple")

    scan_ev = compute.click(
        scan_handler,
        [model, allow_net, source, text, upload, samples, seq_len, head_layer],
        [caption, heat, bars, hidden, heads, attn_sel, mlp_sel, block_sel, scan_files, state],
        api_name="layers_scan",
    )
    png_btn.click(heatmap_png_handler, [state], [png_files], api_name="layers_png")
    preselect_ev = preselect.click(preselect_handler, [state, method, n_drop, iterative, seed],
                                   [attn_sel, mlp_sel, block_sel], api_name="layers_preselect")  # fmt: skip
    apply_ev = apply.click(
        apply_handler,
        [state, attn_sel, mlp_sel, block_sel, prompt, max_new],
        [drop_caption, table, full_sample, drop_sample, heat, drop_files],
        api_name="layers_apply",
    )
    curve_ev = run_curve.click(curve_handler, [state, strategies, max_n, step, n_seeds],
                               [curve_caption, curve_plot, curve_files], api_name="layers_curve")  # fmt: skip
    for btn, ev in ((compute_stop, scan_ev), (preselect_stop, preselect_ev), (apply_stop, apply_ev),
                    (curve_stop, curve_ev)):  # fmt: skip
        wire_stop(btn, ev)
