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
