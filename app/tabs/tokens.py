"""Visual Token Pruning tab: which image tokens the scene VLM can do without, by method, with the random
control at the same place; overlays per pruning step, methods side by side, and accuracy vs kept tokens.

Each view downloads the data behind its figure (CSV tables and JSON from the result's own serialiser, PNGs of
the figures). Pictures go to the browser as files written once under a name that is their content's hash, so
two users who get the same picture never share a file that is being rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import gradio as gr
import numpy as np

from app.controls import controls, method_choices, method_dropdown
from app.errors import user_errors
from app.export import export
from app.figures import fit
from app.image_inputs import example_paths as _example_paths
from app.image_inputs import get_image as _get_image
from app.image_inputs import image_input_components
from app.inputs import as_int
from app.progress import gradio_progress, wire_stop
from engine.registry import get

TAB_TITLE = "Visual Token Pruning"
TAB_ORDER = 20

EXAMPLES = ("chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg")
MAX_STAGE = 3
DEFAULT_MODEL = "scene-vlm"


def example_paths() -> dict[str, Path]:
    return _example_paths(EXAMPLES)


def get_image(source: str, scene_index, example, upload) -> tuple[np.ndarray, list[str], str]:
    """RGB uint8 image, notices, and what the input is."""
    return _get_image(source, scene_index, example, upload, names=EXAMPLES)


# parameters with a fixed place in the tokens_prune API (before the question); every other parameter of the
# family follows the seed, in registration order
API_PARAMS = ("layer", "K")


def _shown(method: str) -> dict[str, bool]:
    """Which parameter controls the chosen method reads (the others are hidden)."""
    from engine.tokens.methods import family_params

    own = {p.name for p in get(method, family="tokens").params}
    return {p.name: p.name in own for p in family_params()}


def _extra_params() -> list:
    from engine.tokens.methods import family_params

    return [p for p in family_params() if p.name != "keep" and p.name not in API_PARAMS]


def _picture_file(img) -> str:
    """``img`` as a PNG file named by its content's hash, written once (temporary name, then rename) and never
    rewritten: what the browser fetches cannot change under another user's download."""
    from visualizers.tokens import png_bytes

    data = png_bytes(img)
    folder = Path(tempfile.gettempdir()) / "redex-tokens-pictures"
    folder.mkdir(exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
    if not path.exists():
        tmp = folder / f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return str(path)


def _run(source, scene_index, example, upload, model, method, keep, layer, K, question, control=False, seed=0,
         *more, progress=None):  # fmt: skip
    from engine.tokens.run import prune_image

    img, notices, described = get_image(source, scene_index, example, upload)
    given = dict(zip((*API_PARAMS, *(p.name for p in _extra_params())), (layer, K, *more), strict=False))
    own = {p.name for p in get(method, family="tokens").params}  # each method reads only its own parameters
    res = prune_image(img, method=method, keep=keep, params={k: v for k, v in given.items() if k in own and v is not None},
                      question=question, model=(model or DEFAULT_MODEL).strip(), control=bool(control),
                      seed=as_int(seed or 0, "control seed", 0), progress=progress or gradio_progress(None))  # fmt: skip
    return img, notices, described, res


def _view(args, progress=None):
    """(overlay picture, answer with all tokens, answer pruned, metrics rows, caption) for the tab's inputs."""
    from visualizers.tokens import pruning_caption, stage_overlay

    *run_args, stage = args[:11]
    run_args += list(args[11:])
    img, notices, described, res = _run(*run_args, progress=progress)
    pic, label = stage_overlay(res, img, MAX_STAGE if stage is None else as_int(stage, "step", 0))
    cap = pruning_caption(res, label) + f" Input: {described}."
    if notices:
        cap += " " + "; ".join(notices) + "."
    rows = [[r["quantity"], str(r["value"])] for r in res.tables()["summary"]]
    return pic, res.answer_full, res.answer_pruned, rows, cap


@user_errors
def prune(source, scene_index, example, upload, model, method, keep, layer, K, question, stage, control=False,
          seed=0, *more):  # fmt: skip
    """Handler: prune one image with one method (or its random control at the same place); overlay at the
    chosen step, answers, metrics, caption."""
    return _view((source, scene_index, example, upload, model, method, keep, layer, K, question, stage, control,
                  seed, *more))  # fmt: skip


@user_errors
def prune_event(progress=gr.Progress(), *args):
    """The Prune button: :func:`prune` with a moving progress bar and Stop, the overlay sent as a file."""
    pic, *rest = _view(args, progress=gradio_progress(progress))
    return _picture_file(pic), *rest


@user_errors
def download(source, scene_index, example, upload, model, method, keep, layer, K, question, stage, control=False,
             seed=0, *more):  # fmt: skip
    """Handler: the pruning's JSON and CSV (the result's own serialiser, as ``redex tokens --json``; the
    ``patches`` table is the data behind the overlay) and the overlay PNG, in a fresh folder."""
    from visualizers.tokens import png_bytes, stage_overlay

    img, _, _, res = _run(source, scene_index, example, upload, model, method, keep, layer, K, question, control,
                          seed, *more)  # fmt: skip
    pic, _ = stage_overlay(res, img, MAX_STAGE if stage is None else as_int(stage, "step", 0))
    return export(res, f"tokens_{method}", extra={"overlay.png": png_bytes(pic)})


def _compare(source, scene_index, example, upload, model, methods, keep, question, progress=None):
    from engine.tokens.run import compare

    img, notices, described = get_image(source, scene_index, example, upload)
    if len(methods or []) < 2:
        raise gr.Error("pick at least two methods to compare")
    res = compare(img, list(methods), keep=keep, question=question, model=(model or DEFAULT_MODEL).strip(),
                  progress=progress or gradio_progress(None))  # fmt: skip
    return img, described, res


def _compare_view(args, progress=None):
    from visualizers.tokens import comparison_tiles, plot_agreement

    img, described, res = _compare(*args, progress=progress)
    k = res.settings["keep"]
    cap = (f"{len(res.methods)} methods at keep {k:.2f} on {described}; question *{res.question}*. Each tile: "
           "the method, then its answer with the pruned tokens (and with all tokens). Pruned patches are dimmed "
           "and hatched, kept ones outlined. LLaVolta pools instead of dropping: its 'kept set' in the IoU is the "
           "first patch of each window.")  # fmt: skip
    return comparison_tiles(res, img), plot_agreement(res.methods, res.iou, keep=k), cap


@user_errors
def compare_methods(source, scene_index, example, upload, model, methods, keep, question):
    """Handler: several methods on the same image at the same kept fraction, side by side, and their IoU."""
    return _compare_view((source, scene_index, example, upload, model, methods, keep, question))


@user_errors
def compare_event(
    source, scene_index, example, upload, model, methods, keep, question, progress=gr.Progress()
):
    """The Compare button: :func:`compare_methods` with progress and Stop, tiles sent as a file, the plot fitted
    to its panel."""
    tiles, fig, cap = _compare_view((source, scene_index, example, upload, model, methods, keep, question),
                                    progress=gradio_progress(progress))  # fmt: skip
    return _picture_file(tiles), fit(fig), cap


@user_errors
def compare_download(source, scene_index, example, upload, model, methods, keep, question):
    """Handler: the comparison's JSON and CSVs (one row per method; the IoU matrix; which patches each method
    kept, the data behind the tiles) and PNGs of the tiles and the IoU heatmap."""
    from visualizers.tokens import comparison_tiles, plot_agreement, png_bytes

    img, _, res = _compare(source, scene_index, example, upload, model, methods, keep, question)
    fig = plot_agreement(res.methods, res.iou, keep=res.settings["keep"])
    return export(res, "tokens_compare", figures={"agreement.png": fig},
                  extra={"overlays.png": png_bytes(comparison_tiles(res, img))})  # fmt: skip


def pareto():
    """The shipped accuracy-vs-kept table (assets/tokens/pareto.json) as a plot and rows."""
    from engine.tokens.evaluate import load_table
    from visualizers.tokens import pareto_caption, pareto_rows, plot_pareto

    t = load_table()
    if t is None:
        return None, [], "The Pareto table is not computed yet: run `python -m engine.tokens.evaluate`."
    rows = pareto_rows(t)
    return plot_pareto(t), [list(r.values()) for r in rows], pareto_caption(t)


@user_errors
def pareto_download():
    """Handler: the shipped Pareto table as CSV (one row per method and kept fraction, with its control's
    numbers; the all-tokens reference) and JSON, and the plot as PNG."""
    from engine.tokens.evaluate import load_table, shipped_evaluation
    from visualizers.tokens import plot_pareto

    res = shipped_evaluation()
    if res is None:
        raise gr.Error("The Pareto table is not computed yet: run `python -m engine.tokens.evaluate`.")
    return export(res, "tokens_pareto", figures={"pareto.png": plot_pareto(load_table())})


def warmup() -> None:
    from engine.vision.loading import load_vision

    load_vision(DEFAULT_MODEL)
    prune(
        "Generated scene",
        0,
        None,
        None,
        DEFAULT_MODEL,
        "flowcut",
        0.25,
        -1,
        -1,
        "how many objects ?",
        MAX_STAGE,
    )


PARETO_HEADERS = ["method", "acts", "kept", "tokens", "accuracy", "random here (mean ± std)", "objects kept",
                  "GFLOPs", "latency ms"]  # fmt: skip


def build_tab() -> None:
    from engine.tokens.methods import family_params

    gr.Markdown(
        "Which image tokens can the scene VLM do without? Each method scores the 196 patch tokens and keeps a "
        "fraction: **FlowCut** inside the vision encoder, **CLS attention**, **Turbo** and **LLaVolta** pooling "
        "between projector and LM, **PyramidDrop** and **FastV** inside the LM. Compare every method with "
        "**random at the same place**: a probe showed that CLS attention read from the last ViT layer loses to "
        "random, and that any pruning after LM layer 2 is nearly free, random included."
    )
    with gr.Row():
        with gr.Column(scale=1):
            source, scene_index, example, upload = image_input_components(EXAMPLES)
            model = gr.Dropdown([DEFAULT_MODEL], value=DEFAULT_MODEL, allow_custom_value=True,
                                label="Model (scene-vlm, or a LLaVA-style folder / hub id)")  # fmt: skip
            question = gr.Textbox(value="how many objects ?", label="Question (scene-vlm: scene vocabulary)")
            method = method_dropdown("tokens", value="flowcut", label="Method")
            pc = controls(family_params(), values={"keep": 0.25})  # bounds = the registry's
            shown = _shown("flowcut")
            for name, c in pc.items():
                c.visible = shown[name]
            stage = gr.Slider(
                0, MAX_STAGE, value=MAX_STAGE, step=1, label="Pruning step shown (0 = all tokens)"
            )
            with gr.Row():
                control = gr.Checkbox(False, label="Random control at the same place")
                seed = gr.Number(value=0, minimum=0, maximum=10_000, step=1, label="Control seed")
            with gr.Row():
                apply = gr.Button("Prune", variant="primary", scale=3)
                stop = gr.Button("Stop", variant="stop", scale=1)
            dl_btn = gr.Button("Download data (JSON, CSV, PNG)")
            files = gr.File(label="Downloads", file_count="multiple")
        with gr.Column(scale=2):
            overlay = gr.Image(
                label="Overlay (pruned: dimmed + hatched; kept: outlined)", type="pil", height=360
            )
            with gr.Row():
                ans_full = gr.Textbox(label="Answer with all tokens")
                ans_pruned = gr.Textbox(label="Answer with pruned tokens")
            caption = gr.Markdown(elem_classes=["caption"])
            table = gr.Dataframe(headers=["quantity", "value"], interactive=False, label="Metrics")
    extra = [pc[p.name] for p in _extra_params()]
    inputs = [source, scene_index, example, upload, model, method, pc["keep"], pc["layer"], pc["K"], question, stage,
              control, seed, *extra]  # fmt: skip
    outputs = [overlay, ans_full, ans_pruned, table, caption]
    gr.Markdown("### Methods side by side (same image, same kept fraction)")
    with gr.Row():
        with gr.Column(scale=1):
            methods = gr.CheckboxGroup(method_choices("tokens"), label="Methods",
                                       value=["flowcut", "cls-attention", "pyramiddrop", "random-keep"])  # fmt: skip
            with gr.Row():
                cmp_btn = gr.Button("Compare methods", variant="primary", scale=3)
                cmp_stop = gr.Button("Stop", variant="stop", scale=1)
            cmp_dl = gr.Button("Download comparison (CSV, JSON, PNG)")
            cmp_files = gr.File(label="Comparison downloads", file_count="multiple")
        with gr.Column(scale=3):
            tiles = gr.Image(label="Overlays", type="pil")
            agree = gr.Plot(label="Agreement (IoU of kept sets)")
            cmp_cap = gr.Markdown(elem_classes=["caption"])
    gr.Markdown("### Accuracy vs kept tokens (validation split, shipped table)")
    fig, rows, pcap = pareto()
    gr.Plot(value=fit(fig), label="Pareto: accuracy vs kept fraction")
    gr.Markdown(pcap, elem_classes=["caption"])
    gr.Dataframe(value=rows, headers=PARETO_HEADERS, interactive=False, label="Table behind the plot")
    with gr.Row():
        pareto_dl = gr.Button("Download Pareto data (CSV, JSON, PNG)", scale=1)
        pareto_files = gr.File(label="Pareto downloads", file_count="multiple", scale=2)

    ev_prune = apply.click(prune_event, inputs, outputs, api_name="tokens_prune")
    ev_stage = stage.release(prune_event, inputs, outputs, api_name="tokens_stage")
    ev_dl = dl_btn.click(download, inputs, [files], api_name="tokens_download")
    wire_stop(stop, ev_prune, ev_stage, ev_dl)
    method.change(lambda m: [gr.update(visible=v) for v in _shown(m).values()], method, list(pc.values()),
                  api_visibility="private")  # fmt: skip
    cmp_inputs = [source, scene_index, example, upload, model, methods, pc["keep"], question]
    ev_cmp = cmp_btn.click(compare_event, cmp_inputs, [tiles, agree, cmp_cap], api_name="tokens_compare")
    ev_cmp_dl = cmp_dl.click(compare_download, cmp_inputs, [cmp_files], api_name="tokens_compare_download")
    wire_stop(cmp_stop, ev_cmp, ev_cmp_dl)
    pareto_dl.click(pareto_download, None, [pareto_files], api_name="tokens_pareto_download")
