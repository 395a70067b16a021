"""The layer scan's stacked training and band, on synthetic activations (no model)."""

from __future__ import annotations

import pytest
import torch

from engine.superposition.measure import scan_activations, sweep_settings
from engine.superposition.sae import SAEConfig, sae_stats, train_sae


def _acts(seed, k=24):
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(k, 8, generator=g), dim=1)
    return ((torch.rand(600, k, generator=g) < 0.1).float() * torch.rand(600, k, generator=g)) @ dirs


def test_scan_band_contains_default_and_matches_single_training():
    acts = {0: _acts(0), 3: _acts(1)}
    cfg = SAEConfig(max_epochs=3)
    cols = scan_activations(acts, cfg, do_sweep=True, seed=0, device="cpu")
    assert cols["layers"] == [0, 3] and cols["neurons"] == [8, 8]
    for lo, f, hi in zip(cols["f_low"], cols["effective_features"], cols["f_high"]):
        assert lo <= f <= hi
    assert [r["setting"] for r in cols["sweep"][0]["runs"]] == [s for s, _ in sweep_settings(cfg)]
    # a larger dictionary spreads mass over more features
    runs = {r["setting"]: r["F"] for r in cols["sweep"][0]["runs"]}
    assert runs["expansion x2"] > runs["expansion x0.5"]
    # the stacked SAE of layer 0 measures about what train_sae gives alone
    single = train_sae(acts[0], cfg, seed=0, device="cpu")
    from engine.superposition.metrics import feature_count

    f_single = feature_count(sae_stats(single.sae, acts[0]).mean_abs[None], 8).effective_features
    # (k = 1 and k = 2 draw different initial weights and batch orders, so only loosely)
    assert f_single == pytest.approx(cols["effective_features"][0], rel=0.25)
