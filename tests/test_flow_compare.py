"""The flow comparison (engine.flow.compare): rank agreement and top-patch IoU against scipy and by hand, one
cached forward pass for every method, and a toy method registered here reaching the tab and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from engine.flow import compare as C
from engine.registry import InputError


def test_rank_agreement_is_spearman():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x = rng.random((3, 40))
    x[2, :10] = x[2, 10]  # ties get mean ranks, as in scipy
    got = C.rank_agreement(x)
    for i in range(3):
        for j in range(3):
            np.testing.assert_allclose(got[i, j], spearmanr(x[i], x[j]).statistic, atol=1e-12)


def test_top_iou_hand_computed():
    imp = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.3, 0.2, 0.4], [0.4, 0.3, 0.2, 0.1]])
    iou = C.top_iou(imp, 0.5)  # top 2 of 4: {0, 1}, {3, 1}, {0, 1}
    np.testing.assert_allclose(iou, [[1, 1 / 3, 1], [1 / 3, 1, 1 / 3], [1, 1 / 3, 1]])


def test_compare_on_the_scene_vit():
    from engine.flow import run
    from engine.flow.run import flow_for_image, method_params
    from engine.vision import scenes

    img = scenes.make_batch("val", 5, 1).image_uint8(0)
    cmp = C.compare(img, ["attention-rollout", "attention-flow"], {"top_k": 8})
    assert cmp.methods == ["attention-rollout", "attention-flow"] and cmp.importance.shape == (2, 197)
    np.testing.assert_allclose(cmp.importance.sum(1), 1.0)
    assert cmp.spearman[0, 0] == pytest.approx(1.0) and -1 <= cmp.spearman[0, 1] <= 1
    assert [r["method"] for r in cmp.rows] == cmp.methods and all(r["importance_s"] >= 0 for r in cmp.rows)
    # each row is the method's own graph, on the same forward pass (one cache entry for the model's attentions)
    alone = flow_for_image(img, method="attention-flow", params=method_params("attention-flow", {"top_k": 8}))
    np.testing.assert_array_equal(cmp.importance[1], alone.importance)
    assert len(run._FORWARD.memory._data) >= 1 and C.compare(img, cmp.methods, {"top_k": 8}) is cmp
    t = cmp.tables()
    assert len(t["agreement"]) == 1 and len(t["importance"]) == 197 and t["comparison"] == cmp.rows
    with pytest.raises(InputError, match="at least one"):
        C.compare(img, [])
    with pytest.raises(InputError, match="unknown flow method"):
        C.compare(img, ["attention-rollout", "no-such"])
    with pytest.raises(InputError, match="top_fraction"):
        C.compare(img, ["attention-rollout"], {"top_fraction": 2.0})


def test_a_registered_method_reaches_the_tab_and_the_cli():
    from app.cli import build_parser
    from engine.flow.graph import TOP_EDGES, run_rollout
    from engine.flow.run import method_params
    from engine.registry import register, unregister

    register("toy-flow", family="flow", paper=None, summary="Rollout under another name.", params=[TOP_EDGES],
             role="graph")(lambda attn, **kw: run_rollout(attn, **kw))  # fmt: skip
    try:
        assert method_params("toy-flow", {"residual": 0.3, "top_k": 4, "top_edges": 50}) == {"top_edges": 50}
        flow = next(
            a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "flow"
        )[1]
        assert "toy-flow" in next(a for a in flow._actions if a.dest == "method").choices
        gr = pytest.importorskip("gradio")
        from app.controls import method_dropdown

        with gr.Blocks():
            dd = method_dropdown("flow")
        assert "toy-flow" in [c[0] for c in dd.choices]
    finally:
        unregister("toy-flow")
