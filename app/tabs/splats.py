"""3D Gaussian Pruning tab: LightGaussian, OMG and baselines on the shipped demo scene or an uploaded splat.

Handlers are plain functions (testable without the UI); the layout below only wires them. The method dropdown
and the parameter controls come from the registry (``app/controls.py``); pruning, caching and the comparison
sweep are the engine's (:func:`engine.splats.evaluate.evaluate`, :func:`engine.splats.compare.compare`);
downloads are written by ``app/export.py`` from the results' own serialiser.

Serving: Apply and Compute Pareto each have a Stop button; the engine takes a heavy-job slot only for work
above a small size (a cached result or a small upload takes none), refuses an upload whose estimated memory is
too much from its header, and moves the progress bar at every stage (load, score, prune, each rendered view).
"""

from __future__ import annotations

import gradio as gr

from app.controls import control, method_dropdown, method_info
from app.errors import user_errors
from app.export import export
from app.figures import fit
from app.inputs import upload_path
from app.progress import gradio_progress, stop_button, wire_stop
from engine.config import LIMITS
from engine.registry import InputError, by_family
from visualizers.splats import (
    SHIPPED_LABEL,
    before_after,
    caption,
    metrics_rows,
    pareto_caption,
    pareto_table,
    plot_comparison,
    plot_gaussians,
    plot_pareto,
    plot_score_histogram,
    viewer_scene,
)

TAB_TITLE = "3D Gaussian Pruning"
TAB_ORDER = 60

SCENES = ("Demo scene (shipped)", "Upload .ply / .splat")
OMG_TARGETS = ("tau (score mass)", "keep fraction")
COLOUR_BY = ("fate", "score")
X_AXES = ("kept fraction", "bytes")
METRIC_HEADERS = ["quantity", "before", "after"]
PARETO_HEADERS = ["run", "method", "keep", "count", "bytes", "psnr", "ssim"]
SHIPPED_RUN = "GPU (shipped)"  # the table's name for the shipped run (the legend and caption say the rest)
RENDER_PX = 256  # the evaluation views' size: the slider shows them at this size, pixel for pixel


# ------------------------------------------------------------------------------------------------ helpers


def _choice(value, choices, what: str):
    """``value`` if it is one of ``choices`` (an API call can send anything), else a message naming both."""
    if value not in choices:
        raise InputError(f"{what} must be one of {list(choices)}, got {value!r}")
    return value


def _bundle(scene_choice: str, upload):
    from engine.splats.bundle import demo_bundle, upload_bundle

    if scene_choice is None or _choice(scene_choice, SCENES, "Scene") == SCENES[0]:
        return demo_bundle()
    return upload_bundle(upload_path(upload))


def _view_names(scene_choice: str) -> list[str]:
    if scene_choice == SCENES[0] or scene_choice is None:
        return ["test_000", "test_001", "test_002", "test_003"]
    return ["view_0", "view_1", "view_2", "view_3"]


def _view_index(scene_choice: str, view) -> int:
    """The evaluation view's position. A name of the other scene's views picks the same position (an API
    call may send the dropdown's initial ``test_00k`` with an upload); anything else is refused."""
    for names in (_view_names(scene_choice), *(_view_names(s) for s in SCENES if s != scene_choice)):
        if view in names:
            return names.index(view)
    raise InputError(f"View must be one of {_view_names(scene_choice)}, got {view!r}")


def _checked_by_registry(slider: gr.Slider) -> gr.Slider:
    """Pass what the API sends for a parameter's slider straight to the handler, where the registry's
    ``Param.check`` (whose message names the control: "keep fraction: parameter 'keep' is NaN") is the one
    check, instead of Gradio's preprocess, whose message for text or NaN names only an input index."""
    slider.preprocess = lambda payload: payload
    return slider


# ------------------------------------------------------------------------------------------------ handlers


@user_errors
def apply_pruning(scene_choice, upload, method, keep, omg_target, tau, storage, view, colour_by,
                  progress=gr.Progress()):  # fmt: skip
    """Prune, render before/after on the chosen view, and build every figure of the tab."""
    from engine.splats.evaluate import evaluate, method_params
    from engine.splats.ply import ply_bytes, write_splat

    _choice(omg_target, OMG_TARGETS, "OMG target")
    _choice(colour_by, COLOUR_BY, "Colour Gaussians by")
    step = gradio_progress(progress)
    step(0.0, "loading the scene")
    bundle = _bundle(scene_choice, upload)
    view_i = _view_index(scene_choice, view)
    params = method_params(method, keep=keep, mass=tau if omg_target == OMG_TARGETS[0] else None)
    rep = evaluate(bundle, method, params, storage=storage, view=view_i, progress=step)
    step(0.97, "drawing the figures")
    res = rep.result
    hist = plot_score_histogram(res.scores, res.keep_mask, res.threshold, method=method)
    cloud = plot_gaussians(bundle.scene.means, keep_mask=res.keep_mask, scores=res.scores,
                           colour_by="score" if colour_by == "score" and res.scores is not None else "fate",
                           max_points=LIMITS.max_drawn_elements)  # fmt: skip
    step(0.98, "writing the downloads")
    stem = f"pruned_{method}_{rep.count_after}_{bundle.key[:8]}"
    model = export(None, stem, extra={f"{stem}_viewer.ply": ply_bytes(viewer_scene(rep.pruned))})[0]
    files = export(rep, stem, csv={}, extra={f"{stem}.ply": ply_bytes(rep.pruned),
                                             f"{stem}.splat": write_splat(rep.pruned)})  # fmt: skip
    gt = gr.update(value=rep.gt, visible=rep.gt is not None)
    return before_after(rep), caption(rep), metrics_rows(rep), fit(hist), fit(cloud), model, files, gt


@user_errors
def pareto(scene_choice, upload, storage, x_axis="kept fraction", progress=gr.Progress()):
    """Every method at several kept fractions on the same scene (one evaluation view at 128 px on the CPU);
    on the demo scene the shipped GPU run is drawn beside it."""
    from engine.splats.compare import compare, shipped_rows

    _choice(x_axis, X_AXES, "Pareto x axis")
    step = gradio_progress(progress)
    step(0.0, "loading the scene")
    bundle = _bundle(scene_choice, upload)
    res = compare(bundle, None, {"storage": storage}, progress=step)
    stem = f"pareto_{bundle.key[:8]}"
    csv_path = export(res, stem, csv={"comparison": f"{stem}.csv"})[-1]
    shipped = shipped_rows() if scene_choice == SCENES[0] else []
    fig = plot_comparison(res, x="bytes" if x_axis == "bytes" else "keep", shipped=shipped or None)
    table = pareto_table(res.rows, run=f"this run ({(res.backend or 'cpu').split(' ')[0]})")
    if shipped:
        table += pareto_table(shipped, sort=True, run=SHIPPED_RUN)
    return fit(fig), table, csv_path


def shipped_pareto():
    """The GPU run's Pareto figure and table for the demo scene (12 held-out views, 256 px), if shipped."""
    from engine.splats.compare import shipped_rows

    rows = shipped_rows()
    if not rows:
        return None, []
    fig = plot_pareto([], title="PSNR (vs ground truth) by kept fraction, demo scene", shipped=rows,
                      shipped_label=SHIPPED_LABEL)  # fmt: skip
    return fig, pareto_table(rows, sort=True, run=SHIPPED_RUN)


def update_views(scene_choice):
    names = _view_names(scene_choice)
    return gr.update(choices=names, value=names[0])


# What the app's named examples of this tab (app/examples.py) compute on the demo scene: (method, kept
# fraction, OMG target). They share the view test_000, so the unpruned renders are computed once for all.
WARM = (
    ("lightgaussian", 0.34, OMG_TARGETS[0]),
    ("omg", 0.34, OMG_TARGETS[0]),
    ("random", 0.34, OMG_TARGETS[0]),
)


def warmup() -> None:
    """Load the demo scene and compute the named examples into the engine's cache, so each answers at once."""
    from engine.splats.evaluate import evaluate, method_params

    bundle = _bundle(SCENES[0], None)
    for m, keep, target in WARM:
        evaluate(bundle, m, method_params(m, keep=keep, mass=0.96 if target == OMG_TARGETS[0] else None))


# ------------------------------------------------------------------------------------------------ layout


def build_tab() -> None:
    from engine.splats.prune import KEEP
    from engine.splats.storage import STORAGE_PARAM

    mass = next(m for m in by_family("splats") if m.fact("mass_param"))  # the method with a score-mass rule

    gr.Markdown(
        "Prune redundant Gaussians from a 3D Gaussian splatting scene and see what it costs. "
        "**LightGaussian** (Fan et al., 2023) ranks Gaussians by how much they blend into training views times "
        "a volume term; **OMG** (Lee et al., 2025) multiplies that importance by the squared colour "
        "distinctiveness along a Morton curve and drops the low-score tail holding at most 1 − τ of the score. "
        "Baselines: opacity, random, voxel merge (open3d). Rendering: gsplat on a GPU, a tile-binned torch "
        "renderer on the CPU (it matches gsplat to 3e-7 mean absolute difference).",
        elem_classes="caption",
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            scene_choice = gr.Radio(list(SCENES), value=SCENES[0], label="Scene")
            upload = gr.File(
                label="Splat scene (.ply INRIA layout, or .splat)",
                file_types=[".ply", ".splat"],
                elem_id="splats_upload",
            )
            method = method_dropdown("splats", value="lightgaussian", label="Method")
            with gr.Accordion("Methods and papers", open=False):
                gr.Markdown(method_info("splats"))
            keep = _checked_by_registry(
                control(KEEP, label="Keep fraction (LightGaussian prunes 66%)", info=None)
            )
            with gr.Row():
                omg_target = gr.Radio(
                    list(OMG_TARGETS), value=OMG_TARGETS[0], label=f"{mass.name.upper()} target"
                )
                tau = _checked_by_registry(control(mass.param(mass.fact("mass_param")), info=None))
            storage = control(STORAGE_PARAM, info=None)
            view = gr.Dropdown(_view_names(SCENES[0]), value="test_000", label="View for the image slider")
            colour_by = gr.Radio(list(COLOUR_BY), value=COLOUR_BY[0], label="Colour Gaussians by")
            with gr.Row():
                apply_btn = gr.Button("Apply", variant="primary", scale=3)
                apply_stop = stop_button()
        with gr.Column(scale=2):
            # the renders at their own 256 px, pixel for pixel (the size PSNR is measured at), beside the
            # ground truth at the same size, instead of one stretched to twice its size
            with gr.Row():
                slider = gr.ImageSlider(label=f"Before / after (drag), {RENDER_PX} px as measured", type="pil",
                                        height=RENDER_PX + 40, max_height=RENDER_PX)  # fmt: skip
                gt_img = gr.Image(label="Ground truth of this view", type="numpy", height=RENDER_PX + 40)
            cap = gr.Markdown(elem_classes="caption")
            metrics = gr.Dataframe(headers=METRIC_HEADERS, label="Metrics", interactive=False)
    with gr.Row():
        hist = gr.Plot(label="Importance score with the cut")
        cloud = gr.Plot(label="Gaussians: kept and pruned")
    with gr.Row():
        model = gr.Model3D(
            label="Pruned scene (drag to orbit, scroll to zoom, right-drag to pan)", height=480
        )
        files = gr.File(
            label="Download the pruned scene (.ply, .splat) and the report (JSON)", file_count="multiple"
        )
    gr.Markdown("### All methods on the same scene")
    with gr.Row():
        x_axis = gr.Radio(list(X_AXES), value=X_AXES[0], label="Pareto x axis")
        with gr.Row():
            pareto_btn = gr.Button("Compute Pareto (CPU: a minute or two)", scale=3)
            pareto_stop = stop_button()
    fig0, table0 = shipped_pareto()
    with gr.Row():
        with gr.Column():
            pareto_plot = gr.Plot(value=fit(fig0), label="Quality vs kept fraction")
            gr.Markdown(pareto_caption(shipped=bool(table0)), elem_classes="caption")
        with gr.Column():
            pareto_table = gr.Dataframe(value=table0 or None, headers=PARETO_HEADERS, label="Pareto table",
                                        interactive=False, max_height=420)  # fmt: skip
            pareto_csv = gr.File(label="Pareto table (CSV)")

    inputs = [scene_choice, upload, method, keep, omg_target, tau, storage, view, colour_by]
    outputs = [slider, cap, metrics, hist, cloud, model, files, gt_img]
    scene_choice.change(update_views, [scene_choice], [view])
    applying = apply_btn.click(apply_pruning, inputs, outputs, api_name="splats_apply")
    comparing = pareto_btn.click(pareto, [scene_choice, upload, storage, x_axis],
                                 [pareto_plot, pareto_table, pareto_csv], api_name="splats_pareto")  # fmt: skip
    wire_stop(apply_stop, applying)
    wire_stop(pareto_stop, comparing)
