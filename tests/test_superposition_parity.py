"""One contract for the superposition family: `redex sae --json` and the tab's download hold the same numbers
for the same input; the tab's controls and the CLI's --method come from the registry; the engine's
comparison, the feature map's hand-over through gr.State, and the engine's caches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gradio")


def test_cli_json_and_tab_download_hold_the_same_numbers(capsys):
    from app.cli import main
    from app.tabs.superposition import toy_handler

    argv = ["sae", "--toy", "--features", "8", "--neurons", "3", "--sparsity", "0.5", "0.9", "--steps", "300"]
    assert main([*argv, "--l1", "1.0", "--expansion", "4", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)

    cap, _, _, table, files = toy_handler(8, 3, "0.5, 0.9", 300, 1.0, 4, progress=None)
    paths = {Path(f).suffix: Path(f) for f in files}
    download = json.loads(paths[".json"].read_text())
    for key in ("effective_features", "true_features", "psi"):
        assert download[key] == cli[key], key
    assert download["sparsities"] == cli["sparsity"] == [0.5, 0.9]
    assert download["pearson_r"] == cli["pearson_r"]
    assert download["n_hidden"] == cli["neurons"] == 3 and download["n_features"] == cli["features"] == 8
    assert download["provenance"]["params"] == cli["provenance"]["params"]
    # the CSV is the result's own table, the on-screen table its rounded copy
    csv_rows = paths[".csv"].read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 2 and len(table) == 2
    assert table[1][2] == round(cli["effective_features"][1], 2)


def test_toy_sweep_validates_through_the_registry():
    from engine.registry import InputError
    from engine.superposition.toy import toy_sweep

    with pytest.raises(InputError, match="steps"):
        toy_sweep("0.5", n_features=8, n_hidden=3, steps=5)  # below the Param's low bound
    with pytest.raises(InputError, match="sae_l1"):
        toy_sweep((0.5,), sae_l1=-1.0)
    with pytest.raises(InputError, match="numbers separated by commas"):
        toy_sweep("0.5, half")


def test_controls_and_cli_choices_come_from_the_registry():
    import gradio as gr

    from app.cli import build_parser
    from app.tabs import superposition as tab
    from engine.registry import names

    with gr.Blocks():
        tab.build_tab()
    measure = tab._method("measure")
    assert (
        measure.role == "measure" and tab._method("toy").role == "toy" and tab._method("scan").role == "scan"
    )
    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "sae" in a.choices)
    method_action = next(a for a in sub.choices["sae"]._actions if a.dest == "method")
    assert list(method_action.choices) == names("superposition")
    assert method_action.default == measure.name


def _tiny_measurement():
    from engine.superposition.measure import LayerMeasurement, measure_activations
    from engine.superposition.sae import SAEConfig

    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(48, 8, generator=g), dim=1)
    acts = ((torch.rand(600, 48, generator=g) < 0.1).float() * torch.rand(600, 48, generator=g)) @ dirs
    metrics, _, sae = measure_activations(acts, config=SAEConfig(max_epochs=3), device="cpu")
    from engine.results import Provenance

    prov = Provenance(method="sae-feature-count", params={"l1": 0.1, "expansion": 4.0}, input_fingerprint="t")
    return LayerMeasurement(provenance=prov, model="synthetic", layer=0, sae=sae, **metrics)


@pytest.mark.slow
def test_feature_map_receives_the_measurement_through_state():
    """The `.success()` step reads the measurement the Measure step returned (no inputs re-parsed)."""
    from app.tabs.superposition import feature_map_handler

    m = _tiny_measurement()
    fig, cap = feature_map_handler(m, progress=None)
    assert len(fig.data[0].x) == sum(f > 0 for f in m.freq)
    assert "live decoder directions" in cap


def test_measurement_and_comparison_are_cached_in_the_engine(monkeypatch):
    from engine.superposition import compare as cmp_mod
    from engine.superposition import measure as measure_mod

    calls = []

    def fake(
        model, layer, site, text, seq_len, sae_path, sae_cfg_path, allow_network, seed, progress, params
    ):
        calls.append((model, layer, params["l1"]))
        m = _tiny_measurement()
        m.model, m.layer, m.provenance.params = model, layer, {**params, "model": model, "layer": layer}
        return m

    monkeypatch.setattr(measure_mod, "_measure", fake)
    measure_mod._MEASURED.clear()
    cmp_mod._COMPARISONS.clear()
    cells = [{"model": "m", "layer": 1, "params": {"l1": 0.2}}, {"model": "m", "layer": 2}]
    res = cmp_mod.compare(None, cells, {"max_activations": 512, "max_epochs": 2})
    assert [r["cell"] for r in res.rows] == ["A", "B"] and res.methods == ["sae-feature-count"] * 2
    assert [r["l1"] for r in res.rows] == [0.2, 0.1]
    assert res.rows[0]["effective_features"] == res.cells[0].effective_features
    again = cmp_mod.compare(None, cells, {"max_activations": 512, "max_epochs": 2})
    assert again is res and len(calls) == 2  # the comparison is cached by its input
    measure_mod.measure_layer("m", 1, l1=0.2, max_activations=512, max_epochs=2)
    assert len(calls) == 2  # and so is each cell's measurement
    assert set(json.loads(res.to_json())) >= {"rows", "cells", "labels", "settings"}
    np.testing.assert_allclose(json.loads(res.to_json())["cells"][1]["p"], res.cells[1].p, rtol=1e-6)
    from engine.registry import InputError

    with pytest.raises(InputError, match="max_epochs"):
        cmp_mod.compare(None, cells, {"max_epochs": 0})
    with pytest.raises(InputError, match="one-layer measurement"):
        cmp_mod.compare(None, [{"model": "m", "method": "toy-superposition"}, cells[1]])
