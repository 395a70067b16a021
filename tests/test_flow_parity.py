"""The CLI's JSON and the Information Flow tab's downloads hold the same numbers for the same input, both for
one graph (`redex flow` vs the Apply button's JSON) and for a comparison (`redex flow --compare` vs the Compare
button's JSON); each side computes from cold caches, so the numbers are recomputed, not shared."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main

pytest.importorskip("gradio")
WALL_TIMES = {"timings", "created", "importance_s", "graph_s"}  # seconds differ from run to run


def _cli(capsys, *argv) -> dict:
    from engine.flow.run import clear_caches

    clear_caches()
    assert main(["flow", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _close(a, b, path=""):
    """Equal structure and strings; numbers equal to float precision (timings and creation times excepted)."""
    if isinstance(a, dict):
        keys = set(a) - WALL_TIMES
        assert keys == set(b) - WALL_TIMES, path
        for k in keys:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=path)
    else:
        assert a == b, path


def test_cli_json_equals_tab_download(capsys):
    from app.tabs.flow import run_flow
    from engine.flow.run import clear_caches

    cli = _cli(capsys, "--scene", "2", "--method", "attention-flow", "--top-k", "8", "--top-edges", "120")
    clear_caches()
    *_, download = run_flow("Generated scene", 2, None, None, "scene-vit", "attention-flow", 0.5, 8, 120, "",
                            False, "CLS / answer token")  # fmt: skip
    tab = json.loads(open(download).read())
    assert cli["params"] == {"residual": 0.5, "top_k": 8, "top_edges": 120, "output": 0}
    assert len(cli["edges"]) == 120 and len(cli["entropy"]) == 8
    _close(cli, tab)


def test_cli_compare_equals_tab_compare_download(capsys):
    from app.tabs.flow import compare_flow
    from engine.flow.run import clear_caches

    cli = _cli(capsys, "--scene", "1", "--model", "scene-vlm", "--question", "how many objects ?",
               "--compare", "attention-rollout", "attention-flow", "--target", "patches")  # fmt: skip
    clear_caches()
    *_, files = compare_flow("Generated scene", 1, None, None, "scene-vlm", ["attention-rollout", "attention-flow"],
                             0.5, 16, 300, "how many objects ?", False, "all image patches", 0.1)  # fmt: skip
    tab = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert (
        cli["methods"] == ["attention-rollout", "attention-flow"] and cli["settings"]["target"] == "patches"
    )
    assert len(cli["importance"]) == 2 and -1 <= cli["spearman"][0][1] <= 1
    _close(cli, tab)
