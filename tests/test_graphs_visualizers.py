"""Figures for graph summaries: exact matrices on small graphs, the scale guard on large ones."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from engine.graphs.compare import summarize
from engine.graphs.costs import reconstruct_dense
from engine.graphs.io import builtin, sbm
from visualizers.graphs import caption, plot_adjacency, plot_size_error, plot_summary_graphs


def test_adjacency_panels_are_exact_for_small_graphs():
    g = builtin("les_miserables")
    r = summarize(g, "ssumm", budget=0.3)
    fig = plot_adjacency(g, r)
    a, a_hat = np.array(fig.data[0].z), np.array(fig.data[1].z)
    order = np.argsort(r.summary.labels, kind="stable")
    np.testing.assert_allclose(a, g.adjacency.toarray()[order][:, order], atol=1e-12)
    np.testing.assert_allclose(a_hat, reconstruct_dense(g.n, r.summary)[order][:, order], atol=1e-12)
    assert fig.data[0].zmax == fig.data[1].zmax  # same colour range on both sides


def test_adjacency_block_averages_preserve_density():
    g = sbm(20_000, seed=0)
    r = summarize(g, "ssumm", budget=0.3)
    fig = plot_adjacency(g, r, max_bins=50)
    a, a_hat = np.array(fig.data[0].z), np.array(fig.data[1].z)
    assert a.shape == (50, 50)
    n = g.n
    counts = np.bincount(np.arange(n) * 50 // n, minlength=50).astype(float)
    pairs = np.outer(counts, counts) - np.diag(counts)
    # block averages weighted by their pair counts give back the totals: 2|E| and sum of A_hat
    assert (a * pairs).sum() == np.float64(2 * g.m) or np.isclose((a * pairs).sum(), 2 * g.m)
    s = r.summary
    assert np.isclose((a_hat * pairs).sum(), 2 * s.se_count.sum(), rtol=1e-9)


def test_summary_graph_scale_guard():
    g = sbm(20_000, seed=0)
    r = summarize(g, "ssumm", budget=0.3)
    fig = plot_summary_graphs(g, r, max_elements=1500)
    assert isinstance(fig, go.Figure)
    assert fig.layout.width == 860 and fig.layout.height == 470
    drawn_nodes = len(fig.data[1].x)
    drawn_edges = int(np.isfinite(np.array(fig.data[0].x, dtype=float)).sum() // 2)
    assert drawn_nodes + drawn_edges <= 1500
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "Scale guard" in notes


def test_summary_graph_small_draws_everything():
    g = builtin("karate")
    r = summarize(g, "ssumm", budget=0.5)
    fig = plot_summary_graphs(g, r)
    assert len(fig.data[1].x) == g.n
    assert int(np.isfinite(np.array(fig.data[0].x, dtype=float)).sum() // 2) == g.m
    assert not any("Scale guard" in (a.text or "") for a in fig.layout.annotations)
    sizes = np.array(fig.data[-1].marker.size)
    assert len(fig.data[-1].x) == r.supernodes and sizes.max() > sizes.min()


def test_size_error_curve_and_caption():
    g = builtin("les_miserables")
    rows = []
    for m in ("ssumm", "random-merge"):
        for b in (0.2, 0.4):
            r = summarize(g, m, budget=b)
            rows.append({"method": m, "budget": b, **r.metrics()})
    fig = plot_size_error(rows, error="l2")
    assert [t.name for t in fig.data] == ["ssumm", "random-merge"]
    assert list(fig.data[0].x) == sorted(fig.data[0].x)
    text = caption(g, r)
    assert "random-merge" in text and "77 nodes" in text and f"{r.l2_error:.3e}" in text
