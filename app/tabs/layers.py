"""Layer Redundancy tab: LLM-Drop similarity scan, dropping, and the drop-strategy comparison.

Handlers are plain functions (testable without the UI); the layout below only wires them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from app.errors import user_errors
from app.inputs import TEXT_SOURCES, as_int, resolve_text
from engine.config import LIMITS
from engine.layers.curve import STRATEGIES, drop_curve
from engine.layers.drop import DEFAULT_PROMPT, DropPlan, evaluate_drop, plan_drop
from engine.layers.pipeline import (
    ScanRequest,
    calibration_windows,
    full_eval_cache,
    heldout_windows,
    run_scan,
)
from engine.models import BUILTIN_MODELS
from engine.registry import InputError, by_family
from visualizers.layers import (
    caption_curve,
    caption_drop,
    caption_scan,
    plot_drop_curve,
    plot_head_similarity,
    plot_hidden_similarity,
    plot_importance_bars,
    plot_sublayer_heatmap,
)
from visualizers.style import figure_png

TAB_TITLE = "Layer Redundancy"
TAB_ORDER = 10

SOURCES = TEXT_SOURCES
DROP_METHODS = [m.name for m in by_family("layers") if m.name.endswith("-drop")]


# ------------------------------------------------------------------------------------------------ helpers


def _request(model, allow_net, source, text, upload, samples, seq_len, head_layer) -> ScanRequest:
    user_text = resolve_text(source, text, upload)
    return ScanRequest(
        model=(model or "").strip(),
        text=user_text,
        samples=as_int(samples, "sample count"),
        seq_len=as_int(seq_len, "sample length"),
        head_layer=as_int(head_layer, "head layer"),
        allow_network=bool(allow_net),
    )


def _outdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="redex-layers-"))


def _progress(progress):
    return lambda frac, desc: progress(frac, desc=desc)


# ----------------------------------------------------------------------------------------------- handlers


@user_errors
def scan_handler(
    model, allow_net, source, text, upload, samples, seq_len, head_layer, progress=gr.Progress()
):
    req = _request(model, allow_net, source, text, upload, samples, seq_len, head_layer)
    progress(0.0, desc=f"loading {req.model}")
    loaded, _, scan = run_scan(req, progress=_progress(progress))
    out = _outdir()
    (out / "layer_similarity.csv").write_text(scan.table_csv("layers"))
    (out / "layer_scan.json").write_text(scan.to_json())
    state = {"request": req.__dict__, "n_layers": scan.n_layers, "kind": loaded.kind}
    choices = list(range(scan.n_layers))
    default = plan_drop(loaded, None, strategy="attn", n=min(4, scan.n_layers), scan=scan)
    return (
        caption_scan(scan),
        plot_sublayer_heatmap(scan),
        plot_importance_bars(scan),
        plot_hidden_similarity(scan),
        plot_head_similarity(scan),
        gr.update(choices=choices, value=list(default.attn)),
        gr.update(choices=choices, value=[]),
        gr.update(choices=choices, value=[]),
        [str(out / "layer_similarity.csv"), str(out / "layer_scan.json")],
        state,
    )


def _state_request(state) -> ScanRequest:
    if not state or "request" not in state:
        raise InputError("run Compute first: there is no scan to work from")
    return ScanRequest(**state["request"])


@user_errors
def preselect_handler(state, method, n, iterative, seed, progress=gr.Progress()):
    req = _state_request(state)
    loaded, corpus, scan = run_scan(req)
    n = as_int(n, "layers to drop")
    if method == "random-drop":
        plan = plan_drop(loaded, None, strategy="random", n=n, random_kind="attn", seed=as_int(seed, "seed"))
    else:
        strategy = method.removesuffix("-drop")
        windows = calibration_windows(loaded, corpus, req.samples, req.seq_len) if iterative else None
        plan = plan_drop(
            loaded, windows, strategy=strategy, n=n, iterative=bool(iterative), scan=scan,
            progress=_progress(progress),
        )  # fmt: skip
    return list(plan.attn), list(plan.mlp), list(plan.block)


@user_errors
def apply_handler(state, attn, mlp, block, prompt, max_new_tokens, progress=gr.Progress()):
    req = _state_request(state)
    loaded, corpus, scan = run_scan(req)
    plan = DropPlan(
        attn=tuple(sorted(int(i) for i in attn or [])),
        mlp=tuple(sorted(int(i) for i in mlp or [])),
        block=tuple(sorted(int(i) for i in block or [])),
        strategy="manual",
    )
    if plan.count == 0:
        raise InputError("pick at least one layer to drop (tick attention, MLP or block layers)")
    max_new = as_int(max_new_tokens, "new tokens")
    if not 1 <= max_new <= LIMITS.max_new_tokens:
        raise InputError(f"new tokens must be in [1, {LIMITS.max_new_tokens}], got {max_new}")
    prompt = (prompt or "").strip() or DEFAULT_PROMPT
    if len(prompt) > 2000:
        raise InputError("the prompt is over 2,000 characters")
    progress(0.1, desc="evaluating full and dropped model")
    heldout = heldout_windows(loaded, corpus, min(req.seq_len, 256))
    ev = evaluate_drop(
        loaded, plan, heldout, prompt=prompt, max_new_tokens=max_new, full_cache=full_eval_cache()
    )
    rows = []
    for k in ev.full:
        if k == "sample":
            continue
        f, d = ev.full[k], ev.pruned.get(k)
        change = (d - f) / f if isinstance(f, int | float) and f else None
        rows.append([k, _fmt(f), _fmt(d), f"{change:+.1%}" if change is not None else ""])
    out = _outdir()
    (out / "drop_eval.json").write_text(ev.to_json())
    (out / "drop_eval.csv").write_text(ev.table_csv("metrics"))
    return (
        caption_drop(ev),
        rows,
        ev.full.get("sample", "(encoder: no generation)"),
        ev.pruned.get("sample", "(encoder: no generation)"),
        plot_sublayer_heatmap(scan, dropped=ev.dropped),
        [str(out / "drop_eval.csv"), str(out / "drop_eval.json")],
    )


def _fmt(x):
    if isinstance(x, float):
        return f"{x:,.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


@user_errors
def curve_handler(state, strategies, max_n, step, n_seeds, progress=gr.Progress()):
    req = _state_request(state)
    loaded, corpus, scan = run_scan(req)
    if not strategies:
        raise InputError("pick at least one strategy to compare")
    max_n, step, n_seeds = as_int(max_n, "max dropped"), as_int(step, "step"), as_int(n_seeds, "random seeds")
    if not 1 <= step <= max_n <= scan.n_layers:
        raise InputError(f"need 1 <= step <= max dropped <= {scan.n_layers}")
    if not 1 <= n_seeds <= 5:
        raise InputError("random seeds must be between 1 and 5")
    heldout = heldout_windows(loaded, corpus, min(req.seq_len, 256), max_windows=4)
    curve = drop_curve(
        loaded, scan, heldout, strategies=strategies, counts=range(0, max_n + 1, step),
        seeds=[42 + i for i in range(n_seeds)], progress=_progress(progress),
    )  # fmt: skip
    out = _outdir()
    fig = plot_drop_curve(curve)
    (out / "drop_curve.csv").write_text(curve.table_csv("curve"))
    (out / "drop_curve.json").write_text(curve.to_json())
    try:
        (out / "drop_curve.png").write_bytes(figure_png(fig))
        files = [str(out / "drop_curve.png")]
    except Exception:  # noqa: BLE001 - PNG export needs chromium; the data files still download
        files = []
    files += [str(out / "drop_curve.csv"), str(out / "drop_curve.json")]
    return caption_curve(curve), fig, files


@user_errors
def heatmap_png_handler(state):
    req = _state_request(state)
    _, _, scan = run_scan(req)
    out = _outdir()
    (out / "sublayer_similarity.png").write_bytes(figure_png(plot_sublayer_heatmap(scan)))
    (out / "importance.png").write_bytes(figure_png(plot_importance_bars(scan)))
    return [str(out / "sublayer_similarity.png"), str(out / "importance.png")]


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
            samples = gr.Slider(1, 64, value=8, step=1, label="Samples (calibration windows)")
            seq_len = gr.Slider(16, 1024, value=256, step=16, label="Sample length (tokens)")
            head_layer = gr.Number(-1, precision=0, label="Layer for head similarity (-1 = last)")
            compute = gr.Button("Compute", variant="primary")
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
            method = gr.Dropdown(DROP_METHODS, value="attn-drop", label="Ranking")
            n_drop = gr.Slider(0, 16, value=4, step=1, label="Sublayers to drop")
            iterative = gr.Checkbox(False, label="Iterative (re-score after each drop)")
            seed = gr.Number(42, precision=0, label="Seed (random-drop)")
            preselect = gr.Button("Preselect by ranking")
            prompt = gr.Textbox(DEFAULT_PROMPT, label="Generation prompt")
            max_new = gr.Slider(4, LIMITS.max_new_tokens, value=32, step=4, label="New tokens")
        with gr.Column(scale=3):
            attn_sel = gr.CheckboxGroup([], label="Drop attention of layers")
            mlp_sel = gr.CheckboxGroup([], label="Drop MLP of layers")
            block_sel = gr.CheckboxGroup([], label="Drop whole block of layers")
            apply = gr.Button("Apply drop", variant="primary")
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
                list(STRATEGIES), value=["attn", "mlp", "block", "random-attn"], label="Strategies"
            )
            max_n = gr.Slider(1, 16, value=8, step=1, label="Max dropped")
            step = gr.Slider(1, 8, value=2, step=1, label="Step")
            n_seeds = gr.Slider(1, 5, value=1, step=1, label="Random seeds")
            run_curve = gr.Button("Compare strategies", variant="primary")
        with gr.Column(scale=3):
            curve_caption = gr.Markdown(elem_classes="caption")
            curve_plot = gr.Plot(label="Perplexity vs dropped")
            curve_files = gr.File(label="Curve (PNG, CSV, JSON)", file_count="multiple")

    compute.click(
        scan_handler,
        [model, allow_net, source, text, upload, samples, seq_len, head_layer],
        [caption, heat, bars, hidden, heads, attn_sel, mlp_sel, block_sel, scan_files, state],
        api_name="layers_scan",
    )
    png_btn.click(heatmap_png_handler, [state], [png_files], api_name="layers_png")
    preselect.click(preselect_handler, [state, method, n_drop, iterative, seed], [attn_sel, mlp_sel, block_sel],
                    api_name="layers_preselect")  # fmt: skip
    apply.click(
        apply_handler,
        [state, attn_sel, mlp_sel, block_sel, prompt, max_new],
        [drop_caption, table, full_sample, drop_sample, heat, drop_files],
        api_name="layers_apply",
    )
    run_curve.click(curve_handler, [state, strategies, max_n, step, n_seeds], [curve_caption, curve_plot, curve_files],
                    api_name="layers_curve")  # fmt: skip
