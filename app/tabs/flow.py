"""Information Flow tab: attention rollout and attention flow through the scene ViT, the scene VLM or a hub
vision model, drawn as a layered graph, an importance overlay and a per-layer entropy curve."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np

from app.errors import user_errors
from app.image_inputs import get_image as _get_image
from app.image_inputs import image_input_components

TAB_TITLE = "Information Flow"
TAB_ORDER = 30

MODELS = ("scene-vit", "scene-vlm")
METHODS = ("attention-rollout", "attention-flow")


def get_image(source: str, scene_index, example: str | None, upload) -> tuple[np.ndarray, list[str], str]:
    """RGB uint8 image, notices, and a description of the input (a scene's questions included)."""
    return _get_image(source, scene_index, example, upload, with_questions=True)


def _export(res, data: dict) -> str:
    import tempfile

    d = Path(tempfile.gettempdir()) / "redex-flow"  # gradio serves files from the temp directory
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"flow_{res.provenance.input_fingerprint}.json"
    p.write_text(json.dumps(data))
    return str(p)


@user_errors
def run_flow(
    source,
    scene_index,
    example,
    upload,
    model,
    method,
    residual,
    top_k,
    top_edges,
    question,
    allow_net,
    target="output",
):
    """Handler: load the image, compute the flow graph, and draw it."""
    from app.commands.flow import graph_json
    from engine.flow.run import flow_for_image
    from visualizers.flow import flow_caption, flow_table, plot_entropy, plot_flow_graph, plot_overlay

    img, notices, described = get_image(source, scene_index, example, upload)
    model = (model or "").strip() or "scene-vit"
    params = {"residual": residual, "top_edges": top_edges}
    if method == "attention-flow":
        params["top_k"] = top_k
    res = flow_for_image(
        img, model=model, method=method, question=(question or "").strip() or None, params=params,
        target="patches" if str(target).startswith("all image") else "output", allow_network=bool(allow_net) or None,
    )  # fmt: skip
    data = graph_json(res)
    data["notices"] = notices + data["notices"]
    caption = flow_caption(res) + f" Input: {described}."
    if notices:
        caption += " Notices: " + "; ".join(notices) + "."
    return (
        plot_overlay(res),
        plot_flow_graph(res),
        plot_entropy(res),
        flow_table(res),
        caption,
        _export(res, data),
    )


def warmup() -> None:
    from engine.vision.loading import load_vision

    for name in MODELS:
        load_vision(name)
    run_flow("Generated scene", 0, None, None, "scene-vit", "attention-rollout", 0.5, 16, 300, "", False)


def build_tab() -> None:
    gr.Markdown(
        "How information moves through a vision model's attention. **Attention rollout** multiplies each layer's "
        "head-averaged attention (mixed half-and-half with the identity for the residual path); **attention flow** "
        "solves a max-flow from each input token to the output (Abnar & Zuidema, 2020). For the ViT the output is "
        "CLS; for the VLM it is the last prompt token, whose next token is the answer. Relay nodes (ringed) pass on "
        "what they read from other tokens: FlowCut observed that CLS works as such a relay."
    )
    with gr.Row():
        with gr.Column(scale=1):
            source, scene_index, example, upload = image_input_components()
            model = gr.Dropdown(list(MODELS), value="scene-vit", allow_custom_value=True,
                                label="Model (or a local folder / hub id of CLIP, ViT, DINOv2, LLaVA)")  # fmt: skip
            allow_net = gr.Checkbox(False, label="Allow network (hub models)")
            question = gr.Textbox(value="how many objects ?", label="Question (VLM only)",
                                  info="scene VLM words: how many, what color/shape is the, is there a, are all, "
                                  "red, circle, small, left, ... ?")  # fmt: skip
            target = gr.Radio(["CLS / answer token", "all image patches"], value="CLS / answer token",
                              label="Trace the flow into")  # fmt: skip
            method = gr.Radio(list(METHODS), value="attention-rollout", label="Method")
            residual = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Residual weight (paper: 0.5)")
            top_k = gr.Slider(1, 256, value=16, step=1, label="Attention flow: in-edges kept per node")
            top_edges = gr.Slider(20, 1000, value=300, step=10, label="Edges kept for the graph")
            apply = gr.Button("Apply", variant="primary")
        with gr.Column(scale=3):
            with gr.Row():
                overlay = gr.Plot(label="Importance overlay")
                entropy = gr.Plot(label="Entropy per layer")
            graph = gr.Plot(label="Layered flow graph")
            caption = gr.Markdown(elem_classes=["caption"])
            table = gr.Dataframe(headers=["quantity", "value"], interactive=False, label="Metrics")
            export = gr.File(label="Graph (JSON: nodes, edges, entropy)")
    apply.click(
        run_flow,
        [
            source,
            scene_index,
            example,
            upload,
            model,
            method,
            residual,
            top_k,
            top_edges,
            question,
            allow_net,
            target,
        ],
        [overlay, graph, entropy, table, caption, export],
        api_name="flow_apply",
    )
