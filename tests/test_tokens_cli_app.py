"""`redex tokens` JSON (one image, --eval), bad input exit codes, the overlays and the tab's handlers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main

SK = Path(__import__("skimage").__file__).parent / "data"


def _run(capsys, *argv):
    code = main(["tokens", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_image_json(capsys):
    code, out, _ = _run(
        capsys, "--image", str(SK / "chelsea.png"), "--method", "flowcut", "--keep", "0.25", "--json"
    )
    assert code == 0
    d = json.loads(out)
    assert d["grid"] == [14, 14] and len(d["kept"]) == 49 and len(d["scores"]) == 196
    assert sorted(d["kept"]) == d["kept"] and all(0 <= i < 196 for i in d["kept"])
    assert [s["layer"] for s in d["stages"]] == [1, 3, 5] and d["place"] == "vit"
    assert any("resized" in n for n in d["notices"])


def test_cli_control_same_place(capsys):
    code, out, _ = _run(capsys, "--scene", "2", "--method", "flowcut", "--keep", "0.25", "--json")
    ref = json.loads(out)
    code, out, _ = _run(capsys, "--scene", "2", "--method", "flowcut", "--keep", "0.25", "--control", "--seed", "4",
                        "--json")  # fmt: skip
    ctl = json.loads(out)
    assert code == 0 and ctl["method"] == "flowcut (random control)"
    # same layers, same counts at every step, different choice
    assert [(s["layer"], len(s["kept"])) for s in ctl["stages"]] == [
        (s["layer"], len(s["kept"])) for s in ref["stages"]
    ]
    assert ctl["kept"] != ref["kept"]


def test_cli_eval_json(capsys):
    code, out, _ = _run(capsys, "--eval", "--method", "cls-attention", "--keep", "0.5", "--n", "2", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["n_questions"] == 12 and 0 <= d["accuracy"] <= 1 and 0 <= d["accuracy_full"] <= 1


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--scene", "0", "--keep", "1.5"], "keep"),
        (["--scene", "0", "--keep", "0"], "keep"),
        (["--scene", "0", "--model", "scene-vit"], "vision-language"),
        (["--scene", "0", "--method", "cls-attention", "--layer", "9"], "out of range"),
    ],
)
def test_cli_bad_input(capsys, argv, msg):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and msg in err


def test_cli_bad_image(capsys, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, _, err = _run(capsys, "--image", str(bad), "--json")
    assert code == 2 and ("corrupt" in err or "not an image" in err)


def test_overlay_marks_kept_and_pruned():
    from visualizers.tokens import overlay_image

    img = np.full((112, 112, 3), 100, np.uint8)
    pic = np.asarray(overlay_image(img, (14, 14), [0], side=112))
    assert tuple(pic[0, 0]) == (230, 159, 0)  # outline of kept patch 0
    assert pic[4, 4].tolist() == [100, 100, 100]  # inside a kept patch: untouched
    assert pic[60, 61].max() <= 150  # pruned: dimmed (or hatched)


def test_tab_handlers_and_bad_input():
    import gradio as gr

    from app.tabs import tokens as tab

    pic, a_full, a_pruned, rows, cap = tab.prune("Generated scene", 1, None, None, "scene-vlm", "fastv", 0.25, -1,
                                                 -1, "how many objects ?", 3)  # fmt: skip
    assert pic.size == (336, 336) and a_full and a_pruned and "fastv" in cap
    with pytest.raises(gr.Error, match="keep"):
        tab.prune(
            "Generated scene", 1, None, None, "scene-vlm", "fastv", 2.0, -1, -1, "how many objects ?", 3
        )
    with pytest.raises(gr.Error, match="vision-language"):
        tab.prune("Generated scene", 1, None, None, "scene-vit", "flowcut", 0.25, -1, -1, "how many ?", 3)
    with pytest.raises(gr.Error, match="upload"):
        tab.prune("Upload", 1, None, None, "scene-vlm", "flowcut", 0.25, -1, -1, "how many objects ?", 3)
    tiles, fig, cap = tab.compare_methods("Generated scene", 1, None, None, "scene-vlm",
                                          ["cls-attention", "random-keep"], 0.25, "how many objects ?")  # fmt: skip
    assert fig.data[0].z.shape == (2, 2)


def _table():
    rows = []
    for keep, acc in ((0.5, 0.7), (0.25, 0.6), (0.11, 0.5)):
        base = {"keep": keep, "tokens": round(196 * keep), "flops": 2e9, "vit_count_accuracy": None,
                "control_accuracy_mean": acc, "control_accuracy_std": 0.01, "control_objects_kept": 0.9}  # fmt: skip
        rows.append(base | {"method": "random", "place": "pre-lm", "accuracy": acc, "objects_kept": 0.9,
                            "control": "random"})  # fmt: skip
        rows.append(base | {"method": "flowcut", "place": "vit", "accuracy": acc + 0.05, "objects_kept": 0.95,
                            "control": "random-in-vit"})  # fmt: skip
    return {"keeps": [0.5, 0.25, 0.11], "full": {"accuracy": 0.85, "tokens": 196, "flops": 3.8e9},
            "rows": rows, "n_questions": 60, "n_scenes": 10, "seeds": [0, 1], "backend": "cpu",
            "latency_ms": {"flowcut@0.25": 12.0}}  # fmt: skip


def test_pareto_plot_and_rows():
    from visualizers.tokens import pareto_rows, plot_pareto

    t = _table()
    fig = plot_pareto(t)
    names = [tr.name for tr in fig.data]
    assert (
        "random before LM (mean ± std)" in names
        and "flowcut" in names
        and "random at flowcut's place" in names
    )
    band = fig.data[0]
    assert np.allclose(max(band.y), 0.71) and np.allclose(min(band.y), 0.49)  # mean ± std
    rows = pareto_rows(t)
    assert len(rows) == 7 and rows[0]["method"] == "all tokens"
    assert [r["latency ms"] for r in rows if r["method"] == "flowcut" and r["kept"] == 0.25] == [12.0]


def test_agreement_plot():
    from visualizers.tokens import plot_agreement

    fig = plot_agreement(["a", "b"], np.array([[1.0, 0.25], [0.25, 1.0]]), keep=0.25)
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == 1 and fig.layout.width == 560


def test_cli_json_and_tab_download_hold_the_same_numbers(capsys):
    from app.tabs import tokens as tab
    from engine.tokens.run import PRUNE_CACHE

    code, out, _ = _run(capsys, "--scene", "2", "--method", "cls-attention", "--keep", "0.25", "--layer", "3",
                        "--json")  # fmt: skip
    cli = json.loads(out)
    PRUNE_CACHE.clear()  # the tab computes afresh
    files = tab.download("Generated scene", 2, None, None, "scene-vlm", "cls-attention", 0.25, 3, -1,
                         "how many objects ?", 3)  # fmt: skip
    data = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert (
        code == 0
        and any(f.endswith("_summary.csv") for f in files)
        and any(f.endswith(".png") for f in files)
    )
    for key in ("method", "place", "keep", "grid", "kept", "scores", "stages", "answer_full", "answer_pruned",
                "flops", "flops_full", "info"):  # fmt: skip
        assert data[key] == cli[key], key
    assert data["provenance"]["params"] == cli["provenance"]["params"]
