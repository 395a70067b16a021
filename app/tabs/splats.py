"""3D Gaussian Pruning tab: LightGaussian, OMG and baselines on the shipped demo scene or an uploaded splat.

Handlers are plain functions (testable without the UI); the layout below only wires them. The method dropdown
and the parameter controls come from the registry (``app/controls.py``); pruning, caching and the comparison
sweep are the engine's (:func:`engine.splats.evaluate.evaluate`, :func:`engine.splats.compare.compare`);
downloads are written by ``app/export.py`` from the results' own serialiser.
"""

from __future__ import annotations

import gradio as gr

from app.controls import control, method_dropdown, method_info
from app.errors import user_errors
from app.export import export
from app.inputs import upload_path
from app.progress import gradio_progress
from engine.config import LIMITS
from engine.registry import by_family
from visualizers.splats import (
    before_after,
    caption,
    metrics_rows,
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
METRIC_HEADERS = ["quantity", "before", "after"]
PARETO_HEADERS = ["method", "keep", "count", "bytes", "psnr", "ssim"]


# ------------------------------------------------------------------------------------------------ helpers


def _bundle(scene_choice: str, upload):
    from engine.splats.bundle import demo_bundle, upload_bundle

    if scene_choice == SCENES[0] or scene_choice is None:
        return demo_bundle()
    return upload_bundle(upload_path(upload))


def _view_names(scene_choice: str) -> list[str]:
    if scene_choice == SCENES[0] or scene_choice is None:
        return ["test_000", "test_001", "test_002", "test_003"]
    return ["view_0", "view_1", "view_2", "view_3"]


# ------------------------------------------------------------------------------------------------ handlers


@user_errors
def apply_pruning(scene_choice, upload, method, keep, omg_target, tau, storage, view, colour_by,
                  progress=gr.Progress()):  # fmt: skip
    """Prune, render before/after on the chosen view, and build every figure of the tab."""
    from engine.splats.evaluate import evaluate, method_params
    from engine.splats.ply import ply_bytes, write_splat

    progress(0.05, desc="loading scene")
    bundle = _bundle(scene_choice, upload)
    names = [c.name for c in bundle.eval_cams]
    params = method_params(method, keep=keep, mass=tau if omg_target == OMG_TARGETS[0] else None)
    rep = evaluate(bundle, method, params, storage=storage, view=names.index(view) if view in names else 0,
                   progress=gradio_progress(progress))  # fmt: skip
    res = rep.result
    hist = plot_score_histogram(res.scores, res.keep_mask, res.threshold, method=method)
    cloud = plot_gaussians(bundle.scene.means, keep_mask=res.keep_mask, scores=res.scores,
                           colour_by="score" if colour_by == "score" and res.scores is not None else "fate",
                           max_points=LIMITS.max_drawn_elements)  # fmt: skip
    stem = f"pruned_{method}_{rep.count_after}_{bundle.key[:8]}"
    model = export(None, stem, extra={f"{stem}_viewer.ply": ply_bytes(viewer_scene(rep.pruned))})[0]
    files = export(rep, stem, csv={}, extra={f"{stem}.ply": ply_bytes(rep.pruned),
                                             f"{stem}.splat": write_splat(rep.pruned)})  # fmt: skip
    gt = gr.update(value=rep.gt, visible=rep.gt is not None)
    return before_after(rep), caption(rep), metrics_rows(rep), hist, cloud, model, files, gt


@user_errors
def pareto(scene_choice, upload, storage, x_axis="kept fraction", progress=gr.Progress()):
    """Every method at several kept fractions on the same scene (one evaluation view at 128 px on the CPU)."""
    from engine.splats.compare import compare

    bundle = _bundle(scene_choice, upload)
    res = compare(bundle, None, {"storage": storage}, progress=gradio_progress(progress))
    stem = f"pareto_{bundle.key[:8]}"
    csv_path = export(res, stem, csv={"comparison": f"{stem}.csv"})[-1]
    return plot_comparison(res, x="bytes" if x_axis == "bytes" else "keep"), pareto_table(res.rows), csv_path


def shipped_pareto():
    """The GPU run's Pareto figure and table for the demo scene (12 held-out views, 256 px), if shipped."""
    from engine.splats.compare import shipped_rows

    rows = shipped_rows()
    if not rows:
        return None, []
    fig = plot_pareto(rows, title="Demo scene, 12 held-out views at 256 px, no fine-tune (GPU run)")
    return fig, pareto_table(rows, sort=True)


def update_views(scene_choice):
    names = _view_names(scene_choice)
    return gr.update(choices=names, value=names[0])


def warmup() -> None:
    _bundle(SCENES[0], None)


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
            keep = control(KEEP, label="Keep fraction (LightGaussian prunes 66%)", info=None)
            with gr.Row():
                omg_target = gr.Radio(
                    list(OMG_TARGETS), value=OMG_TARGETS[0], label=f"{mass.name.upper()} target"
                )
                tau = control(mass.param(mass.fact("mass_param")), info=None)
            storage = control(STORAGE_PARAM, info=None)
            view = gr.Dropdown(_view_names(SCENES[0]), value="test_000", label="View for the image slider")
            colour_by = gr.Radio(["fate", "score"], value="fate", label="Colour Gaussians by")
            apply_btn = gr.Button("Apply", variant="primary")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Before / after (drag)", type="pil", max_height=520)
            cap = gr.Markdown(elem_classes="caption")
            metrics = gr.Dataframe(headers=METRIC_HEADERS, label="Metrics", interactive=False)
            gt_img = gr.Image(label="Ground truth of this view", type="numpy", height=256)
    with gr.Row():
        hist = gr.Plot(label="Importance score with the cut")
        cloud = gr.Plot(label="Gaussians: kept and pruned")
    with gr.Row():
        model = gr.Model3D(label="Pruned scene (interactive viewer)", height=480)
        files = gr.File(
            label="Download the pruned scene (.ply, .splat) and the report (JSON)", file_count="multiple"
        )
    gr.Markdown("### All methods on the same scene")
    with gr.Row():
        x_axis = gr.Radio(["kept fraction", "bytes"], value="kept fraction", label="Pareto x axis")
        pareto_btn = gr.Button("Compute Pareto (CPU: a minute or two)")
    fig0, table0 = shipped_pareto()
    with gr.Row():
        pareto_plot = gr.Plot(value=fig0, label="Quality vs kept fraction")
        with gr.Column():
            pareto_table = gr.Dataframe(value=table0 or None, headers=PARETO_HEADERS, label="Pareto table",
                                        interactive=False, max_height=420)  # fmt: skip
            pareto_csv = gr.File(label="Pareto table (CSV)")

    scene_choice.change(update_views, [scene_choice], [view])
    apply_btn.click(
        apply_pruning,
        [scene_choice, upload, method, keep, omg_target, tau, storage, view, colour_by],
        [slider, cap, metrics, hist, cloud, model, files, gt_img],
        api_name="splats_apply",
    )
    pareto_btn.click(pareto, [scene_choice, upload, storage, x_axis], [pareto_plot, pareto_table, pareto_csv],
                     api_name="splats_pareto")  # fmt: skip
