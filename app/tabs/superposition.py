"""Superposition tab: effective-feature counts F = exp(H) from sparse autoencoders (Bereska et al. 2025).

Four views: one layer (metrics + UMAP feature map), every layer (F, N, psi with a sensitivity band), toy models
with known ground truth (Elhage et al. 2022), and two settings side by side. Each view runs the family's
registered method of one role (``measure``, ``scan``, ``toy``); its parameter controls are built from that
method's ``Param`` table (app/controls.py), the engine checks the values, caches the results and runs the
comparison (engine/superposition/compare.py). Handlers are plain functions (testable without the UI); the
layout at the bottom only wires them.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.controls import control, controls, method_info, values
from app.errors import user_errors
from app.export import export
from app.figures import fit
from app.inputs import TEXT_SOURCES, as_int, resolve_text, upload_path
from app.progress import gradio_progress, stop_button, wire_stop
from engine.models import BUILTIN_MODELS
from engine.registry import InputError, Method, by_family
from engine.superposition.shipped import COMPARE_LAYERS, DEFAULT_LAYER, DEFAULT_SAE
from visualizers.superposition import (
    caption_compare,
    caption_feature_map,
    caption_layer,
    caption_scan,
    caption_toy,
    compare_rows,
    metrics_rows,
    plot_compare,
    plot_feature_map,
    plot_layer_scan,
    plot_toy_gram,
    plot_toy_sweep,
    plot_training,
    scan_rows,
    toy_rows,
)

TAB_TITLE = "Superposition"
TAB_ORDER = 40
FAMILY = "superposition"

MEASURE_FIELDS = ("expansion", "l1", "max_activations", "max_epochs")  # the one-layer view's SAE controls
SCAN_FIELDS = ("max_activations", "max_epochs", "sweep")
TOY_FIELDS = ("n_features", "n_hidden", "steps", "sae_l1", "sae_expansion")
CELL_FIELDS = ("l1", "expansion")  # per side of the comparison; the shared ones are engine COMPARE settings


# ------------------------------------------------------------------------------------------------ helpers


def _method(role: str) -> Method:
    """The family's registered method of ``role`` (the first registered, when several share it)."""
    found = by_family(FAMILY, role=role)
    if not found:
        raise InputError(f"no {FAMILY} method with role {role!r} is registered")
    return found[0]


def _sites() -> dict[str, str]:
    """UI label -> site key, from the engine's list of sites."""
    from engine.superposition.activations import SITE_LABELS

    return {label: key for key, label in SITE_LABELS.items()}


def _site(label: str) -> str:
    sites = _sites()
    if label in sites:
        return sites[label]
    if label in sites.values():
        return label
    raise InputError(f"site must be one of {list(sites)}, got {label!r}")


def _source(source) -> str:
    if source not in TEXT_SOURCES:
        raise InputError(f"text source must be one of {list(TEXT_SOURCES)}, got {source!r}")
    return source


def _progress(progress):
    """The engine's watched progress callback: it raises when the client pressed Stop or left."""
    return gradio_progress(progress)


def _sae_files(files) -> tuple[str | None, str | None]:
    """(weights, cfg) from an upload of sae_weights.safetensors [+ cfg.json]; anything else is refused."""
    if not files:
        return None, None
    if isinstance(files, str | dict):
        files = [files]
    paths = [Path(p) for p in (upload_path(f) for f in files) if p]
    weights = [p for p in paths if p.suffix == ".safetensors"]
    cfgs = [p for p in paths if p.suffix == ".json"]
    other = [p.name for p in paths if p.suffix not in (".safetensors", ".json")]
    if other:
        raise InputError(f"SAE upload takes a .safetensors file and a cfg.json only; got {other}")
    if len(weights) != 1:
        raise InputError(
            "upload exactly one .safetensors file with the SAE weights (and optionally its cfg.json)"
        )
    return str(weights[0]), (str(cfgs[0]) if cfgs else None)


def _stem(model: str) -> str:
    return (model or "model").replace("/", "_")


# ------------------------------------------------------------------------------------------------ handlers


@user_errors
def measure_handler(
    model, allow_net, layer, site, source, text, upload, expansion, l1, max_acts, max_epochs, sae_files,
    progress=gr.Progress(),
):  # fmt: skip
    """Train (or load) an SAE on one layer; returns caption, metrics table, training plot, files, and the
    measurement itself (kept in a gr.State for the feature map that follows)."""
    method = _method("measure")
    weights, cfg = _sae_files(sae_files)
    m = method(
        (model or "").strip(),
        as_int(layer, "layer", 0, 10_000),
        site=_site(site),
        text=resolve_text(_source(source), text, upload),
        sae_path=weights,
        sae_cfg_path=cfg,
        allow_network=bool(allow_net),
        progress=_progress(progress),
        **values(method, MEASURE_FIELDS, [expansion, l1, max_acts, max_epochs]),
    )
    warning = "; ".join(m.warnings())
    fig = plot_training(m.losses, warning=warning, best_epoch=m.best_epoch) if m.losses else None
    files = export(m, f"sae-{_stem(m.model)}-L{m.layer}-{m.site}")
    return caption_layer(m), metrics_rows(m), fit(fig), files, m


@user_errors
def feature_map_handler(measurement, progress=gr.Progress()):
    """UMAP of the measured SAE's decoder directions (the measurement comes from the step before)."""
    from engine.superposition.feature_map import feature_map

    if measurement is None:
        raise InputError("measure a layer first; the feature map draws that measurement's SAE")
    if measurement.sae is None and measurement.precomputed:
        from engine.superposition.shipped import feature_map_for

        if feature_map_for(measurement) is None:  # a shipped layer without a shipped map: say so, no error
            return None, (f"No feature map is shipped for layer {measurement.layer} (only for layer "
                          f"{DEFAULT_LAYER}); change any setting to train this layer live and map it.")  # fmt: skip
    fm = feature_map(measurement, progress=_progress(progress))
    return fit(plot_feature_map(fm)), caption_feature_map(fm)


@user_errors
def scan_handler(model, allow_net, site, layers, max_acts, max_epochs, sweep, progress=gr.Progress()):
    """F, N and psi for every chosen layer, with the lambda / dictionary-size sensitivity band."""
    method = _method("scan")
    scan = method(
        (model or "").strip(),
        layers,
        site=_site(site),
        allow_network=bool(allow_net),
        progress=_progress(progress),
        **values(method, SCAN_FIELDS, [max_acts, max_epochs, sweep]),
    )
    fig = plot_layer_scan(scan)
    files = export(scan, f"sae-scan-{_stem(scan.model)}")
    return caption_scan(scan), fit(fig), scan_rows(scan), files


@user_errors
def toy_handler(n_features, n_hidden, sparsities, steps, l1, expansion, progress=gr.Progress()):
    """Toy models over a sparsity sweep: measured F vs ground truth, and the W^T W geometry."""
    method = _method("toy")
    res = method(
        sparsities,
        progress=_progress(progress),
        **values(method, TOY_FIELDS, [n_features, n_hidden, steps, l1, expansion]),
    )
    sweep, gram = plot_toy_sweep(res), plot_toy_gram(res)
    files = export(res, res.provenance.method)
    return caption_toy(res), fit(sweep), fit(gram), toy_rows(res), files


@user_errors
def compare_handler(
    model_a, layer_a, site_a, l1_a, exp_a, model_b, layer_b, site_b, l1_b, exp_b, max_acts, max_epochs,
    progress=gr.Progress(),
):  # fmt: skip
    """Two layers, models or SAE settings on the same corpus, drawn on identical axes."""
    from engine.superposition.compare import COMPARE, compare

    method = _method("measure")
    cells = [
        {"label": label, "method": method.name, "model": model, "layer": as_int(layer, f"layer {label}", 0, 10_000),
         "site": _site(site), "params": values(method, CELL_FIELDS, [l1, exp])}
        for label, model, layer, site, l1, exp in (("A", model_a, layer_a, site_a, l1_a, exp_a),
                                                   ("B", model_b, layer_b, site_b, l1_b, exp_b))
    ]  # fmt: skip
    shared = values(COMPARE, ("max_activations", "max_epochs"), [max_acts, max_epochs])
    cmp = compare(None, cells, shared, progress=_progress(progress))
    a, b = cmp.cells
    fig = plot_compare(a, b)
    files = export(cmp, "compare")
    return caption_compare(a, b), fit(fig), compare_rows(a, b), files


def warmup() -> None:
    """Compile umap's numba kernels so the first feature map is quick."""
    from engine.superposition.feature_map import warm_umap

    warm_umap()


# ------------------------------------------------------------------------------------------------ layout


def _cell_controls(method: Method, title: str, layer: int, models: list[str]) -> list:
    gr.Markdown(f"**{title}**")
    model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model")
    lay = gr.Number(layer, label="Layer")
    site = gr.Radio(list(_sites()), value=next(iter(_sites())), label="Site")
    c = controls(method, only=CELL_FIELDS, labels={"l1": "lambda", "expansion": "Expansion"},
                 values={k: DEFAULT_SAE[k] for k in CELL_FIELDS})  # fmt: skip
    return [model, lay, site, c["l1"], c["expansion"]]


def build_tab() -> None:
    from engine.superposition.compare import COMPARE
    from engine.superposition.toy import LEVELS

    measure, scan, toy = _method("measure"), _method("scan"), _method("toy")
    sites = list(_sites())
    gr.Markdown(
        "How many features does a layer pack into its neurons? A tied sparse autoencoder (SAE) splits the "
        "activations into features; **F = exp(H)** of the share of activation mass p<sub>i</sub> each feature "
        "carries is the *effective* number of features, and **psi = F / N** compares it with the N neurons "
        "(Bereska et al., *Superposition as Lossy Compression*, 2025). psi > 1: more features than dimensions."
    )
    with gr.Accordion("Methods", open=False):
        gr.Markdown(method_info(FAMILY))
    models = list(BUILTIN_MODELS)
    with gr.Tab("One layer"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model",
                                    info="built-in, a local directory, or a Hugging Face id")  # fmt: skip
                allow_net = gr.Checkbox(False, label="Allow network (hub models)")
                layer = gr.Number(DEFAULT_LAYER, label="Layer (0-based)")
                site = gr.Radio(sites, value=sites[0], label="Site")
                source = gr.Radio(list(TEXT_SOURCES), value=TEXT_SOURCES[0], label="Text")
                text = gr.Textbox(
                    lines=3, label="Pasted text", placeholder="used when 'Pasted text' is selected"
                )
                upload = gr.File(label="Text file", file_types=[".txt", ".md", ".gz"])
                with gr.Accordion("SAE settings (here x4, lambda 1, 2,048 tokens; paper: lambda 0.1, 10k)",
                                  open=False):  # fmt: skip
                    gr.Markdown(
                        "The defaults' result is precomputed (a converged, sparse SAE); any other setting "
                        "trains live, which takes minutes on a CPU. lambda 0.1 (the paper's) converges to a "
                        "dense code on this model's residual stream: F then mostly counts the dictionary."
                    )
                    sae_ctl = controls(
                        measure,
                        only=MEASURE_FIELDS,
                        values=dict(DEFAULT_SAE),
                        labels={"expansion": "Dictionary expansion", "l1": "L1 coefficient lambda",
                                "max_activations": "Activations (tokens)",
                                "max_epochs": "Max epochs (early stopping, patience 10)"},
                    )  # fmt: skip
                    sae_files = gr.File(label="Pretrained SAE (SAELens: .safetensors + cfg.json)",
                                        file_count="multiple", file_types=[".safetensors", ".json"])  # fmt: skip
                with gr.Row():
                    run = gr.Button("Measure", variant="primary")
                    stop = stop_button()
            with gr.Column(scale=3):
                caption = gr.Markdown(elem_classes="caption")
                table = gr.Dataframe(headers=["metric", "value"], interactive=False, wrap=True)
                map_caption = gr.Markdown(elem_classes="caption")
                map_plot = gr.Plot(label="Feature map")
                loss_plot = gr.Plot(label="Training")
                files = gr.File(label="Result (JSON, CSV)", file_count="multiple")
        measured = gr.State(None, time_to_live=3600)  # the measurement, handed to the feature map
        ins = [model, allow_net, layer, site, source, text, upload, *sae_ctl.values(), sae_files]
        sae_vals = [DEFAULT_SAE[k] for k in MEASURE_FIELDS]
        gr.Examples(  # the shipped (precomputed) layers: each answers at once; then press Measure
            [["smollm2", False, lay, sites[0], TEXT_SOURCES[0], "", None, *sae_vals, None]
             for lay in (DEFAULT_LAYER, *COMPARE_LAYERS)],
            ins,
            example_labels=[f"SmolLM2 layer {DEFAULT_LAYER} (middle, with feature map)",
                            f"SmolLM2 layer {COMPARE_LAYERS[0]} (early)", f"SmolLM2 layer {COMPARE_LAYERS[1]} (late)"],
            label="Precomputed examples (converged, sparse SAEs)",
        )  # fmt: skip
        ev = run.click(
            measure_handler,
            ins,
            [caption, table, loss_plot, files, measured],
            api_name="superposition_measure",
        )
        ev_map = ev.success(
            feature_map_handler, [measured], [map_plot, map_caption], api_name="superposition_feature_map"
        )
        wire_stop(stop, ev, ev_map)

    with gr.Tab("Across layers"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                s_model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model")
                s_net = gr.Checkbox(False, label="Allow network (hub models)")
                s_site = gr.Radio(sites, value=sites[0], label="Site")
                s_layers = gr.Textbox("all", label="Layers", info="'all', '0-29' or '0, 5, 10'")
                s_ctl = controls(
                    scan,
                    only=SCAN_FIELDS,
                    labels={"max_activations": "Activations per layer", "max_epochs": "Max epochs per SAE",
                            "sweep": "Sensitivity band (lambda x0.5/x2, dictionary x0.5/x2)"},
                )  # fmt: skip
                with gr.Row():
                    s_run = gr.Button("Scan layers", variant="primary")
                    s_stop = stop_button()
            with gr.Column(scale=3):
                s_caption = gr.Markdown(elem_classes="caption")
                s_plot = gr.Plot(label="F, N and psi per layer")
                s_table = gr.Dataframe(
                    headers=["layer", "N", "F", "psi", "F low", "F high", "expl. var.", "L0"],
                    interactive=False,
                )
                s_files = gr.File(label="Scan (JSON, CSV)", file_count="multiple")
        s_ev = s_run.click(scan_handler, [s_model, s_net, s_site, s_layers, *s_ctl.values()],
                           [s_caption, s_plot, s_table, s_files], api_name="superposition_scan")  # fmt: skip
        wire_stop(s_stop, s_ev)

    with gr.Tab("Toy models"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                t_ctl = controls(
                    toy,
                    only=TOY_FIELDS,
                    labels={"n_features": "Features n", "n_hidden": "Neurons m", "steps": "Training steps",
                            "sae_l1": "SAE lambda (toy default 2.0; see docs)",
                            "sae_expansion": "SAE expansion (toy default 8)"},
                )  # fmt: skip
                t_s = control(LEVELS)
                with gr.Row():
                    t_run = gr.Button("Train toy models", variant="primary")
                    t_stop = stop_button()
            with gr.Column(scale=3):
                t_caption = gr.Markdown(elem_classes="caption")
                t_plot = gr.Plot(label="Measured vs ground truth")
                t_gram = gr.Plot(label="W^T W")
                t_table = gr.Dataframe(headers=["S", "true", "F", "psi", "expl. var."], interactive=False)
                t_files = gr.File(label="Sweep (JSON, CSV)", file_count="multiple")
        t_ins = [
            t_ctl["n_features"],
            t_ctl["n_hidden"],
            t_s,
            t_ctl["steps"],
            t_ctl["sae_l1"],
            t_ctl["sae_expansion"],
        ]
        t_ev = t_run.click(toy_handler, t_ins, [t_caption, t_plot, t_gram, t_table, t_files],
                           api_name="superposition_toy")  # fmt: skip
        wire_stop(t_stop, t_ev)

    with gr.Tab("Compare"):
        with gr.Row():
            with gr.Column(min_width=260):
                a_ins = _cell_controls(measure, "A", COMPARE_LAYERS[0], models)
            with gr.Column(min_width=260):
                b_ins = _cell_controls(measure, "B", COMPARE_LAYERS[1], models)
            with gr.Column(min_width=260):
                c_ctl = controls(COMPARE)
                with gr.Row():
                    c_run = gr.Button("Compare", variant="primary")
                    c_stop = stop_button()
        c_caption = gr.Markdown(elem_classes="caption")
        c_plot = gr.Plot(label="A vs B")
        with gr.Row():
            c_table = gr.Dataframe(headers=["metric", "A", "B"], interactive=False)
            c_files = gr.File(label="Both results (JSON, CSV)", file_count="multiple")
        c_ev = c_run.click(
            compare_handler,
            [*a_ins, *b_ins, c_ctl["max_activations"], c_ctl["max_epochs"]],
            [c_caption, c_plot, c_table, c_files],
            api_name="superposition_compare",
        )
        wire_stop(c_stop, c_ev)
