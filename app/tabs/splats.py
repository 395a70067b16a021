"""3D Gaussian Pruning tab: LightGaussian, OMG and baselines on the shipped demo scene or an uploaded splat.

Handlers are plain functions (testable without the UI); the layout below only wires them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np

from app.errors import user_errors
from engine.cache import MemoryCache
from engine.config import LIMITS
from engine.registry import InputError, by_family
from engine.results import to_jsonable

TAB_TITLE = "3D Gaussian Pruning"
TAB_ORDER = 60

SCENES = ("Demo scene (shipped)", "Upload .ply / .splat")
OMG_TARGETS = ("tau (score mass)", "keep fraction")
PARETO_KEEPS = (0.1, 0.2, 0.34, 0.5, 0.7)
METRIC_HEADERS = ["quantity", "before", "after"]
PARETO_HEADERS = ["method", "keep", "count", "bytes", "psnr", "ssim"]

_bundles = MemoryCache(maxsize=4)
_reports = MemoryCache(maxsize=16)
_OUT = Path(tempfile.gettempdir()) / "redex_splats"


# ------------------------------------------------------------------------------------------------ helpers


def _methods() -> list[str]:
    order = ["lightgaussian", "lightgaussian-official", "omg", "opacity", "random", "voxel-merge"]
    names = [m.name for m in by_family("splats")]
    return [n for n in order if n in names] + sorted(n for n in names if n not in order)


def _float(value, what: str, lo: float, hi: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if not (lo <= f <= hi):
        raise InputError(f"{what} must be in [{lo}, {hi}], got {f}")
    return f


def _bundle(scene_choice: str, upload):
    from engine.splats.evaluate import load_bundle

    if scene_choice == SCENES[0] or scene_choice is None:
        return _bundles.get_or_compute("demo", lambda: load_bundle(None))
    if not upload:
        raise InputError("choose a .ply or .splat file to upload, or pick the demo scene")
    path = Path(upload if isinstance(upload, str) else getattr(upload, "name", upload))
    if not path.is_file():
        raise InputError("the uploaded file is gone; upload it again")
    size = path.stat().st_size
    if size > LIMITS.max_upload_bytes:
        raise InputError(
            f"the file is {size / 1e6:.1f} MB; the upload cap is {LIMITS.max_upload_bytes / 1e6:.0f} MB"
        )
    data = path.read_bytes()
    from engine.results import fingerprint

    key = fingerprint(data)
    return _bundles.get_or_compute(key, lambda: load_bundle(data, name=path.name))


def _params(method: str, keep: float, omg_target: str, tau: float) -> dict:
    keep = _float(keep, "keep fraction", 0.01, 1.0)
    if method == "omg":
        if omg_target == OMG_TARGETS[0]:
            return {"tau": _float(tau, "tau", 0.5, 1.0), "keep": 0.0}
        return {"keep": keep}
    return {"keep": keep}


def _view_names(scene_choice: str) -> list[str]:
    if scene_choice == SCENES[0] or scene_choice is None:
        return ["test_000", "test_001", "test_002", "test_003"]
    return ["view_0", "view_1", "view_2", "view_3"]


# ------------------------------------------------------------------------------------------------ handlers


@user_errors
def apply_pruning(scene_choice, upload, method, keep, omg_target, tau, storage, view, colour_by,
                  progress=gr.Progress()):  # fmt: skip
    """Prune, render before/after on the chosen view, and build every figure of the tab."""
    from engine.splats.evaluate import STORAGE, evaluate
    from engine.splats.ply import write_ply, write_splat
    from visualizers.splats import caption, labelled, metrics_rows, plot_gaussians, plot_score_histogram

    if method not in _methods():
        raise InputError(f"unknown method {method!r}")
    if storage not in STORAGE:
        raise InputError(f"unknown storage {storage!r}")
    progress(0.05, desc="loading scene")
    bundle = _bundle(scene_choice, upload)
    names = [c.name for c in bundle.eval_cams]
    v = names.index(view) if view in names else 0
    params = _params(method, keep, omg_target, tau)
    key = json.dumps([bundle.key, method, params, storage, v], sort_keys=True)

    def run():
        def prog(frac, desc):
            progress(0.1 + 0.6 * frac, desc=desc)

        return evaluate(bundle, method, params, storage=storage, view=v, progress=prog)

    progress(0.1, desc="importance, pruning and rendering")
    rep = _reports.get_or_compute(key, run)
    res = rep.result
    slider = (labelled(rep.before, f"before: {rep.count_before:,}"),
              labelled(rep.after, f"after: {rep.count_after:,}", right=True))  # fmt: skip
    hist = plot_score_histogram(res.scores, res.keep_mask, res.threshold, method=method)
    scores = res.scores if res.scores is not None else None
    cloud = plot_gaussians(bundle.scene.means, keep_mask=res.keep_mask, scores=scores,
                           colour_by="score" if colour_by == "score" and scores is not None else "fate",
                           max_points=LIMITS.max_drawn_elements)  # fmt: skip
    _OUT.mkdir(parents=True, exist_ok=True)
    stem = f"pruned_{method}_{rep.count_after}_{bundle.key[:8]}"
    ply_path = write_ply(rep.pruned, _OUT / f"{stem}.ply")
    view_path = write_ply(viewer_scene(rep.pruned), _OUT / f"{stem}_viewer.ply")
    json_path = _OUT / f"{stem}.json"
    json_path.write_text(json.dumps(to_jsonable(rep), indent=1))
    splat_path = _OUT / f"{stem}.splat"
    write_splat(rep.pruned, splat_path)
    gt = gr.update(value=rep.gt, visible=rep.gt is not None)
    return (slider, caption(rep), metrics_rows(rep), hist, cloud, str(view_path), [str(ply_path), str(splat_path),
            str(json_path)], gt)  # fmt: skip


@user_errors
def pareto(scene_choice, upload, storage, x_axis="kept fraction", progress=gr.Progress()):
    """Every method at several kept fractions on the same scene (one evaluation view at 128 px on the CPU)."""
    from engine.splats.evaluate import evaluate
    from engine.splats.render import image_uint8
    from visualizers.splats import plot_pareto

    bundle = _bundle(scene_choice, upload)
    small = [c.resized(128, 128) for c in bundle.eval_cams[:1]]
    from dataclasses import replace

    gts = None
    if bundle.gts:  # the demo scene: trace its ground truth at this resolution
        from engine.splats.scene_gen import trace

        gts = [image_uint8(trace(c)) for c in small]
    b2 = replace(bundle, eval_cams=small, gts=gts)
    rows = []
    methods = _methods()
    total = len(methods) * len(PARETO_KEEPS)
    for i, m in enumerate(methods):
        for j, k in enumerate(PARETO_KEEPS):
            progress((i * len(PARETO_KEEPS) + j) / total, desc=f"{m} keep {k:.0%}")
            rep = evaluate(b2, m, {"keep": k}, storage=storage)
            rows.append({"method": m, "keep": rep.count_after / rep.count_before, "count": rep.count_after,
                         "bytes": rep.bytes_after, "psnr": rep.psnr, "ssim": rep.ssim})  # fmt: skip
    against = "ground truth" if gts is not None else "the unpruned render"
    x = "bytes" if x_axis == "bytes" else "keep"
    fig = plot_pareto(rows, x=x, title=f"PSNR vs {'size' if x == 'bytes' else 'kept fraction'} on the "
                      f"{bundle.name} ({against}, view {bundle.eval_cams[0].name}, 128 px, {storage})")  # fmt: skip
    table = [[r["method"], f"{r['keep']:.2f}", r["count"], r["bytes"], round(r["psnr"], 2), round(r["ssim"], 4)]
             for r in rows]  # fmt: skip
    _OUT.mkdir(parents=True, exist_ok=True)
    csv_path = _OUT / f"pareto_{bundle.key[:8]}.csv"
    csv_path.write_text("\n".join([",".join(PARETO_HEADERS)] + [",".join(map(str, r)) for r in table]) + "\n")
    return fig, table, str(csv_path)


def shipped_pareto():
    """The GPU run's Pareto figure and table for the demo scene (12 held-out views, 256 px), if shipped."""
    from engine.splats.evaluate import DEMO_DIR
    from visualizers.splats import plot_pareto

    p = DEMO_DIR / "pareto_gpu.json"
    if not p.exists():
        return None, []
    rows = json.loads(p.read_text())
    fig = plot_pareto(rows, title="Demo scene, 12 held-out views at 256 px, no fine-tune (GPU run)")
    table = [[r["method"], f"{r['keep']:.2f}", r["count"], r["bytes"], round(r["psnr"], 2), round(r["ssim"], 4)]
             for r in sorted(rows, key=lambda r: (r["method"], r["keep"]))]  # fmt: skip
    return fig, table


def viewer_scene(scene):
    """The copy shown in the Model3D viewer: foreground only (background and floaters farther than 2.5 x the
    median distance from the median left out), DC colour only, and turned from z-up into the y-down convention
    splat viewers expect (a +90 degree turn about x). The download keeps the full pruned scene unchanged."""
    from engine.splats.ply import GaussianScene

    centre = np.median(scene.means, axis=0)
    d = np.linalg.norm(scene.means - centre, axis=1)
    s = scene.subset(d <= 2.5 * np.median(d)).with_sh_degree(0)
    R = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32)
    c, h = np.float32(np.sqrt(0.5)), np.float32(np.sqrt(0.5))
    w, x, y, z = s.quats.T
    quats = np.stack([c * w - h * x, c * x + h * w, c * y - h * z, c * z + h * y], axis=1)  # (c, h, 0, 0) * q
    return GaussianScene((s.means - centre) @ R.T, quats, s.log_scales, s.opacity_logits, s.sh)


def update_views(scene_choice):
    names = _view_names(scene_choice)
    return gr.update(choices=names, value=names[0])


def warmup() -> None:
    _bundle(SCENES[0], None)


# ------------------------------------------------------------------------------------------------ layout


def build_tab() -> None:
    from engine.splats.evaluate import STORAGE

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
            method = gr.Dropdown(_methods(), value="lightgaussian", label="Method")
            keep = gr.Slider(
                0.01, 1.0, value=0.34, step=0.01, label="Keep fraction (LightGaussian prunes 66%)"
            )
            with gr.Row():
                omg_target = gr.Radio(list(OMG_TARGETS), value=OMG_TARGETS[0], label="OMG target")
                tau = gr.Slider(0.5, 1.0, value=0.96, step=0.005, label="OMG τ (score mass kept)")
            storage = gr.Dropdown(list(STORAGE), value="fp32", label="Storage of the pruned scene")
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
