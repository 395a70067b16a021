"""Figures and captions of the superposition family, from hand-built results (no model, no training)."""

from __future__ import annotations

import numpy as np

from engine.results import Provenance
from engine.superposition.feature_map import FeatureMap
from engine.superposition.measure import LayerMeasurement, LayerScan
from engine.superposition.toy import ToySweepResult
from visualizers.superposition import (
    caption_layer,
    caption_scan,
    caption_toy,
    metrics_rows,
    plot_compare,
    plot_feature_map,
    plot_layer_scan,
    plot_toy_gram,
    plot_toy_sweep,
)


def _prov(**params):
    return Provenance(
        method="t",
        params={"l1": 0.1, "expansion": 4.0, "lr": 1e-3, "batch_size": 128, **params},
        input_fingerprint="x",
    )


def _measurement(layer, d_sae=64, dense=0.1, seed=0):
    p = np.random.default_rng(seed).dirichlet(np.ones(d_sae))
    f = float(np.exp(-(p * np.log(p)).sum()))
    return LayerMeasurement(
        provenance=_prov(),
        model="smollm2",
        layer=layer,
        site="resid",
        hook=f"blocks.{layer}.hook_resid_post",
        neurons=16,
        d_sae=d_sae,
        n_activations=1000,
        entropy=float(np.log(f)),
        effective_features=f,
        psi=f / 16,
        mse=0.1,
        explained_variance=0.9,
        l0=5.0,
        dead_fraction=0.0,
        dense_fraction=dense,
        epochs=12,
        converged=True,
        p=p.tolist(),
        freq=np.full(d_sae, 0.05).tolist(),
    )


def test_layer_scan_figure():
    scan = LayerScan(
        provenance=_prov(sweep=True, max_epochs=30),
        model="smollm2",
        layers=[0, 1, 2],
        neurons=[576] * 3,
        effective_features=[600.0, 900.0, 1200.0],
        psi=[600 / 576, 900 / 576, 1200 / 576],
        f_low=[400.0, 700.0, 1000.0],
        f_high=[800.0, 1500.0, 2000.0],
        explained_variance=[0.9] * 3,
        l0=[10.0] * 3,
        dead_fraction=[0.0] * 3,
        epochs=[30] * 3,
        n_activations=1020,
    )
    fig = plot_layer_scan(scan)
    assert fig.layout.width and fig.layout.height
    bars = fig.data[0]
    np.testing.assert_allclose(bars.error_y.array, [200, 600, 800])
    np.testing.assert_allclose(bars.error_y.arrayminus, [200, 200, 200])
    assert fig.layout.yaxis.range[1] >= 2000  # the band fits on the axis
    assert "layer 2" in caption_scan(scan)


def test_toy_figures():
    k, n = 3, 6
    gram = [np.eye(n).tolist() for _ in range(k)]
    res = ToySweepResult(
        provenance=_prov(importance_decay=0.9, sae_expansion=4.0, sae_l1=1.0),
        sparsities=[0.0, 0.5, 0.9],
        true_features=[2, 3, 5],
        effective_features=[2.1, 3.2, 4.6],
        psi=[1.0, 1.6, 2.3],
        pearson_r=0.99,
        n_features=n,
        n_hidden=2,
        gram=gram,
        column_norms=[[1.0] * n] * k,
    )
    fig = plot_toy_sweep(res)
    assert "0.990" in fig.layout.title.text
    g = plot_toy_gram(res)
    assert len(g.data) == 3 and all(
        tr.zmin == -1 and tr.zmax == 1 for tr in g.data
    )  # one shared colour range
    assert "Pearson r = 0.990" in caption_toy(res)


def test_compare_uses_identical_axes():
    a, b = _measurement(1, seed=1), _measurement(2, d_sae=128, seed=2)
    fig = plot_compare(a, b)
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range
    assert fig.layout.yaxis.type == fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis.range == fig.layout.yaxis2.range
    assert len(metrics_rows(a)) == len(metrics_rows(b))


def test_dense_codes_get_a_warning():
    assert "dense" in caption_layer(_measurement(1, dense=0.9)).lower()
    assert "Note" not in caption_layer(_measurement(1, dense=0.01))


def test_feature_map_figure():
    fm = FeatureMap(provenance=_prov(), features=[0, 1, 2], xy=[[0, 0], [1, 1], [2, 0]], freq=[0.1, 0.001, 0.0],
                    mass=[0.5, 0.3, 0.2], hover=["a", "b", "c"], label="x")  # fmt: skip
    fig = plot_feature_map(fm)
    assert list(fig.data[0].text) == ["a", "b", "c"]
    assert np.isfinite(np.asarray(fig.data[0].marker.color, dtype=float)).all()  # zero frequency clipped
