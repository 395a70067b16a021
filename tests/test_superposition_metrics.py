"""The effective-feature count against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.superposition.metrics import EPS, effective_features, entropy, feature_count, feature_distribution


def test_uniform_over_k_features_gives_k():
    codes = np.zeros((10, 50))
    codes[:, :7] = 2.0  # 7 equally used features, 43 dead ones
    p = feature_distribution(codes)
    assert p.sum() == pytest.approx(1.0)
    # dead features get EPS / (1 + 43 EPS) each; their entropy share is ~43 * 2.3e-9
    assert effective_features(p) == pytest.approx(7.0, rel=1e-6)


def test_hand_computed_distribution():
    # mean |z| = [2, 1, 1] -> p = [1/2, 1/4, 1/4]; H = 1.5 ln 2; F = 2 ** 1.5
    codes = np.array([[4.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
    p = feature_distribution(codes)
    np.testing.assert_allclose(p, [0.5, 0.25, 0.25], atol=1e-9)
    assert entropy(p) == pytest.approx(1.5 * math.log(2), rel=1e-8)
    fc = feature_count(codes, neurons=2)
    assert fc.effective_features == pytest.approx(2**1.5, rel=1e-8)
    assert fc.psi == pytest.approx(2**1.5 / 2, rel=1e-8)


def test_eps_is_added_then_renormalised():
    p = feature_distribution(np.array([[1.0, 0.0]]))
    assert p[1] == pytest.approx(EPS / (1 + 2 * EPS))
    assert p.sum() == pytest.approx(1.0, abs=1e-15)


def test_single_feature_gives_one():
    codes = np.zeros((5, 20))
    codes[:, 3] = 1.0
    assert effective_features(feature_distribution(codes)) == pytest.approx(1.0, rel=1e-6)


def test_conv_codes_are_summed_over_space():
    # [B, H, W, D]: summing over space first; here feature 0 fires at one location, feature 1 at four
    z = np.zeros((3, 2, 2, 2))
    z[:, 0, 0, 0] = 4.0
    z[:, :, :, 1] = 1.0
    np.testing.assert_allclose(feature_distribution(z), [0.5, 0.5], atol=1e-9)


def test_non_finite_codes_raise():
    with pytest.raises(ValueError, match="NaN"):
        feature_distribution(np.array([[np.nan, 1.0]]))


def test_all_zero_codes_raise():
    with pytest.raises(ValueError, match="no feature is active"):
        feature_distribution(np.zeros((4, 3)))


def test_torch_input_matches_numpy():
    torch = pytest.importorskip("torch")
    z = np.random.default_rng(0).exponential(size=(30, 12))
    np.testing.assert_allclose(feature_distribution(torch.tensor(z)), feature_distribution(z), rtol=1e-12)
