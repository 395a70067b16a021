"""Token pruning on a LLaVA-style hub model, through the same runner, on a tiny random LLaVA built locally
(CLIP vision tower + Llama decoder; nothing downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.registry import InputError
from engine.tokens import core
from engine.tokens import methods as M
from engine.tokens.run import prune_image
from engine.vision.loading import load_vision


@pytest.fixture(scope="module")
def llava(tiny_llava_dir):
    return load_vision(str(tiny_llava_dir))


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(1).random((48, 40, 3)) * 255).astype(np.uint8)


def _inputs(vlm, image, question="how many objects ?"):
    px = vlm.encoder.preprocess(image)
    _, post = vlm.prompt_ids(question)
    return px, np.asarray(post)[None, None]


def test_no_pruning_matches_the_models_own_forward(llava, image):
    px, q = _inputs(llava, image)
    out = core.run_vlm(llava, px, q)
    _, ref = llava.answer(px, "how many objects ?")
    torch.testing.assert_close(out.logits[0], ref.logits[0, -1], atol=1e-4, rtol=1e-4)
    assert out.kept.shape == (1, 16) and out.lm_lengths == [len(llava.prefix_ids()) + 16 + q.shape[-1]] * 4


def test_random_before_the_lm_matches_the_model_fed_those_tokens(llava, image):
    px, q = _inputs(llava, image)
    out = core.run_vlm(llava, px, q, M.random_pruning(llava, keep=0.5, seed=2))
    pre, post = llava.prompt_ids("how many objects ?")
    x, pos, _ = llava.build(llava.image_embeds(px), pre, post, torch.as_tensor(out.kept), keep_positions=True)
    with torch.no_grad():
        ref = llava.lm(inputs_embeds=x, position_ids=pos).logits[0, -1]
    torch.testing.assert_close(out.logits[0], ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "method,params",
    [
        ("random-keep", {}),
        ("cls-attention", {"layer": -1}),
        ("turbo", {}),
        ("llavolta", {}),
        ("pyramiddrop", {}),
        ("fastv", {}),
    ],  # fmt: skip
)
def test_methods_run_on_llava(llava, tiny_llava_dir, image, method, params):
    r = prune_image(image, method=method, keep=0.5, params=params, model=str(tiny_llava_dir))
    assert r.grid == (4, 4) and r.model == str(tiny_llava_dir)
    # 8 of 16 patches (LLaVolta: 8 pooled pairs, each placed at its window's first patch)
    assert len(r.kept) == 8 and len(set(np.asarray(r.kept).tolist())) == 8, (method, r.kept)
    assert r.flops < r.flops_full
    assert isinstance(r.answer_full, str) and isinstance(r.answer_pruned, str)


def test_layer_by_layer_clip_matches_its_forward(llava, image):
    px, _ = _inputs(llava, image)
    feats, ids, *_ = core.run_vit(llava.encoder, px, None, M.feature_layers(llava))
    with torch.no_grad():
        ref = llava.encoder.model(pixel_values=px, output_hidden_states=True).hidden_states[
            llava.feature_layer
        ]
    torch.testing.assert_close(feats, ref[:, 1:], atol=1e-5, rtol=1e-5)
    assert ids.shape == (1, 16)


@pytest.mark.parametrize("method", ["flowcut", "flowcut-select"])
def test_flowcut_inside_the_clip_tower(llava, tiny_llava_dir, image, method):
    r = prune_image(image, method=method, keep=0.5, model=str(tiny_llava_dir))
    assert len(r.kept) == 8 and r.place == ("vit" if method == "flowcut" else "pre-lm")
    ctl = prune_image(image, method=method, keep=0.5, model=str(tiny_llava_dir), control=True)
    assert len(ctl.kept) == 8


def test_not_a_vlm_is_refused(tiny_llava_dir, image, tmp_path):
    import transformers as tf

    tf.CLIPVisionModel(tf.CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=2, intermediate_size=64)).save_pretrained(tmp_path)  # fmt: skip
    with pytest.raises(InputError, match="vision-language"):
        prune_image(image, method="fastv", keep=0.5, model=str(tmp_path))
