"""Superposition tab: effective-feature counts F = exp(H) from sparse autoencoders (Bereska et al. 2025).

Four views: one layer (metrics + UMAP feature map), every layer (F, N, psi with a sensitivity band), toy models
with known ground truth (Elhage et al. 2022), and two settings side by side. Handlers are plain functions
(testable without the UI); the layout at the bottom only wires them.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import gradio as gr

from app.errors import user_errors
from app.inputs import TEXT_SOURCES, as_int, resolve_text
from engine.cache import MemoryCache
from engine.models import BUILTIN_MODELS
from engine.registry import InputError
from engine.results import fingerprint
from visualizers.superposition import (
    caption_compare,
    caption_layer,
    caption_scan,
    caption_toy,
    metrics_rows,
    plot_compare,
    plot_feature_map,
    plot_layer_scan,
    plot_toy_gram,
    plot_toy_sweep,
    plot_training,
)

TAB_TITLE = "Superposition"
TAB_ORDER = 40

SITES = {"residual stream": "resid", "MLP output": "mlp_out", "attention output": "attn_out"}
SOURCES = TEXT_SOURCES
DEFAULT_SPARSITIES = "0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99"
_MEASURED = MemoryCache(maxsize=6)  # measurements hold their SAE and activations, for the feature map


# ------------------------------------------------------------------------------------------------ helpers


_text = resolve_text


def _sae_files(files) -> tuple[str | None, str | None]:
    """(weights, cfg) from an upload of sae_weights.safetensors [+ cfg.json]; anything else is refused."""
    if not files:
        return None, None
    paths = [Path(f if isinstance(f, str) else getattr(f, "name", f)) for f in files]
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


def _layers(spec: str, n_layers: int | None = None) -> list[int] | None:
    """'all' -> None; '0-5, 9' -> [0..5, 9]."""
    spec = (spec or "").strip().lower()
    if spec in ("", "all"):
        return None
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a or b - a > 1000:
                raise InputError(f"bad layer range {part!r}")
            out.update(range(a, b + 1))
        elif part.isdigit():
            out.add(int(part))
        else:
            raise InputError(f"layers must look like 'all', '0-29' or '0, 5, 10'; cannot read {part!r}")
    return sorted(out)


def _floats(spec: str, name: str) -> list[float]:
    try:
        vals = [float(x) for x in re.split(r"[,\s]+", (spec or "").strip()) if x]
    except ValueError:
        raise InputError(f"{name} must be numbers separated by commas, got {spec!r}") from None
    if not vals:
        raise InputError(f"give at least one {name} value")
    return vals


def _files(result, stem: str) -> list[str]:
    d = Path(tempfile.mkdtemp(prefix="redex-sae-"))
    paths = []
    (d / f"{stem}.json").write_text(result.to_json(indent=1))
    paths.append(str(d / f"{stem}.json"))
    for name in result.tables():
        p = d / f"{stem}-{name}.csv"
        p.write_text(result.table_csv(name))
        paths.append(str(p))
    return paths


def _measure(
    model, allow_net, layer, site, text, expansion, l1, max_acts, max_epochs, sae_files, progress=None
):
    from engine.superposition.measure import measure_layer

    model = (model or "").strip()
    layer = as_int(layer, "layer")
    site_key = SITES.get(site, site)
    weights, cfg = _sae_files(sae_files)
    params = dict(
        expansion=float(expansion),
        l1=float(l1),
        max_activations=as_int(max_acts, "activations"),
        max_epochs=as_int(max_epochs, "max epochs"),
    )
    key = fingerprint(
        model,
        layer,
        site_key,
        text or "",
        params,
        weights or "",
        Path(weights).stat().st_mtime if weights else 0,
    )

    def compute():
        return measure_layer(
            model,
            layer,
            site=site_key,
            text=text,
            sae_path=weights,
            sae_cfg_path=cfg,
            allow_network=bool(allow_net),
            progress=progress,
            **params,
        )

    return _MEASURED.get_or_compute(key, compute)


def _gr_progress(progress):
    return (lambda f, msg: progress(f, desc=msg)) if progress is not None else None


# ------------------------------------------------------------------------------------------------ handlers


@user_errors
def measure_handler(
    model, allow_net, layer, site, source, text, upload, expansion, l1, max_acts, max_epochs, sae_files,
    progress=gr.Progress(),
):  # fmt: skip
    """Train (or load) an SAE on one layer; returns caption, metrics table, training plot, files."""
    t = _text(source, text, upload)
    m = _measure(
        model,
        allow_net,
        layer,
        site,
        t,
        expansion,
        l1,
        max_acts,
        max_epochs,
        sae_files,
        _gr_progress(progress),
    )
    fig = plot_training(m.losses) if m.losses else None
    return (
        caption_layer(m),
        metrics_rows(m),
        fig,
        _files(m, f"sae-{m.model.replace('/', '_')}-L{m.layer}-{m.site}"),
    )


@user_errors
def feature_map_handler(
    model, allow_net, layer, site, source, text, upload, expansion, l1, max_acts, max_epochs, sae_files,
    progress=gr.Progress(),
):  # fmt: skip
    """UMAP of the measured SAE's decoder directions (reuses the cached measurement)."""
    from engine.models import load_model
    from engine.superposition.feature_map import feature_map

    t = _text(source, text, upload)
    m = _measure(
        model,
        allow_net,
        layer,
        site,
        t,
        expansion,
        l1,
        max_acts,
        max_epochs,
        sae_files,
        _gr_progress(progress),
    )
    progress(0.5, desc="UMAP of decoder directions")
    tok = load_model((model or "").strip(), allow_network=bool(allow_net)).tokenizer
    fm = feature_map(m, tokenizer=tok)
    cap = (
        f"UMAP (cosine, 15 neighbours) of {len(fm.features):,} live decoder directions ({fm.n_dead} dead left out), "
        f"colour = log10 of how often each feature fires; hover for its top-activating tokens «in context». "
        f"UMAP {fm.provenance.timings.get('umap', 0):.1f} s."
    )
    return plot_feature_map(fm), cap


@user_errors
def scan_handler(model, allow_net, site, layers, max_acts, max_epochs, sweep, progress=gr.Progress()):
    """F, N and psi for every chosen layer, with the lambda / dictionary-size sensitivity band."""
    from engine.superposition.measure import scan_layers

    scan = scan_layers(
        (model or "").strip(),
        _layers(layers),
        site=SITES.get(site, site),
        allow_network=bool(allow_net),
        progress=_gr_progress(progress),
        max_activations=as_int(max_acts, "activations per layer"),
        max_epochs=as_int(max_epochs, "max epochs"),
        sweep=bool(sweep),
    )
    rows = [[r["layer"], r["neurons"], round(r["effective_features"], 1), round(r["psi"], 3),
             round(r["f_low"], 1), round(r["f_high"], 1), round(r["explained_variance"], 3), round(r["l0"], 1)]
            for r in scan.tables()["layers"]]  # fmt: skip
    return (
        caption_scan(scan),
        plot_layer_scan(scan),
        rows,
        _files(scan, f"sae-scan-{scan.model.replace('/', '_')}"),
    )


@user_errors
def toy_handler(n_features, n_hidden, sparsities, steps, l1, expansion, progress=gr.Progress()):
    """Toy models over a sparsity sweep: measured F vs ground truth, and the W^T W geometry."""
    from engine.superposition.toy import toy_sweep

    res = toy_sweep(
        _floats(sparsities, "sparsity"),
        n_features=as_int(n_features, "features"),
        n_hidden=as_int(n_hidden, "neurons"),
        steps=as_int(steps, "steps"),
        sae_l1=float(l1),
        sae_expansion=float(expansion),
        progress=_gr_progress(progress),
    )
    rows = [[r["sparsity"], r["true_features"], round(r["effective_features"], 2), round(r["psi"], 3),
             round(r["sae_explained_variance"], 3)] for r in res.tables()["toy_sweep"]]  # fmt: skip
    return caption_toy(res), plot_toy_sweep(res), plot_toy_gram(res), rows, _files(res, "toy-superposition")


@user_errors
def compare_handler(
    model_a, layer_a, site_a, l1_a, exp_a, model_b, layer_b, site_b, l1_b, exp_b, max_acts, max_epochs,
    progress=gr.Progress(),
):  # fmt: skip
    """Two layers, models or SAE settings on the same corpus, drawn on identical axes."""
    p = _gr_progress(progress)
    a = _measure(model_a, False, layer_a, site_a, None, exp_a, l1_a, max_acts, max_epochs, None, p)
    b = _measure(model_b, False, layer_b, site_b, None, exp_b, l1_b, max_acts, max_epochs, None, p)
    ra, rb = metrics_rows(a), metrics_rows(b)
    rows = [[x[0], x[1], y[1]] for x, y in zip(ra, rb)]
    d = Path(tempfile.mkdtemp(prefix="redex-sae-cmp-"))
    out = d / "compare.json"
    out.write_text(json.dumps({"a": a.to_dict(), "b": b.to_dict()}, indent=1))
    return caption_compare(a, b), plot_compare(a, b), rows, [str(out)]


def warmup() -> None:
    """Compile umap's numba kernels so the first feature map is quick."""
    from engine.superposition.feature_map import warm_umap

    warm_umap()


# ------------------------------------------------------------------------------------------------ layout


def build_tab() -> None:
    gr.Markdown(
        "How many features does a layer pack into its neurons? A tied sparse autoencoder (SAE) splits the "
        "activations into features; **F = exp(H)** of the share of activation mass p<sub>i</sub> each feature "
        "carries is the *effective* number of features, and **psi = F / N** compares it with the N neurons "
        "(Bereska et al., *Superposition as Lossy Compression*, 2025). psi > 1: more features than dimensions."
    )
    models = list(BUILTIN_MODELS)
    with gr.Tab("One layer"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model",
                                    info="built-in, a local directory, or a Hugging Face id")  # fmt: skip
                allow_net = gr.Checkbox(False, label="Allow network (hub models)")
                layer = gr.Number(15, precision=0, label="Layer (0-based)")
                site = gr.Radio(list(SITES), value="residual stream", label="Site")
                source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Text")
                text = gr.Textbox(
                    lines=3, label="Pasted text", placeholder="used when 'Pasted text' is selected"
                )
                upload = gr.File(label="Text file", file_types=[".txt", ".md", ".gz"])
                with gr.Accordion("SAE settings (paper: x4, lambda 0.1, 10k activations)", open=False):
                    expansion = gr.Slider(1, 16, value=4, step=1, label="Dictionary expansion")
                    l1 = gr.Number(0.1, label="L1 coefficient lambda")
                    max_acts = gr.Slider(256, 10000, value=2048, step=256, label="Activations (tokens)")
                    max_epochs = gr.Slider(
                        1, 300, value=20, step=1, label="Max epochs (early stopping, patience 10)"
                    )
                    sae_files = gr.File(label="Pretrained SAE (SAELens: .safetensors + cfg.json)",
                                        file_count="multiple", file_types=[".safetensors", ".json"])  # fmt: skip
                run = gr.Button("Measure", variant="primary")
            with gr.Column(scale=3):
                caption = gr.Markdown(elem_classes="caption")
                table = gr.Dataframe(headers=["metric", "value"], interactive=False, wrap=True)
                map_caption = gr.Markdown(elem_classes="caption")
                map_plot = gr.Plot(label="Feature map")
                loss_plot = gr.Plot(label="Training")
                files = gr.File(label="Result (JSON, CSV)", file_count="multiple")
        ins = [
            model,
            allow_net,
            layer,
            site,
            source,
            text,
            upload,
            expansion,
            l1,
            max_acts,
            max_epochs,
            sae_files,
        ]
        run.click(
            measure_handler, ins, [caption, table, loss_plot, files], api_name="superposition_measure"
        ).success(feature_map_handler, ins, [map_plot, map_caption], api_name="superposition_feature_map")

    with gr.Tab("Across layers"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                s_model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model")
                s_net = gr.Checkbox(False, label="Allow network (hub models)")
                s_site = gr.Radio(list(SITES), value="residual stream", label="Site")
                s_layers = gr.Textbox("all", label="Layers", info="'all', '0-29' or '0, 5, 10'")
                s_acts = gr.Slider(256, 10000, value=1024, step=256, label="Activations per layer")
                s_epochs = gr.Slider(1, 300, value=20, step=1, label="Max epochs per SAE")
                s_sweep = gr.Checkbox(True, label="Sensitivity band (lambda x0.5/x2, dictionary x0.5/x2)")
                s_run = gr.Button("Scan layers", variant="primary")
            with gr.Column(scale=3):
                s_caption = gr.Markdown(elem_classes="caption")
                s_plot = gr.Plot(label="F, N and psi per layer")
                s_table = gr.Dataframe(
                    headers=["layer", "N", "F", "psi", "F low", "F high", "expl. var.", "L0"],
                    interactive=False,
                )
                s_files = gr.File(label="Scan (JSON, CSV)", file_count="multiple")
        s_run.click(scan_handler, [s_model, s_net, s_site, s_layers, s_acts, s_epochs, s_sweep],
                    [s_caption, s_plot, s_table, s_files], api_name="superposition_scan")  # fmt: skip

    with gr.Tab("Toy models"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                t_n = gr.Number(20, precision=0, label="Features n")
                t_m = gr.Number(5, precision=0, label="Neurons m")
                t_s = gr.Textbox(DEFAULT_SPARSITIES, label="Sparsity levels S (at most 16)")
                t_steps = gr.Slider(200, 10000, value=3000, step=100, label="Training steps")
                t_l1 = gr.Number(2.0, label="SAE lambda (toy default 2.0; see docs)")
                t_exp = gr.Slider(1, 16, value=8, step=1, label="SAE expansion (toy default 8)")
                t_run = gr.Button("Train toy models", variant="primary")
            with gr.Column(scale=3):
                t_caption = gr.Markdown(elem_classes="caption")
                t_plot = gr.Plot(label="Measured vs ground truth")
                t_gram = gr.Plot(label="W^T W")
                t_table = gr.Dataframe(headers=["S", "true", "F", "psi", "expl. var."], interactive=False)
                t_files = gr.File(label="Sweep (JSON, CSV)", file_count="multiple")
        t_run.click(toy_handler, [t_n, t_m, t_s, t_steps, t_l1, t_exp], [t_caption, t_plot, t_gram, t_table, t_files],
                    api_name="superposition_toy")  # fmt: skip

    with gr.Tab("Compare"):
        with gr.Row():
            with gr.Column(min_width=260):
                gr.Markdown("**A**")
                a_model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model")
                a_layer = gr.Number(5, precision=0, label="Layer")
                a_site = gr.Radio(list(SITES), value="residual stream", label="Site")
                a_l1 = gr.Number(0.1, label="lambda")
                a_exp = gr.Slider(1, 16, value=4, step=1, label="Expansion")
            with gr.Column(min_width=260):
                gr.Markdown("**B**")
                b_model = gr.Dropdown(models, value="smollm2", allow_custom_value=True, label="Model")
                b_layer = gr.Number(25, precision=0, label="Layer")
                b_site = gr.Radio(list(SITES), value="residual stream", label="Site")
                b_l1 = gr.Number(0.1, label="lambda")
                b_exp = gr.Slider(1, 16, value=4, step=1, label="Expansion")
            with gr.Column(min_width=260):
                c_acts = gr.Slider(256, 10000, value=2048, step=256, label="Activations (both)")
                c_epochs = gr.Slider(1, 300, value=20, step=1, label="Max epochs (both)")
                c_run = gr.Button("Compare", variant="primary")
        c_caption = gr.Markdown(elem_classes="caption")
        c_plot = gr.Plot(label="A vs B")
        with gr.Row():
            c_table = gr.Dataframe(headers=["metric", "A", "B"], interactive=False)
            c_files = gr.File(label="Both results (JSON)", file_count="multiple")
        c_run.click(
            compare_handler,
            [a_model, a_layer, a_site, a_l1, a_exp, b_model, b_layer, b_site, b_l1, b_exp, c_acts, c_epochs],
            [c_caption, c_plot, c_table, c_files],
            api_name="superposition_compare",
        )
