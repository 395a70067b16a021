"""Mechanics of the token-pruning methods: hand-computed schedules, scores against direct computations through
the model's own modules, exact kept counts, reproducible random controls, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.registry import InputError, by_family
from engine.tokens import core
from engine.tokens import methods as M


@pytest.fixture(autouse=True)
def _no_grad():
    # scoped to each test: a module-level set_grad_enabled(False) leaked into every later test file
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def vlm():
    from engine.vision.loading import load_vlm

    return load_vlm("scene-vlm")


@pytest.fixture(scope="module")
def batch():
    from engine.vision import scenes

    return scenes.make_batch("val", 0, 2)


def _px(vlm, b):
    return vlm.encoder.to_pixels(b.images)


def test_registered_family():
    names = {m.name for m in by_family("tokens")}
    assert names == {"random-keep", "cls-attention", "turbo", "llavolta", "flowcut", "flowcut-select", "pyramiddrop",
                     "fastv"}  # fmt: skip
    assert all(m.summary and any(p.name == "keep" for p in m.params) for m in by_family("tokens"))


def test_flowcut_prune_count_hand_computed():
    # n=196, T=49, H=4.0, rpl=4: 147 / 2 * (1 - (4 / ln 196)^2) = 73.5 * 0.42565 = 31.28 -> 31
    assert M.flowcut_prune_count(196, 49, 4.0, 4) == 31
    # rpl=2: (150 - 49) / sqrt(2) * (1 - (3 / ln 150)^2) = 71.418 * 0.64091 = 45.77 -> 46
    assert M.flowcut_prune_count(150, 49, 3.0, 2) == 46
    assert M.flowcut_prune_count(104, 49, 4.5, 0) == 55  # rpl 0: straight to the target
    assert M.flowcut_prune_count(60, 49, 0.0, 2) == 8  # 11 / sqrt 2 = 7.78 -> 8
    assert M.flowcut_prune_count(60, 60, 1.0, 2) == 0  # already at the target
    assert M.flowcut_prune_count(100, 10, math.log(100), 4) == 0  # uniform attention: prune nothing yet


def test_flowcut_scores_small_case():
    # one head, CLS + 2 patches
    attn = torch.tensor([[[[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]]])
    v = torch.tensor([[[[1.0, 0.0], [1.0, 2.0], [0.0, -1.0]]]])
    score, clsn = M.flowcut_scores(attn, v, 1)
    cls = np.array([0.3, 0.2]) / 0.5
    dots = np.array([1.0, 0.0])  # v_cls . v_j
    sem = np.exp(dots) / np.exp(dots).sum()
    vn = np.array([3.0, 1.0])
    np.testing.assert_allclose(score[0].numpy(), (cls + sem) * vn, rtol=1e-6)
    np.testing.assert_allclose(clsn[0].numpy(), cls, rtol=1e-6)


def test_flowcut_schedule_on_the_vit(vlm, batch):
    px = _px(vlm, batch)
    pol = M.flowcut(vlm, keep=0.25)
    out = core.run_vlm(vlm, px[:1], batch.questions[:1, :1], pol)
    sched = pol.info["schedule"]
    assert [s["layer"] for s in sched] == [1, 3, 5] and [s["rpl"] for s in sched] == [4, 2, 0]
    n = 196
    for s in sched:  # each step follows the formula from the image's own entropy
        assert s["removed"] == M.flowcut_prune_count(n, 49, s["entropy"], s["rpl"])
        n -= s["removed"]
    assert (
        out.kept.shape == (1, 49) and out.vit_lengths[-1] == 50
    )  # 49 patches + CLS into the last layer read
    # the random control prunes at the same layers to the same counts
    assert M.flowcut_counts(vlm, px[:1], 0.25) == [s["kept"] for s in sched]
    ctl = M.flowcut(vlm, keep=0.25, control=True, seed=1, counts=[s["kept"] for s in sched])
    out2 = core.run_vlm(vlm, px[:1], batch.questions[:1, :1], ctl)
    assert out2.vit_lengths == out.vit_lengths
    assert not np.array_equal(out2.kept, out.kept)


def test_no_policy_matches_the_model_forward(vlm, batch):
    px = _px(vlm, batch)
    px, qs = px[:1], batch.questions[:1, :3]
    out = core.run_vlm(vlm, px, qs)
    mod = vlm.extra["module"]
    q = torch.as_tensor(qs).flatten(0, 1)
    ref = mod(None, q, img_embeds=mod.image_embeds(batch.images[:1]).repeat_interleave(3, 0)).logits[:, -1]
    # the runner shares the image prefix's keys/values across questions: same maths, fp32 summation order
    torch.testing.assert_close(out.logits, ref, atol=1e-4, rtol=1e-4)
    # the layer-by-layer path (an LM policy that keeps everything) gives the same logits too
    pol = M.pyramiddrop(vlm, keep=1.0)
    out2 = core.run_vlm(vlm, px, qs, pol)
    torch.testing.assert_close(out2.logits, ref, atol=1e-4, rtol=1e-4)


def test_random_before_lm_matches_scenevlm_keep(vlm, batch):
    px = _px(vlm, batch)
    pol = M.random_pruning(vlm, keep=0.25, seed=3)
    out = core.run_vlm(vlm, px, batch.questions[:, :2], pol)
    mod = vlm.extra["module"]
    keep = torch.as_tensor(out.kept)
    q = torch.as_tensor(batch.questions[:, :2]).flatten(0, 1)
    emb = mod.image_embeds(batch.images).repeat_interleave(2, 0)
    ref = mod(None, q, img_embeds=emb, keep=keep, keep_positions=True)  # kept tokens keep their positions
    torch.testing.assert_close(out.logits, ref.logits[:, -1], atol=1e-4, rtol=1e-4)
    compacted = mod(None, q, img_embeds=emb, keep=keep).logits[:, -1]
    assert (out.logits - compacted).abs().max() > 1e-3  # and that is not the same as renumbering them


def test_flowcut_select_is_flowcuts_choice_on_unpruned_features(vlm, batch):
    px = _px(vlm, batch)[:1]
    fc = M.flowcut(vlm, keep=0.25)
    _, ids, *_ = core.run_vit(vlm.encoder, px, fc, M.feature_layers(vlm))
    out = core.run_vlm(vlm, px, batch.questions[:1, :2], M.flowcut_select(vlm, keep=0.25))
    assert sorted(out.kept[0].tolist()) == sorted(ids[0].tolist())  # the same 49 patches as FlowCut keeps
    # the LM reads them from the full encoder: the same as the scene VLM fed those tokens
    mod = vlm.extra["module"]
    keep = torch.as_tensor(out.kept)
    q = torch.as_tensor(batch.questions[:1, :2]).flatten(0, 1)
    ref = mod(None, q, img_embeds=mod.image_embeds(batch.images[:1]).repeat_interleave(2, 0), keep=keep,
              keep_positions=True)  # fmt: skip
    torch.testing.assert_close(out.logits, ref.logits[:, -1], atol=1e-4, rtol=1e-4)
    cost = core.run_cost(vlm, out)
    plain = core.run_cost(
        vlm, core.run_vlm(vlm, px, batch.questions[:1, :2], M.random_pruning(vlm, keep=0.25))
    )
    assert cost["vit_flops"] > 1.4 * plain["vit_flops"]  # its own encoder pass is paid for
    assert cost["lm_flops"] == plain["lm_flops"]
    ctl = core.run_vlm(vlm, px, batch.questions[:1, :2], M.flowcut_select(vlm, keep=0.25, control=True))
    assert ctl.kept.shape == out.kept.shape and not np.array_equal(ctl.kept, out.kept)


def test_pdrop_attention_matches_the_layers_own_eager_weights(vlm, batch):
    px = _px(vlm, batch)
    mod = vlm.extra["module"]
    q = torch.as_tensor(batch.questions[:, 0])
    x, pos = mod.sequence(mod.image_embeds(batch.images), q)
    # give the image tokens non-contiguous positions (as after a pruning stage) to exercise RoPE
    keep = torch.arange(0, 196, 2)
    x = torch.cat([x[:, :1], x[:, 1:197][:, keep], x[:, 197:]], 1)
    pos = torch.cat([pos[:, :1], pos[:, 1:197][:, keep], pos[:, 197:]], 1)
    base, _ = core.language_model(vlm)
    layer = base.layers[2]
    T = x.shape[1]
    cs = base.rotary_emb(x, pos)
    _, w = layer.self_attn(
        layer.input_layernorm(x), position_embeddings=cs, attention_mask=core.causal_mask(T)
    )
    direct = w[:, :, -1, 1 : 1 + len(keep)].float().mean(1)
    ours = M.pdrop_attention(layer, x, pos, base.rotary_emb, (1, 1 + len(keep)))
    torch.testing.assert_close(ours, direct, atol=1e-6, rtol=1e-5)
    del px


def test_pdrop_stages_and_counts(vlm, batch):
    assert M.pdrop_stages(8) == (2, 4, 6) and M.pdrop_stages(32) == (8, 16, 24)
    pol = M.pyramiddrop(vlm, keep=0.125)
    assert abs(pol.info["lambda"] - 0.5) < 0.01  # the paper's lambda at keep 1/8
    out = core.run_vlm(vlm, _px(vlm, batch), batch.questions[:, :1], pol)
    img = [t - 1 - 10 for t in out.lm_lengths]
    assert (
        img
        == [196, 196, 98, 98, 49, 49, 24, 24]
        == [196, 196] + [c for c in pol.info["counts"] for _ in (0, 1)]
    )


def test_fastv_received_manual():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 2, 6, 6, generator=g).tril()
    a = a / a.sum(-1, keepdim=True)
    got = M.fastv_received(a, (1, 4), "all")
    m = a.mean(1)[0]
    want = torch.tensor([m[j:, j].mean() for j in range(1, 4)])
    torch.testing.assert_close(got[0], want)
    torch.testing.assert_close(M.fastv_received(a, (1, 4), "last")[0], m[-1, 1:4])
    assert M.fastv_layer(32) == 2 and M.fastv_layer(8) == 1


def test_llavolta_pooling_manual():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 11, 4, generator=g)
    got = core.pool_tokens(x, 3)
    want = torch.stack([x[:, i : i + 3].mean(1) for i in range(0, 11, 3)], 1)  # last window: 2 tokens
    torch.testing.assert_close(got, want)


def test_turbo_scores_manual():
    g = torch.Generator().manual_seed(1)
    k = torch.randn(1, 2, 5, 3, generator=g)
    cls = torch.rand(1, 5, generator=g)
    got = M.turbo_scores(k, cls, 2.0)[0]
    kn = torch.nn.functional.normalize(k.mean(1)[0], dim=-1)
    R = torch.tensor([(kn[j] @ kn[[i for i in range(5) if i != j]].T).mean() for j in range(5)])
    A = cls[0] / cls[0].sum() * 5
    torch.testing.assert_close(got, 2.0 * A - R)


@pytest.mark.parametrize("keep", [0.5, 0.25, 0.11])
def test_kept_counts_exact(vlm, batch, keep):
    px, q = _px(vlm, batch)[:1], batch.questions[:1, :1]
    k = core.keep_count(keep, 196)
    assert k == {0.5: 98, 0.25: 49, 0.11: 22}[keep]
    for name in ("random_pruning", "cls_attention", "turbo", "flowcut", "pyramiddrop", "fastv"):
        out = core.run_vlm(vlm, px, q, getattr(M, name)(vlm, keep=keep))
        assert out.kept.shape == (1, k), name
        assert out.lm_lengths[-1] == 1 + k + 10, name
        assert len(np.unique(out.kept)) == k and (np.diff(out.kept[0]) > 0).all(), name
    out = core.run_vlm(vlm, px, q, M.llavolta(vlm, keep=keep))
    assert out.lm_lengths[-1] == 1 + math.ceil(196 / round(1 / keep)) + 10


def test_random_reproducible_by_seed():
    a = core.random_keep(2, 196, 49, seed=5, salt=7)
    assert torch.equal(a, core.random_keep(2, 196, 49, seed=5, salt=7))
    assert not torch.equal(a, core.random_keep(2, 196, 49, seed=6, salt=7))
    assert a.shape == (2, 49) and (a.diff(dim=1) > 0).all()


def test_bad_inputs(vlm):
    from engine.vision.loading import load_encoder

    with pytest.raises(InputError, match="keep fraction"):
        core.keep_count(0.0, 196)
    with pytest.raises(InputError, match="keep fraction"):
        core.keep_count(float("nan"), 196)
    with pytest.raises(InputError, match="scene VLM"):
        M.flowcut(load_encoder("scene-vit"), keep=0.25)
    with pytest.raises(InputError, match="out of range"):
        M.cls_attention(vlm, keep=0.25, layer=7)
    with pytest.raises(InputError, match="K must be"):
        M.fastv(vlm, keep=0.25, K=8)


def test_prune_image_and_compare(vlm, batch):
    from engine.tokens.run import compare, prune_image

    img = batch.image_uint8(0)
    r = prune_image(img, method="pyramiddrop", keep=0.25, question="how many red objects ?")
    assert r.grid == (14, 14) and len(r.kept) == 49 and r.place == "lm"
    assert [s["layer"] for s in r.stages] == [2, 4, 6] and r.flops < r.flops_full
    assert np.isfinite(r.scores).sum() == r.info["counts"][-2]  # the last stage scored the tokens left
    cmp = compare(img, ["random-keep", "cls-attention", "random-keep"], keep=0.25)
    iou = cmp.iou
    assert iou.shape == (3, 3) and iou[0, 2] == 1.0 and np.allclose(np.diag(iou), 1)
    with pytest.raises(InputError, match="keep"):
        prune_image(img, method="flowcut", keep=1.5)
    with pytest.raises(InputError, match="vision-language"):
        prune_image(img, method="flowcut", keep=0.25, model="scene-vit")
    with pytest.raises(InputError, match="unknown"):
        prune_image(img, method="no-such-method", keep=0.25)
