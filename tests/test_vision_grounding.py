"""The attention-grounding training aid: it finds the objects a relation question names, and the attention it
supervises is the attention the decoder computes (checked against eager attention on the shipped VLM)."""

from __future__ import annotations

import numpy as np
import torch

from engine.vision import grounding
from engine.vision import scenes as S
from engine.vision.loading import load_vision
from engine.vision.train import position_questions


def test_object_targets_match_question_words():
    b = S.make_batch("train", 0, 64)
    position_questions(b, 0.5, np.random.default_rng(0), 0.0)  # both one-object and two-object forms
    rows, sa, sb = grounding.object_targets(b)
    Q = len(S.QTYPES)
    assert len(rows) > 30 and (sb < 0).any() and (sb >= 0).any()
    for r, a, o in zip(rows, sa, sb):
        words = S.decode(b.questions[r // Q, r % Q]).split()
        named = [(S.SIZES.index(z), S.SHAPES.index(s)) for z, s in zip(words, words[1:]) if z in S.SIZES]
        got = [(b.size[r // Q, k], b.shape[r // Q, k]) for k in (a, o) if k >= 0]
        assert got == named


def test_recomputed_attention_equals_eager_attention_with_dropped_tokens():
    vlm = load_vision("scene-vlm").extra["module"]
    before = vlm.lm.config._attn_implementation
    vlm.lm.config._attn_implementation = "eager"  # shared by every layer's attention module
    b = S.make_batch("val", 0, 6)
    Q = len(S.QTYPES)
    g = grounding.AttentionGrounding(vlm.lm, 2)
    try:
        rows, sa, sb = grounding.object_targets(b)
        kept = torch.rand(6, 196, generator=torch.Generator().manual_seed(0)).argsort(1)[:, :70]
        q = torch.as_tensor(b.questions).flatten(0, 1)
        emb = vlm.image_embeds(b.images).repeat_interleave(Q, 0)
        with torch.no_grad():
            out = vlm(None, q, img_embeds=emb, keep=kept.repeat_interleave(Q, 0), keep_positions=True,
                      output_attentions=True)  # fmt: skip
            r = torch.as_tensor(rows)
            mine = g.attention(r)
            ma, mb = grounding.patch_masks(b, rows, sa, sb, kept, "cpu")
            loss = g.loss(r, ma, mb, (1, 71))
            tgt, ok = grounding.position_targets(b, rows, sa, sb, "cpu")
            loss_p = g.position_loss(r, tgt, ok)
            head0 = g._o[r, :32]
            a = g.attn
            v = a.v_proj(g._h[r]).view(len(r), -1, a.k_proj.out_features // a.head_dim, a.head_dim)[:, :, 0]
    finally:
        g.close()
        vlm.lm.config._attn_implementation = before
    ref = out.attentions[2][r][:, :2, -1]
    assert torch.allclose(mine, ref, atol=1e-5)
    # masks mark exactly the kept patches that show the object
    for i, (row, a) in enumerate(zip(rows, sa)):
        want = (b.coverage[row // Q, a] > 0)[kept[row // Q].sort().values]
        assert torch.equal(ma[i], want)
    mass = (ref[:, 0, 1:71] * ma).sum(1)
    has = ma.any(1)
    assert torch.isfinite(loss) and loss > 0
    assert (mass[has] < 1).all()
    # the position-read aid sees head 0's real output: its attention times the values, at the last token
    assert torch.allclose(head0, torch.einsum("rt,rtd->rd", ref[:, 0], v), atol=1e-4)
    half = S.IMAGE_SIZE / 2
    for i, (row, a, o) in enumerate(zip(rows, sa, sb)):
        assert np.allclose(tgt[i, :2].numpy() * half + half, b.center[row // Q, a], atol=1e-4)
        assert ok[i].tolist() == [1, 1, float(o >= 0), float(o >= 0)]
    assert (
        abs(loss_p.item() - (tgt**2 * ok).sum().item() / ok.sum().item()) < 1e-6
    )  # the probe starts at zero
