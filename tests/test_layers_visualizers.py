"""Figure tests for visualizers.layers on a hand-made scan (no model needed)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from engine.layers.curve import DropCurve
from engine.layers.scan import LayerScan
from engine.results import Provenance
from visualizers.layers import (
    caption_curve,
    caption_scan,
    plot_drop_curve,
    plot_head_similarity,
    plot_hidden_similarity,
    plot_importance_bars,
    plot_sublayer_heatmap,
)


@pytest.fixture
def scan():
    n = 6
    attn = np.array([0.6, 0.9, 0.97, 0.98, 0.99, 0.995])
    return LayerScan(
        provenance=Provenance("layer-similarity", {}, "abc", timings={"forward": 1.5}),
        model="toy", layout="llama", n_layers=n, n_heads=3, samples=2, seq_len=16, tokens=32,
        attn_similarity=attn, mlp_similarity=attn - 0.05, block_similarity=attn - 0.1,
        hidden_similarity=np.eye(n + 1), head_layer=5, head_similarity=np.eye(3),
    )  # fmt: skip


def test_sublayer_heatmap_values_and_dropped_boxes(scan):
    fig = plot_sublayer_heatmap(scan, dropped={"attn": [4, 5], "mlp": [1]})
    assert isinstance(fig, go.Figure)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3, 6)
    np.testing.assert_allclose(z[0], scan.attn_similarity)
    assert len(fig.layout.shapes) == 3
    assert fig.layout.width and fig.layout.height  # fixed size for screenshots
    assert fig.data[0].colorscale[0][1] != fig.data[0].colorscale[-1][1]


def test_importance_bars_are_one_minus_similarity(scan):
    fig = plot_importance_bars(scan)
    assert [t.name for t in fig.data] == ["Attention", "MLP", "Block"]
    np.testing.assert_allclose(fig.data[0].y, 1 - scan.attn_similarity)
    assert fig.layout.yaxis.type == "log"


def test_square_heatmaps(scan):
    assert np.asarray(plot_hidden_similarity(scan).data[0].z).shape == (7, 7)
    fig = plot_head_similarity(scan)
    assert (
        np.asarray(fig.data[0].z).shape == (3, 3)
        and "layer 5" in fig.layout.title.text
        and fig.layout.width == 440
    )


def test_drop_curve_figure_and_caption(scan):
    curve = DropCurve(
        provenance=Provenance("drop-curve", {}, "x"), model="toy", counts=[0, 2, 4],
        perplexity={"attn": [10.0, 11.0, 13.0], "random-attn": [10.0, 20.0, 40.0]},
        dropped={"attn": [{}, {}, {}], "random-attn": [{}, {}, {}]}, full_perplexity=10.0, seeds=[42],
    )  # fmt: skip
    fig = plot_drop_curve(curve)
    assert [t.name for t in fig.data] == ["attn", "random-attn"]
    assert fig.data[1].line.dash == "dash"
    text = caption_curve(curve)
    assert "attn: 13.0" in text and "random-attn: 40.0" in text
    rows = curve.tables()["curve"]
    assert len(rows) == 6 and rows[-1]["perplexity"] == 40.0


def test_scan_caption_names_method_input_and_numbers(scan):
    text = caption_scan(scan)
    assert "toy" in text and "2 samples × 16" in text and "LLM-Drop" in text
    assert "[5, 4, 3, 2]" in text  # most redundant attention layers first


def _full_curve(labels, full=35.73):
    counts = [0, 2, 4, 6, 8]
    perplexity = {
        s: [full] + [full * (1 + 0.3 * (i + 1) * k) for k in range(1, 5)] for i, s in enumerate(labels)
    }
    return DropCurve(
        provenance=Provenance("drop-curve", {}, "x"), model="toy", counts=counts, perplexity=perplexity,
        dropped={s: [{}] * len(counts) for s in labels}, full_perplexity=full, seeds=[42],
        heldout={"windows": 4, "tokens_per_window": 256, "tokens": 1024, "source": "the held-out part of toy"},
    )  # fmt: skip


def test_drop_curve_axis_spans_the_values_not_1e36():
    curve = _full_curve(["attn", "mlp", "block", "random-attn"])
    fig = plot_drop_curve(curve)
    values = [v for vs in curve.perplexity.values() for v in vs]
    lo, hi = fig.layout.yaxis.range  # log10 units
    assert fig.layout.yaxis.type == "log"
    assert lo <= np.log10(min(values)) and hi >= np.log10(max(values)) and hi - lo < 2
    # the full-model label sits at the line, in the axis' log units, and names the number
    (label,) = [a for a in fig.layout.annotations if "full model" in a.text]
    assert label.y == pytest.approx(np.log10(35.73)) and "35.73" in label.text
    assert fig.layout.shapes[0].y0 == pytest.approx(35.73)  # the line itself in data units


def test_every_curve_has_its_own_colour_controls_dashed():
    from engine.layers.curve import curve_choices
    from visualizers.style import OKABE_ITO

    labels = list(curve_choices())
    fig = plot_drop_curve(_full_curve(labels))
    colours = [t.line.color for t in fig.data]
    assert len(set(colours)) == len(labels) and set(colours) <= set(OKABE_ITO)
    assert all((t.line.dash == "dash") == t.name.startswith("random") for t in fig.data)
    default = plot_drop_curve(_full_curve(["attn", "mlp", "block", "random-attn"]))
    assert len({t.line.color for t in default.data}) == 4  # MLP and random-attn no longer share orange


def test_captions_state_the_heldout_windows():
    text = caption_curve(_full_curve(["attn"]))
    assert "4 windows × 256 tokens (1,024 tokens) of the held-out part of toy" in text
    assert "same windows as Apply" in text
