"""Visual Token Pruning tab: which image tokens the scene VLM can do without, by method, with the random
control at the same place; overlays per pruning step, methods side by side, and accuracy vs kept tokens."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from app.controls import controls, method_choices, method_dropdown
from app.errors import user_errors
from app.export import export
from app.image_inputs import example_paths as _example_paths
from app.image_inputs import get_image as _get_image
from app.image_inputs import image_input_components
from app.inputs import as_int
from engine.registry import get

TAB_TITLE = "Visual Token Pruning"
TAB_ORDER = 20

EXAMPLES = ("chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg")
MAX_STAGE = 3


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


def _run(source, scene_index, example, upload, model, method, keep, layer, K, question, control=False, seed=0,
         *more):  # fmt: skip
    from engine.tokens.run import prune_image

    img, notices, described = get_image(source, scene_index, example, upload)
    given = dict(zip((*API_PARAMS, *(p.name for p in _extra_params())), (layer, K, *more), strict=False))
    own = {p.name for p in get(method, family="tokens").params}  # each method reads only its own parameters
    res = prune_image(img, method=method, keep=keep, params={k: v for k, v in given.items() if k in own and v is not None},
                      question=question, model=(model or "scene-vlm").strip(), control=bool(control),
                      seed=as_int(seed or 0, "control seed", 0))  # fmt: skip
    return img, notices, described, res


@user_errors
def prune(source, scene_index, example, upload, model, method, keep, layer, K, question, stage, control=False,
          seed=0, *more):  # fmt: skip
    """Handler: prune one image with one method (or its random control at the same place); overlay at the
    chosen step, answers, metrics, caption."""
    from visualizers.tokens import pruning_caption, stage_overlay

    img, notices, described, res = _run(source, scene_index, example, upload, model, method, keep, layer, K,
                                        question, control, seed, *more)  # fmt: skip
    pic, label = stage_overlay(res, img, MAX_STAGE if stage is None else as_int(stage, "step", 0))
    cap = pruning_caption(res, label) + f" Input: {described}."
    if notices:
        cap += " " + "; ".join(notices) + "."
    rows = [[r["quantity"], str(r["value"])] for r in res.tables()["summary"]]
    return pic, res.answer_full, res.answer_pruned, rows, cap


@user_errors
def download(source, scene_index, example, upload, model, method, keep, layer, K, question, stage, control=False,
             seed=0, *more):  # fmt: skip
    """Handler: the pruning's JSON and CSV (the result's own serialiser, as ``redex tokens --json``) and the
    overlay PNG."""
    from visualizers.tokens import png_bytes, stage_overlay

    img, _, _, res = _run(source, scene_index, example, upload, model, method, keep, layer, K, question, control,
                          seed, *more)  # fmt: skip
    pic, _ = stage_overlay(res, img, MAX_STAGE if stage is None else as_int(stage, "step", 0))
    return export(res, f"tokens_{method}", extra={"overlay.png": png_bytes(pic)})


@user_errors
def compare_methods(source, scene_index, example, upload, model, methods, keep, question):
    """Handler: several methods on the same image at the same kept fraction, side by side, and their IoU."""
    from engine.tokens.run import compare
    from visualizers.tokens import comparison_tiles, plot_agreement

    img, notices, described = get_image(source, scene_index, example, upload)
    if len(methods or []) < 2:
        raise gr.Error("pick at least two methods to compare")
    res = compare(img, list(methods), keep=keep, question=question, model=(model or "scene-vlm").strip())
    k = res.settings["keep"]
    cap = (f"{len(methods)} methods at keep {k:.2f} on {described}; question *{res.question}*. Titles: answer "
           "with the pruned tokens (with all tokens). LLaVolta pools instead of dropping: its 'kept set' in the "
           "IoU is the first patch of each window.")  # fmt: skip
    return comparison_tiles(res, img), plot_agreement(res.methods, res.iou, keep=k), cap


def pareto():
    """The shipped accuracy-vs-kept table (assets/tokens/pareto.json) as a plot and rows."""
    from engine.tokens.evaluate import load_table
    from visualizers.tokens import pareto_caption, pareto_rows, plot_pareto

    t = load_table()
    if t is None:
        return None, [], "The Pareto table is not computed yet: run `python -m engine.tokens.evaluate`."
    rows = pareto_rows(t)
    return plot_pareto(t), [list(r.values()) for r in rows], pareto_caption(t)


def warmup() -> None:
    from engine.vision.loading import load_vision

    load_vision("scene-vlm")
    prune(
        "Generated scene",
        0,
        None,
        None,
        "scene-vlm",
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
            model = gr.Dropdown(["scene-vlm"], value="scene-vlm", allow_custom_value=True,
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
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=10_000, label="Control seed")
            apply = gr.Button("Prune", variant="primary")
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
    gr.Markdown("### Methods side by side (same image, same kept fraction)")
    with gr.Row():
        with gr.Column(scale=1):
            methods = gr.CheckboxGroup(method_choices("tokens"), label="Methods",
                                       value=["flowcut", "cls-attention", "pyramiddrop", "random-keep"])  # fmt: skip
            cmp_btn = gr.Button("Compare methods")
        with gr.Column(scale=3):
            tiles = gr.Image(label="Overlays", type="pil")
            agree = gr.Plot(label="Agreement (IoU of kept sets)")
            cmp_cap = gr.Markdown(elem_classes=["caption"])
    gr.Markdown("### Accuracy vs kept tokens (validation split, shipped table)")
    fig, rows, pcap = pareto()
    gr.Plot(value=fig, label="Pareto: accuracy vs kept fraction")
    gr.Markdown(pcap, elem_classes=["caption"])
    gr.Dataframe(value=rows, headers=PARETO_HEADERS, interactive=False, label="Table behind the plot")

    extra = [pc[p.name] for p in _extra_params()]
    inputs = [source, scene_index, example, upload, model, method, pc["keep"], pc["layer"], pc["K"], question, stage,
              control, seed, *extra]  # fmt: skip
    outputs = [overlay, ans_full, ans_pruned, table, caption]
    apply.click(prune, inputs, outputs, api_name="tokens_prune")
    stage.release(prune, inputs, outputs, api_name="tokens_stage")
    dl_btn.click(download, inputs, [files], api_name="tokens_download")
    method.change(lambda m: [gr.update(visible=v) for v in _shown(m).values()], method, list(pc.values()),
                  api_visibility="private")  # fmt: skip
    cmp_btn.click(compare_methods, [source, scene_index, example, upload, model, methods, pc["keep"], question],
                  [tiles, agree, cmp_cap], api_name="tokens_compare")  # fmt: skip
