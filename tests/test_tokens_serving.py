"""Token pruning on a shared server: runs at once on one model give the results they give alone; a stopped run
leaves no hook behind; progress moves on every layer; heavy work holds one slot; a model too big for memory is
refused before its weights load."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from engine.admission import Stopped, TooMuchMemory, running


@pytest.fixture(scope="module")
def images():
    from engine.vision import scenes

    return [scenes.make_batch("val", i, 1).image_uint8(0) for i in range(4)]


def _hooks(vlm) -> int:
    """Forward hooks on the model that are ours (transformers keeps output-capturing hooks of its own once a
    model has run with output_attentions, e.g. in an earlier test: those are not counted)."""
    mods = list(vlm.encoder.layers.modules()) + list(vlm.lm_layers.modules())
    return sum(1 for m in mods for h in m._forward_hooks.values()
               if not (getattr(h, "__module__", "").startswith("transformers.") and "output_capturing" in h.__qualname__))  # fmt: skip


@pytest.mark.parametrize("method", ["cls-attention", "turbo", "fastv"])  # hooks in the ViT and in the LM
def test_concurrent_runs_match_sequential(images, method):
    from engine.tokens.run import PRUNE_CACHE, prune_image
    from engine.vision.loading import load_vlm

    PRUNE_CACHE.clear()
    alone = [prune_image(img, method=method, keep=0.25) for img in images]
    PRUNE_CACHE.clear()
    got: dict[int, object] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(images))

    def work(i):
        try:
            start.wait()
            for _ in range(3):  # several rounds, so the forwards overlap
                PRUNE_CACHE.clear()
                got[i] = prune_image(images[i], method=method, keep=0.25)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, ref in enumerate(alone):
        np.testing.assert_array_equal(got[i].kept, ref.kept)
        np.testing.assert_allclose(got[i].scores, ref.scores, rtol=0, atol=0, equal_nan=True)
        assert got[i].answer_pruned == ref.answer_pruned
    assert _hooks(load_vlm("scene-vlm")) == 0


def test_stop_mid_run_leaves_no_hooks_and_progress_moves(images):
    from engine.tokens.run import PRUNE_CACHE, prune_image
    from engine.vision.loading import load_vlm

    PRUNE_CACHE.clear()
    seen: list[float] = []

    def progress(frac, desc):
        seen.append(frac)
        if len(seen) == 12:
            raise Stopped("Stopped: the request was cancelled.")

    for method in ("fastv", "cls-attention"):
        seen.clear()
        with pytest.raises(Stopped):
            prune_image(images[0], method=method, keep=0.25, progress=progress)
        assert _hooks(load_vlm("scene-vlm")) == 0
    seen.clear()
    prune_image(images[1], method="fastv", keep=0.25, progress=lambda f, d: seen.append(f))
    assert len(seen) >= 2 * (7 + 8) and seen == sorted(seen) and seen[-1] >= 0.9  # every layer of both runs


def test_heavy_slot_taken_once_per_thread():
    from engine.vision.loading import heavy_once

    before = len(running())
    with heavy_once("outer", expect_s=1):
        with heavy_once("inner", expect_s=1):
            assert len(running()) == before + 1
    assert len(running()) == before


def test_comparison_over_small_size_takes_a_slot(images, monkeypatch):
    import engine.vision.loading as L
    from engine.tokens.run import COMPARE_CACHE, PRUNE_CACHE, compare

    taken = []
    real = L.heavy_once

    def spy(what, **kw):
        taken.append(what)
        return real(what, **kw)

    monkeypatch.setattr(L, "heavy_once", spy)
    PRUNE_CACHE.clear()
    COMPARE_CACHE.clear()
    compare(images[2], ["random-keep", "cls-attention"], keep=0.25)  # two methods: cheap
    assert taken == []
    compare(
        images[2], ["random-keep", "cls-attention", "turbo", "fastv"], keep=0.25
    )  # two new ones: still cheap
    assert taken == []
    compare(images[3], ["random-keep", "cls-attention", "turbo"], keep=0.25)  # three new: heavy
    assert taken == ["token comparison (3 methods)"]


def test_too_big_a_model_is_refused_before_loading(tmp_path):
    import transformers as tf

    from engine.vision.loading import load_vision, weights_estimate

    cfg = tf.LlavaConfig(text_config=tf.LlamaConfig(), vision_config=tf.CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
        patch_size=14))  # fmt: skip
    assert 25e9 < weights_estimate(cfg) < 35e9  # LLaVA-1.5-7B in float32: about 7 G parameters x 4 bytes
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(TooMuchMemory, match=r"would need about \d+\.\d GB"):
        load_vision(str(tmp_path))
