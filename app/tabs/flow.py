"""Information Flow tab: the registered flow methods (attention rollout, attention flow) through the scene ViT,
the scene VLM or a hub vision model, drawn as a layered graph, an importance overlay and a per-layer entropy
curve; and two or more methods side by side on the same image (importance, rank agreement, time).

A run of one method does not replace another's: when Apply has run two methods on the same input and settings,
the comparison section shows them side by side (from the cache: nothing is recomputed)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from app.errors import user_errors
from app.figures import fit
from app.image_inputs import get_image as _get_image
from app.image_inputs import image_input_components
from app.progress import gradio_progress, stop_button, wire_stop

TAB_TITLE = "Information Flow"
TAB_ORDER = 30

DEFAULT_MODEL = "scene-vit"
TARGETS = {"CLS / answer token": "output", "all image patches": "patches"}  # radio label -> engine target
MAX_COMPARED = 4  # methods the comparison shows side by side


def get_image(source: str, scene_index, example: str | None, upload) -> tuple[np.ndarray, list[str], str]:
    """RGB uint8 image, notices, and a description of the input (a scene's questions included)."""
    return _get_image(source, scene_index, example, upload, with_questions=True)


def _target(target) -> str:
    from engine.flow.run import TARGET

    return TARGET.check(TARGETS.get(target, target))  # a radio label or the engine's own name; else a message


def _inputs(source, scene_index, example, upload, model, question, allow_net, target) -> dict:
    """What both handlers share: the image (with its notices and description) and the run's options."""
    target = _target(target)
    img, notices, described = get_image(source, scene_index, example, upload)
    return dict(
        image=img, notices=notices, described=described, model=(model or "").strip() or DEFAULT_MODEL,
        question=(question or "").strip() or None, target=target, allow_network=bool(allow_net) or None,
    )  # fmt: skip


def _caption(text: str, described: str, notices=()) -> str:
    caption = text + f" Input: {described}."
    return caption + (" Notices: " + "; ".join(notices) + "." if notices else "")


@user_errors
def run_flow(source, scene_index, example, upload, model, method, residual, top_k, top_edges, question,
             allow_net, target="output", progress=gr.Progress()):  # fmt: skip
    """Handler: load the image, compute the flow graph, and draw it."""
    from app.export import export
    from engine.flow.report import flow_report
    from engine.flow.run import flow_for_image, method_params
    from visualizers.flow import flow_caption, flow_table, plot_entropy, plot_flow_graph, plot_overlay

    x = _inputs(source, scene_index, example, upload, model, question, allow_net, target)
    params = method_params(method, {"residual": residual, "top_k": top_k, "top_edges": top_edges})
    res = flow_for_image(x["image"], model=x["model"], method=method, question=x["question"], params=params,
                         target=x["target"], allow_network=x["allow_network"],
                         progress=gradio_progress(progress))  # fmt: skip
    report = flow_report(res, notices=x["notices"])
    (download,) = export(report, f"flow_{res.provenance.input_fingerprint}", csv={})
    caption = _caption(flow_caption(res), x["described"], x["notices"])
    return (fit(plot_overlay(res)), fit(plot_flow_graph(res)), fit(plot_entropy(res)), flow_table(res), caption,
            download)  # fmt: skip


@user_errors
def compare_flow(source, scene_index, example, upload, model, methods, residual, top_k, top_edges, question,
                 allow_net, target="output", top_fraction=0.1, progress=gr.Progress()):  # fmt: skip
    """Handler: the chosen methods on the same image and model, side by side."""
    from app.export import export
    from engine.flow.compare import compare
    from visualizers.flow import compare_caption, compare_table, plot_compare_overlays, plot_rank_agreement

    if isinstance(methods, str):
        methods = [methods]
    if len(methods or []) > MAX_COMPARED:
        raise gr.Error(f"compare at most {MAX_COMPARED} methods at once (got {len(methods)})")
    x = _inputs(source, scene_index, example, upload, model, question, allow_net, target)
    settings = dict(residual=residual, top_k=top_k, top_edges=top_edges, target=x["target"],
                    top_fraction=top_fraction)  # fmt: skip
    cmp = compare(x["image"], methods or [], settings, model=x["model"], question=x["question"],
                  notices=x["notices"], allow_network=x["allow_network"],
                  progress=gradio_progress(progress))  # fmt: skip
    files = export(cmp, f"flow_compare_{cmp.provenance.input_fingerprint}")
    caption = _caption(compare_caption(cmp), x["described"])  # the notices are in cmp's caption
    return fit(plot_compare_overlays(cmp)), fit(plot_rank_agreement(cmp)), compare_table(cmp), caption, files


def _run_key(
    source, scene_index, example, upload, model, residual, top_k, top_edges, question, target
) -> str:
    """What makes two Apply runs comparable: the same input and settings (the method aside)."""
    from app.inputs import upload_path

    up = upload_path(upload) if source == "Upload" and upload is not None else None
    return repr((source, scene_index, example if source == "Example photo" else None, up, model, residual, top_k,
                 top_edges, (question or "").strip(), target))  # fmt: skip


def keep_runs(runs, source, scene_index, example, upload, model, method, residual, top_k, top_edges, question,
              allow_net, target, top_fraction, progress=gr.Progress()):  # fmt: skip
    """After a successful Apply: remember (input, method); when another method already ran on the same input and
    settings, show the methods side by side in the comparison section (their graphs are cached)."""
    key = _run_key(source, scene_index, example, upload, model, residual, top_k, top_edges, question, target)
    runs = [r for r in (runs or []) if r[0] == key and r[1] != method][-(MAX_COMPARED - 1) :] + [
        (key, method)
    ]
    methods = [m for _, m in runs]
    if len(methods) < 2:
        return [runs, gr.skip(), *([gr.skip()] * 5)]
    out = compare_flow(source, scene_index, example, upload, model, methods, residual, top_k, top_edges, question,
                       allow_net, target, top_fraction, progress=progress)  # fmt: skip
    return [runs, gr.update(value=methods), *out]


def warmup() -> None:
    from engine.flow.graph import FLOW_PARAMS
    from engine.registry import names
    from engine.vision.loading import BUILTIN_VISION, load_vision

    for name in BUILTIN_VISION:
        load_vision(name)
    d = FLOW_PARAMS.defaults()
    run_flow("Generated scene", 0, None, None, DEFAULT_MODEL, names("flow")[0], d["residual"], d["top_k"],
             d["top_edges"], "", False)  # fmt: skip


def build_tab() -> None:
    from app.controls import controls, method_dropdown, method_info
    from engine.flow.compare import COMPARE_SETTINGS
    from engine.flow.graph import FLOW_PARAMS
    from engine.flow.run import DEFAULT_QUESTION
    from engine.vision.loading import BUILTIN_VISION
    from visualizers.flow import COMPARE_HEADERS

    gr.Markdown(
        "How information moves through a vision model's attention. **Attention rollout** multiplies each layer's "
        "head-averaged attention (mixed half-and-half with the identity for the residual path); **attention flow** "
        "solves a max-flow from each input token to the output (Abnar & Zuidema, 2020). For the ViT the output is "
        "CLS; for the VLM it is the last prompt token, whose next token is the answer. Relay nodes (ringed) pass on "
        "what they read from other tokens: FlowCut observed that CLS works as such a relay. Apply a second method "
        "on the same input and the two appear side by side under **Compare methods**."
    )
    with gr.Row():
        with gr.Column(scale=1):
            source, scene_index, example, upload = image_input_components()
            # NaN and fractional scene indices reach the handler, whose check (app.inputs.as_int) names them;
            # precision=0 would round 2.5 to 2 silently and fail on NaN inside Gradio with a vague message
            scene_index.precision = None
            model = gr.Dropdown(list(BUILTIN_VISION), value=DEFAULT_MODEL, allow_custom_value=True,
                                label="Model (or a local folder / hub id of CLIP, ViT, DINOv2, LLaVA)")  # fmt: skip
            allow_net = gr.Checkbox(False, label="Allow network (hub models)")
            question = gr.Textbox(value=DEFAULT_QUESTION, label="Question (VLM only)",
                                  info="scene VLM words: how many, what color/shape is the, is there a, are all, "
                                  "red, circle, small, left, ... ?")  # fmt: skip
            target = gr.Radio(list(TARGETS), value=next(iter(TARGETS)), label="Trace the flow into")
            method = method_dropdown("flow", label="Method")
            params = controls(FLOW_PARAMS)  # residual, top_k, top_edges: each method uses the ones it takes
            with gr.Accordion("Methods", open=False):
                gr.Markdown(method_info("flow"))
            with gr.Row():
                apply = gr.Button("Apply", variant="primary", scale=3)
                stop = stop_button()
        with gr.Column(scale=3):
            with gr.Row():
                overlay = gr.Plot(label="Importance overlay")
                entropy = gr.Plot(label="Entropy per layer")
            graph = gr.Plot(
                label="Layered flow graph (hover a node: layer, token, patch row/col, importance)"
            )
            caption = gr.Markdown(elem_classes=["caption"])
            table = gr.Dataframe(headers=["quantity", "value"], interactive=False, label="Metrics")
            export = gr.File(label="Graph (JSON: nodes, edges, entropy)")
    gr.Markdown("### Compare methods on the same image and model")
    gr.Markdown(
        "Two or more registered methods on the same input and settings: overlays on one colour scale (and their "
        "difference), token-by-token agreement, and one table of quality (agreement, concentration) and cost "
        "(time, memory). Filled in automatically when Apply has run two methods on the same input."
    )
    with gr.Row():
        with gr.Column(scale=1):
            methods = method_dropdown("flow", multiselect=True, label="Methods to compare")
            top_fraction = controls(COMPARE_SETTINGS, only=["top_fraction"])["top_fraction"]
            with gr.Row():
                compare_btn = gr.Button("Compare", variant="primary", scale=3)
                cmp_stop = stop_button()
        with gr.Column(scale=3):
            cmp_overlays = gr.Plot(label="Importance per method")
            cmp_agree = gr.Plot(label="Rank agreement")
            cmp_caption = gr.Markdown(elem_classes=["caption"])
            cmp_table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False, label="Comparison")
            cmp_files = gr.File(label="Comparison (JSON + CSV)", file_count="multiple")
    runs = gr.State([])  # (input key, method) of this session's Apply runs, for the side-by-side view
    shared = [source, scene_index, example, upload, model]
    after = [*params.values(), question, allow_net, target]
    cmp_out = [cmp_overlays, cmp_agree, cmp_table, cmp_caption, cmp_files]
    apply_ev = apply.click(run_flow, [*shared, method, *after], [overlay, graph, entropy, table, caption, export],
                           api_name="flow_apply")  # fmt: skip
    keep_ev = apply_ev.success(keep_runs, [runs, *shared, method, *after, top_fraction], [runs, methods, *cmp_out],
                               api_visibility="private")  # fmt: skip
    wire_stop(stop, apply_ev, keep_ev)
    cmp_ev = compare_btn.click(compare_flow, [*shared, methods, *after, top_fraction], cmp_out,
                               api_name="flow_compare")  # fmt: skip
    wire_stop(cmp_stop, cmp_ev)
