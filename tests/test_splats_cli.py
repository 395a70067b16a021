"""`redex splats`, the evaluate pipeline, the tab's handlers and figures, and the CPU training smoke test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from engine.splats.ply import GaussianScene, read_ply, write_ply

KEYS = {"count_before", "count_after", "bytes_before", "bytes_after", "psnr", "ssim", "backend", "render_ms"}


def small_scene(n=300, seed=0):
    r = np.random.default_rng(seed)
    f = np.float32
    return GaussianScene((r.normal(size=(n, 3)) * 0.5).astype(f), r.normal(size=(n, 4)).astype(f),
                         (r.normal(size=(n, 3)) * 0.3 - 2.5).astype(f), (r.normal(size=n) + 1).astype(f),
                         (r.normal(size=(n, 4, 3)) * 0.3).astype(f))  # fmt: skip


def test_cli_json_on_uploaded_scene(tmp_path, capsys):
    src = write_ply(small_scene(), tmp_path / "in.ply")
    out = tmp_path / "out.ply"
    rc = main(["splats", "--input", str(src), "--method", "lightgaussian", "--keep", "0.5", "--out", str(out),
               "--views", "2", "--json"])  # fmt: skip
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert KEYS <= set(d)
    assert d["count_before"] == 300 and d["count_after"] == 150
    assert d["bytes_after"] < d["bytes_before"]
    assert d["reference"] == "unpruned render" and d["psnr"] > 10
    assert len(read_ply(out)) == 150


def test_cli_errors(tmp_path, capsys):
    assert main(["splats", "--input", str(tmp_path / "missing.ply"), "--json"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n")
    assert main(["splats", "--input", str(bad), "--json"]) == 2
    assert "not supported" in capsys.readouterr().err
    assert main(["splats", "--input", str(write_ply(small_scene(), tmp_path / "a.ply")), "--method", "random",
                 "--tau", "0.9"]) == 2  # fmt: skip
    assert main(["splats", "--method", "nope"]) == 2


def test_demo_scene_against_ground_truth(capsys):
    rc = main(["splats", "--method", "opacity", "--keep", "0.5", "--views", "1", "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["reference"] == "ground truth" and d["count_before"] > 10_000
    assert d["psnr_before"] > 15 and d["psnr"] < d["psnr_before"] + 0.5


def test_tab_handler_and_figures(tmp_path):
    from app.tabs.splats import OMG_TARGETS, SCENES, apply_pruning

    src = write_ply(small_scene(), tmp_path / "up.ply")
    out = apply_pruning(SCENES[1], str(src), "omg", 0.34, OMG_TARGETS[0], 0.96, "SVQ 8-bit", "view_1", "score",
                        progress=lambda *a, **k: None)  # fmt: skip
    slider, cap, rows, hist, cloud, model, files, gt = out
    assert slider[0].size == (256, 256) and "omg" in cap and "unpruned render" in cap
    assert rows[0][1] == "300" and gt["visible"] is False
    assert len(hist.data) == 2 and len(cloud.data) >= 1
    assert len(read_ply(model)) < 300 and len(files) == 3


def test_tab_pareto_on_upload(tmp_path):
    from app.tabs.splats import SCENES, pareto
    from engine.registry import names
    from engine.splats.compare import KEEPS as PARETO_KEEPS

    def _methods():  # the registry's order is the tab's order
        return names("splats")

    src = write_ply(small_scene(n=120), tmp_path / "p.ply")
    fig, table, csv_path = pareto(SCENES[1], str(src), "fp16", "bytes", progress=lambda *a, **k: None)
    assert len(table) == len(_methods()) * len(PARETO_KEEPS)
    assert len(fig.data) == len(_methods()) and "size" in fig.layout.xaxis.title.text
    assert open(csv_path).read().startswith("method,keep")


def test_tab_rejects_bad_uploads(tmp_path):
    import gradio as gr

    from app.tabs.splats import OMG_TARGETS, SCENES, apply_pruning

    p = tmp_path / "pc.ply"
    hdr = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
    p.write_bytes(hdr + b"property float z\nend_header\n" + np.zeros(3, "<f4").tobytes())
    args = ("lightgaussian", 0.34, OMG_TARGETS[0], 0.96, "fp32", "view_0", "fate")
    with pytest.raises(gr.Error, match="point cloud"):
        apply_pruning(SCENES[1], str(p), *args, progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="upload"):
        apply_pruning(SCENES[1], None, *args, progress=lambda *a, **k: None)
    with pytest.raises(gr.Error, match="keep fraction"):
        apply_pruning(SCENES[1], str(write_ply(small_scene(), tmp_path / "ok.ply")), "random", 2.0,
                      *args[2:], progress=lambda *a, **k: None)  # fmt: skip


def test_pareto_figure():
    from visualizers.splats import plot_pareto

    rows = [
        {"method": m, "keep": k, "bytes": k * 1e6, "psnr": 20 + k}
        for m in ("omg", "random")
        for k in (0.1, 0.5)
    ]
    fig = plot_pareto(rows)
    assert len(fig.data) == 2 and list(fig.data[0].x) == [0.1, 0.5]
    assert plot_pareto(rows, x="bytes").layout.xaxis.title.text == "size (MB)"


def test_quick_training_lowers_the_loss(tmp_path):
    from engine.splats.train import TrainConfig, train

    cfg = TrainConfig(iters=25, n_train=3, n_test=1, width=24, height=24, init_points=200, dome_points=50,
                      sh_up_every=10, quick=True)  # fmt: skip
    rep = train(cfg, tmp_path, log=lambda *a: None)
    losses = [h["loss"] for h in rep["history"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert (tmp_path / "scene.ply").exists() and (tmp_path / "test_000.png").exists()
    assert len(read_ply(tmp_path / "scene.ply")) == 250


def test_cli_json_and_tab_download_hold_the_same_numbers(tmp_path, capsys):
    """One serialiser: `redex splats --json` and the tab's JSON download are the same PruneReport.to_dict()."""
    from app.tabs.splats import OMG_TARGETS, SCENES, apply_pruning
    from engine.splats import evaluate

    src = write_ply(small_scene(), tmp_path / "same.ply")
    assert main(["splats", "--input", str(src), "--method", "omg", "--keep", "0.4", "--storage", "fp16",
                 "--json"]) == 0  # fmt: skip
    cli = json.loads(capsys.readouterr().out)
    evaluate._REPORTS.clear()  # the tab computes its own report instead of reading the CLI's from the cache
    files = apply_pruning(SCENES[1], str(src), "omg", 0.4, OMG_TARGETS[1], 0.96, "fp16", "view_0", "fate",
                          progress=lambda *a, **k: None)[6]  # fmt: skip
    tab = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    numbers = ("count_before", "count_after", "bytes_before", "bytes_after", "psnr", "ssim", "psnr_before",
               "psnr_vs_full", "ssim_vs_full", "reference", "method", "params", "storage", "views")  # fmt: skip
    assert {k: tab[k] for k in numbers} == {k: cli[k] for k in numbers}
    assert cli["count_after"] == 120 and cli["params"]["keep"] == 0.4
