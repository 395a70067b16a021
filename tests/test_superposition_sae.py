"""Tied SAE training and statistics (engine/superposition/sae.py), SAELens-format files (saelens_io.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.registry import InputError
from engine.superposition.sae import (
    SAEConfig,
    SparseAutoencoder,
    check_activations,
    sae_stats,
    train_sae,
    train_sae_stack,
)
from engine.superposition.saelens_io import load_saelens, save_saelens


def sparse_data(n=2000, d=16, k=48, p=0.04, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1)
    c = (torch.rand(n, k, generator=g) < p).float() * torch.rand(n, k, generator=g)
    return scale * c @ dirs


FAST = SAEConfig(max_epochs=25, patience=4)


def test_training_improves_reconstruction():
    x = sparse_data()
    tr = train_sae(x, FAST, seed=0)
    assert tr.recon_losses[-1] < 0.5 * tr.recon_losses[0]
    st = sae_stats(tr.sae, x)
    assert st.explained_variance > 0.8
    assert 0 < st.l0 < tr.sae.d_sae
    assert 0.0 <= st.dead_fraction <= 1.0 and 0.0 <= st.dense_fraction <= 1.0
    assert tr.sae.d_sae == 64  # expansion 4 x 16


def test_best_epoch_is_kept():
    x = sparse_data(seed=1)
    tr = train_sae(x, SAEConfig(max_epochs=8, patience=2, min_delta=0.0), seed=0)
    assert tr.losses[tr.best_epoch] == min(tr.losses)


def test_stack_instances_are_independent():
    a, b, c = sparse_data(seed=1), sparse_data(seed=2), sparse_data(seed=3) * 3
    cfg = SAEConfig(max_epochs=3, patience=10)
    s1 = train_sae_stack(torch.stack([a, b]), cfg, seed=5, device="cpu")
    s2 = train_sae_stack(torch.stack([a, c]), cfg, seed=5, device="cpu")
    # same data and seed for instance 0: identical weights whatever instance 1 trains on
    torch.testing.assert_close(s1[0].sae.weight, s2[0].sae.weight, rtol=0, atol=0)
    assert not torch.equal(s1[1].sae.weight, s2[1].sae.weight)


def test_rms_normalisation_makes_scale_irrelevant():
    x = sparse_data(seed=4)
    cfg = SAEConfig(max_epochs=3)
    w1 = train_sae(x, cfg, seed=0, device="cpu").sae
    w2 = train_sae(x * 100, cfg, seed=0, device="cpu").sae
    # same weights up to float error: the data are scaled to the same RMS before training
    torch.testing.assert_close(w1.weight, w2.weight, rtol=1e-3, atol=1e-4)


def test_saelens_round_trip(tmp_path):
    x = sparse_data(seed=2, scale=5.0)
    sae = train_sae(x, SAEConfig(max_epochs=2), seed=0, device="cpu").sae
    assert sae.scale != 1.0
    save_saelens(sae, tmp_path / "sae", hook_name="blocks.0.hook_resid_post")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_in"] == 16 and cfg["d_sae"] == 64
    loaded = load_saelens(tmp_path / "sae", d_in=16)
    with torch.no_grad():
        # the scale is folded into the untied weights: same codes (up to float error), same reconstruction
        torch.testing.assert_close(loaded.encode(x), sae.encode(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(loaded(x)[1], sae(x)[1], rtol=1e-4, atol=1e-4)


def test_saelens_shape_mismatch_is_a_clear_error(tmp_path):
    sae = SparseAutoencoder(16, 64)
    save_saelens(sae, tmp_path / "s")
    with pytest.raises(InputError, match="width 16.*width 576"):
        load_saelens(tmp_path / "s", d_in=576)
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    cfg["d_sae"] = 99
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="d_sae"):
        load_saelens(tmp_path / "s")


def test_saelens_rejects_pickles_and_bad_tensors(tmp_path):
    import safetensors.torch

    bad = tmp_path / "ae.pt"
    bad.write_bytes(b"not a pickle we would ever open")
    with pytest.raises(InputError, match="safetensors"):
        load_saelens(bad)
    f = tmp_path / "w.safetensors"
    safetensors.torch.save_file(
        {"W_enc": torch.zeros(8, 32), "b_enc": torch.zeros(32), "W_dec": torch.zeros(8, 32)}, f
    )
    with pytest.raises(InputError, match="do not agree"):
        load_saelens(f)
    safetensors.torch.save_file({"W_enc": torch.zeros(8, 32)}, f)
    with pytest.raises(InputError, match="lacks"):
        load_saelens(f)


def test_jumprelu_and_topk_files(tmp_path):
    import safetensors.torch

    g = torch.Generator().manual_seed(0)
    t = {
        "W_enc": torch.randn(8, 32, generator=g),
        "b_enc": torch.zeros(32),
        "W_dec": torch.randn(32, 8, generator=g),
        "b_dec": torch.zeros(8),
        "threshold": torch.full((32,), 0.5),
    }
    d = tmp_path / "j"
    d.mkdir()
    safetensors.torch.save_file(t, d / "sae_weights.safetensors")
    (d / "cfg.json").write_text(json.dumps({"architecture": "jumprelu", "d_in": 8, "d_sae": 32}))
    x = torch.randn(5, 8, generator=g)
    z = load_saelens(d).encode(x)
    pre = x @ t["W_enc"]
    torch.testing.assert_close(z, pre * (pre > 0.5))
    (d / "cfg.json").write_text(
        json.dumps({"d_in": 8, "d_sae": 32, "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 3}})
    )
    z = load_saelens(d).encode(x)
    assert int((z > 0).sum(dim=1).max()) <= 3


def test_bad_activations():
    with pytest.raises(InputError, match="too few"):
        check_activations(torch.zeros(10, 4))
    x = torch.ones(300, 4)
    x[3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        check_activations(x)
    with pytest.raises(InputError, match="matrix"):
        check_activations(torch.zeros(300))
    with pytest.raises(InputError, match="width"):
        sae_stats(SparseAutoencoder(4, 16), torch.zeros(300, 5))


def test_training_is_deterministic():
    x = sparse_data(seed=3)
    a = train_sae(x, SAEConfig(max_epochs=2), seed=7, device="cpu").sae.weight
    b = train_sae(x, SAEConfig(max_epochs=2), seed=7, device="cpu").sae.weight
    assert torch.equal(a, b)
    assert np.isfinite(a.detach().numpy()).all()
