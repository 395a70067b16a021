"""Visual Token Pruning tab: which image tokens the scene VLM can do without, by method, with the random
control at the same place; overlays per pruning step, methods side by side, and accuracy vs kept tokens."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from app.errors import user_errors
from app.image_inputs import example_paths as _example_paths
from app.image_inputs import get_image as _get_image
from app.image_inputs import image_input_components
from engine.registry import InputError

TAB_TITLE = "Visual Token Pruning"
TAB_ORDER = 20

METHODS = (
    "flowcut",
    "flowcut-select",
    "cls-attention",
    "turbo",
    "llavolta",
    "pyramiddrop",
    "fastv",
    "random-keep",
)
EXAMPLES = ("chelsea.png", "astronaut.png", "coffee.png", "rocket.jpg")
MAX_STAGE = 3


def example_paths() -> dict[str, Path]:
    return _example_paths(EXAMPLES)


def get_image(source: str, scene_index, example, upload) -> tuple[np.ndarray, list[str], str]:
    """RGB uint8 image, notices, and what the input is."""
    return _get_image(source, scene_index, example, upload, names=EXAMPLES)


def _keep(keep) -> float:
    try:
        k = float(keep)
    except (TypeError, ValueError):
        raise InputError(f"keep fraction must be a number in (0, 1], got {keep!r}") from None
    if not (0 < k <= 1):
        raise InputError(f"keep fraction must be in (0, 1], got {k}")
    return k


def _params(method: str, layer, K) -> dict:
    p = {}
    if method in ("cls-attention", "turbo"):
        p["layer"] = int(layer)
    if method == "fastv":
        p["K"] = int(K)
    return p


def _model_image(img: np.ndarray) -> np.ndarray:
    from engine.vision.images import resize_for

    return resize_for(img, 112)[0]


def _run(
    source, scene_index, example, upload, model, method, keep, layer, K, question, control=False, seed=0
):
    from engine.tokens.run import prune_image

    img, notices, described = get_image(source, scene_index, example, upload)
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    res = prune_image(img, method=method, keep=_keep(keep), params=_params(method, layer, K),
                      question=question, model=(model or "scene-vlm").strip(), control=bool(control),
                      seed=int(seed or 0))  # fmt: skip
    return img, notices, described, res


@user_errors
def prune(source, scene_index, example, upload, model, method, keep, layer, K, question, stage, control=False,
          seed=0):  # fmt: skip
    """Handler: prune one image with one method (or its random control at the same place); overlay at the
    chosen step, answers, metrics, caption."""
    from visualizers.tokens import overlay_image, pruning_caption, stage_kept

    img, notices, described, res = _run(source, scene_index, example, upload, model, method, keep, layer, K,
                                        question, control, seed)  # fmt: skip
    stage = int(stage) if stage is not None else MAX_STAGE
    kept, label = stage_kept(res, stage)
    final = stage >= len(res.stages)
    pic = overlay_image(_model_image(img), res.grid, kept, groups=res.groups if final and stage > 0 else None)
    cap = pruning_caption(res, label) + f" Input: {described}."
    if notices:
        cap += " " + "; ".join(notices) + "."
    rows = [[r["quantity"], str(r["value"])] for r in res.tables()["summary"]]
    return pic, res.answer_full, res.answer_pruned, rows, cap


@user_errors
def compare_methods(source, scene_index, example, upload, model, methods, keep, question):
    """Handler: several methods on the same image at the same kept fraction, side by side, and their IoU."""
    from engine.tokens.run import compare
    from visualizers.tokens import overlay_image, plot_agreement, side_by_side

    img, notices, described = get_image(source, scene_index, example, upload)
    methods = [m for m in (methods or []) if m in METHODS]
    if len(methods) < 2:
        raise InputError("pick at least two methods to compare")
    k = _keep(keep)
    res, iou = compare(img, methods, keep=k, question=question, model=(model or "scene-vlm").strip())
    small = _model_image(img)
    tiles = [overlay_image(small, r.grid, r.kept, groups=r.groups, side=224,
                           title=f"{r.method}: {r.answer_pruned} (all: {r.answer_full})") for r in res]  # fmt: skip
    cap = (f"{len(methods)} methods at keep {k:.2f} on {described}; question *{res[0].question}*. Titles: answer "
           "with the pruned tokens (with all tokens). LLaVolta pools instead of dropping: its 'kept set' in the "
           "IoU is the first patch of each window.")  # fmt: skip
    return side_by_side(tiles, cols=4), plot_agreement(methods, iou, keep=k), cap


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
            method = gr.Dropdown(list(METHODS), value="flowcut", label="Method")
            keep = gr.Slider(0.05, 1.0, value=0.25, step=0.01, label="Kept fraction of image tokens")
            layer = gr.Slider(
                -1,
                6,
                value=-1,
                step=1,
                label="CLS attention / Turbo: encoder layer (-1: the one the LM reads, 6)",
            )
            K = gr.Slider(
                -1, 7, value=-1, step=1, label="FastV: prune before LM layer K (-1: 2 of 32 scaled = 1)"
            )
            stage = gr.Slider(
                0, MAX_STAGE, value=MAX_STAGE, step=1, label="Pruning step shown (0 = all tokens)"
            )
            with gr.Row():
                control = gr.Checkbox(False, label="Random control at the same place")
                seed = gr.Number(value=0, precision=0, minimum=0, maximum=10_000, label="Control seed")
            apply = gr.Button("Prune", variant="primary")
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
            methods = gr.CheckboxGroup(list(METHODS), value=["flowcut", "cls-attention", "pyramiddrop", "random-keep"],
                                       label="Methods")  # fmt: skip
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

    inputs = [
        source,
        scene_index,
        example,
        upload,
        model,
        method,
        keep,
        layer,
        K,
        question,
        stage,
        control,
        seed,
    ]
    outputs = [overlay, ans_full, ans_pruned, table, caption]
    apply.click(prune, inputs, outputs, api_name="tokens_prune")
    stage.release(prune, inputs, outputs, api_name="tokens_stage")
    cmp_btn.click(compare_methods, [source, scene_index, example, upload, model, methods, keep, question],
                  [tiles, agree, cmp_cap], api_name="tokens_compare")  # fmt: skip
