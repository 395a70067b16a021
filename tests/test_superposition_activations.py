"""Activation capture on SmolLM2 (hooks removed, early stop, BOS dropped) and the `redex sae` command."""

from __future__ import annotations

import json

import pytest
import torch

from engine.registry import InputError


@pytest.fixture(scope="module")
def smol():
    from engine.models import load_model

    try:
        return load_model("smollm2")
    except InputError as e:  # the model's pip package is missing on this machine
        pytest.skip(str(e))


def _n_hooks(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def test_capture_shapes_and_hooks_removed(smol):
    from engine.superposition.activations import collect_activations

    before = _n_hooks(smol.model)
    a = collect_activations(smol, [1, 2], site="mlp_out", max_activations=300, seq_len=32)
    assert _n_hooks(smol.model) == before
    assert set(a.acts) == {1, 2}
    for layer in (1, 2):
        assert a.acts[layer].shape[1] == smol.hidden_size
        assert a.acts[layer].shape[0] + a.dropped[layer] == 300
        assert a.rows[layer].shape == (a.acts[layer].shape[0], 2)
        assert int(a.rows[layer][:, 1].min()) >= 1  # position 0 (BOS) is never a row
    assert not torch.equal(a.acts[1][:10], a.acts[2][:10])


def test_resid_matches_hidden_states(smol):
    from engine.corpus import default_corpus, token_windows
    from engine.superposition.activations import collect_activations

    a = collect_activations(smol, [3], max_activations=31 * 2, seq_len=32)
    ids = token_windows(smol.tokenizer, default_corpus().calibration, 2, 32)
    with torch.no_grad():
        hs = smol.model(input_ids=ids, output_hidden_states=True).hidden_states[4]  # after block 3
    ref = hs[:, 1:].reshape(-1, hs.shape[-1])
    keep = a.rows[3]
    torch.testing.assert_close(a.acts[3], ref[(keep[:, 0] * 31 + keep[:, 1] - 1)], rtol=1e-4, atol=1e-3)


def test_layer_out_of_range(smol):
    from engine.superposition.activations import collect_activations

    with pytest.raises(InputError, match="out of range"):
        collect_activations(smol, [smol.n_layers], max_activations=100)
    with pytest.raises(InputError, match="site"):
        collect_activations(smol, [0], site="nope", max_activations=100)


def test_cli_layer_json(smol, capsys):
    from app.cli import main

    rc = main(
        [
            "sae",
            "--model",
            "smollm2",
            "--layer",
            "1",
            "--max-activations",
            "512",
            "--max-epochs",
            "2",
            "--json",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("effective_features", "neurons", "psi", "l0", "explained_variance", "dead_fraction"):
        assert key in out
    assert out["neurons"] == 576
    assert out["psi"] == pytest.approx(out["effective_features"] / 576)
    rc = main(["sae", "--model", "smollm2", "--layer", "99", "--json"])
    assert rc == 2
    assert "out of range" in capsys.readouterr().err


def test_cli_toy_json(capsys):
    from app.cli import main

    rc = main(
        ["sae", "--toy", "--features", "8", "--neurons", "3", "--sparsity", "0.9", "--steps", "300", "--json"]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["true_features"], int) and out["effective_features"] > 0
