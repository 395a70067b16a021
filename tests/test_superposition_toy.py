"""Toy models of superposition: known ground truth for the feature count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.registry import InputError, get
from engine.superposition.toy import ToyConfig, pearson, toy_sweep, train_toy_models


@pytest.fixture(scope="module")
def sweep():
    return toy_sweep((0.0, 0.7, 0.9, 0.99), n_features=12, n_hidden=4, steps=1500, seed=0)


def test_dense_features_are_not_superposed_and_sparse_ones_are(sweep):
    t = sweep.true_features
    assert t[0] <= sweep.n_hidden + 2  # dense: about m features (a short run leaves a few half-decayed)
    assert t[-1] > sweep.n_hidden + 4  # very sparse: many more features than neurons
    assert t == sorted(t)
    assert sweep.effective_features[0] <= sweep.n_hidden + 0.5  # F of a dense model is at most about m


def test_measured_f_tracks_ground_truth(sweep):
    f = np.asarray(sweep.effective_features)
    assert f[-1] > f[0] + 2
    assert sweep.pearson_r > 0.85
    assert len(sweep.gram) == 4 and np.asarray(sweep.gram[0]).shape == (12, 12)
    # W^T W diagonal = squared column norms
    np.testing.assert_allclose(np.diag(sweep.gram[-1]), np.asarray(sweep.column_norms[-1]) ** 2, atol=1e-3)


def test_column_norm_rule_on_a_hand_built_model():
    toys = train_toy_models((0.5,), ToyConfig(n_features=4, n_hidden=2, steps=1))
    toys.W = torch.tensor([[[1.0, 0.0, 0.3, 0.0], [0.0, 0.9, 0.0, 0.49]]])
    assert toys.true_features().tolist() == [2]


def test_pearson_by_hand():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_bad_toy_inputs():
    with pytest.raises(InputError, match="neurons < features"):
        toy_sweep((0.5,), n_features=4, n_hidden=4)
    with pytest.raises(InputError, match="sparsity"):
        toy_sweep((1.5,))
    with pytest.raises(InputError, match="levels"):
        toy_sweep(tuple(np.linspace(0, 0.9, 40)))


def test_registered():
    m = get("toy-superposition")
    assert m.family == "superposition" and m.paper is not None
    assert get("sae-feature-count").defaults()["l1"] == 0.1
    assert get("sae-feature-count").defaults()["expansion"] == 4.0
    assert get("sae-feature-count").defaults()["batch_size"] == 128
