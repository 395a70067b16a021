"""Attention grounding: a training aid that teaches the scene VLM's decoder where the objects of a relation
question are (attention supervision, as in Qiao et al., "Exploring Human-like Attention Supervision in Visual
Question Answering", AAAI 2018, arXiv:1709.06308, and the grounding losses of referring-expression models).

Why it is needed (measured on the run-3 VLM): for ``is the A left of the B ?`` the decoder must first attend to
A and B, then read their positions. Both steps only pay off together: while no head attends to A, the position
it would read is the image average (no first-order gradient for reading positions), and while no position is
read, attending to A does not change the answer (no gradient for attending). Probes of the last token's
per-head attention outputs found neither A's position (R^2 <= 0.03 in every head of every layer) nor its colour
(0.2-0.4 against 0.996 on colour questions) after 1,070 s of training; relation answers stayed at chance.

The aid adds ``-log(attention mass on the object's patches)`` for two heads of one decoder layer at the last
token: head 0 on object A, head 1 on object B (one-object curriculum questions: head 0 only). Attention of the
supervised heads is recomputed from the layer's own query/key projections with RoPE (captured by a pre-hook),
so the loss trains exactly the weights the forward uses. Only training uses this; nothing at inference changes.

Attention alone was not enough (measured, run 4): with 96% of head 0's mass on A after 500 steps, a linear probe
of that head's output told ``is the A left ?`` apart only at 0.68, and answers stayed at chance: the value path
still carried A's colour and shape, not where A is. So a second aid, :meth:`AttentionGrounding.position_loss`,
regresses the object's centre (x, y) from the supervised head's output at the last token through a small linear
probe (trained with it, dropped after training): the value/output weights learn to carry the position the
relation needs (probing-style auxiliary losses, as in deep supervision, Lee et al. AISTATS 2015,
arXiv:1409.5185).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.vision import scenes
from engine.vision.vlm import last_token_attention

__all__ = ["object_targets", "patch_masks", "position_targets", "AttentionGrounding"]


def object_targets(b: scenes.SceneBatch, min_cover: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each relation question (after any curriculum rewrite): the slots of objects A and B (-1 when the
    question names one object), and the question's row. Returns ``rows`` [R] (flat index scene*Q + q),
    ``slot_a`` [R], ``slot_b`` [R]. Objects are found from the question's words (the unique (size, shape))."""
    T, L, Q = scenes.TOKEN_ID, scenes.QLEN, len(scenes.QTYPES)
    j = scenes.QTYPES.index("relation")
    rows, sa, sb = [], [], []

    def slot(i: int, size_tok: int, shape_tok: int) -> int:
        z = scenes.SIZES.index(scenes.VOCAB[size_tok])
        s = scenes.SHAPES.index(scenes.VOCAB[shape_tok])
        hit = np.flatnonzero(b.present[i] & (b.size[i] == z) & (b.shape[i] == s))
        return int(hit[0]) if len(hit) == 1 else -1

    for i in np.flatnonzero(b.qtypes[:, j] == j):
        q = b.questions[i, j]
        if q[L - 7] == T["<pad>"]:  # is the <size> <shape> <rel> ?
            a, bb = slot(i, q[L - 4], q[L - 3]), -1
        else:  # is the <size> <shape> <rel> the <size> <shape> ?
            a, bb = slot(i, q[L - 7], q[L - 6]), slot(i, q[L - 3], q[L - 2])
        if a < 0:
            continue
        rows.append(i * Q + j)
        sa.append(a)
        sb.append(bb)
    return np.array(rows, np.int64), np.array(sa, np.int64), np.array(sb, np.int64)


class AttentionGrounding:
    """Captures one decoder layer's input and computes the supervised heads' attention of the last token.

    Use: ``g = AttentionGrounding(lm, layer)``; run the forward; ``g.loss(rows, masks_a, masks_b, span)``;
    ``g.close()`` removes the hook.
    """

    def __init__(self, lm, layer: int) -> None:
        self.attn = lm.model.layers[layer].self_attn
        self._h = None
        self._pe = None
        self._handle = self.attn.register_forward_pre_hook(self._hook, with_kwargs=True)
        self._o = None  # per-head outputs of the last token [B, H*hd] (input of o_proj)
        self._handle_o = self.attn.o_proj.register_forward_pre_hook(self._hook_o)
        self.probe = torch.nn.Linear(2 * self.attn.head_dim, 4)  # heads 0, 1 -> (xA, yA, xB, yB)
        torch.nn.init.zeros_(self.probe.weight)
        torch.nn.init.zeros_(self.probe.bias)
        self.probe.to(self.attn.o_proj.weight.device)

    def _hook_o(self, module, args):
        self._o = args[0][:, -1]

    def _hook(self, module, args, kwargs):
        self._h = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        self._pe = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)

    def close(self) -> None:
        self._handle.remove()
        self._handle_o.remove()

    def position_loss(self, rows: torch.Tensor, target: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the probe's (xA, yA, xB, yB) from heads 0 and 1 of the last token of sequences
        ``rows``; ``target`` [R, 4] centres scaled to [-1, 1], ``ok`` [R, 4] which of them to count."""
        hd = self.attn.head_dim
        pred = self.probe(self._o[rows, : 2 * hd].float())
        err = (pred - target) ** 2 * ok
        return err.sum() / ok.sum().clamp(min=1)

    def attention(self, rows: torch.Tensor, heads: tuple[int, ...] = (0, 1)) -> torch.Tensor:
        """Softmax attention [R, len(heads), T] of the last token of sequences ``rows`` over all positions."""
        cos, sin = self._pe
        cos = cos[rows] if cos.shape[0] > 1 else cos
        sin = sin[rows] if sin.shape[0] > 1 else sin
        return last_token_attention(self.attn, self._h[rows], cos, sin)[:, list(heads)]

    def loss(
        self, rows: torch.Tensor, mask_a: torch.Tensor, mask_b: torch.Tensor, span: tuple[int, int]
    ) -> torch.Tensor:
        """Mean ``-log`` attention mass of head 0 on A's image tokens and head 1 on B's (rows without B, or whose
        object has no token in the sequence, are left out). ``mask_*`` [R, n] over the image tokens in the
        sequence, ``span`` their (start, stop)."""
        att = self.attention(rows)[:, :, span[0] : span[1]]  # [R, 2, n]
        terms = []
        for head, m in ((0, mask_a), (1, mask_b)):
            ok = m.any(1)
            if ok.any():
                mass = (att[ok, head] * m[ok]).sum(1)
                terms.append(-(mass + 1e-6).log())
        if not terms:
            return att.sum() * 0
        return torch.cat(terms).mean()


def position_targets(
    b: scenes.SceneBatch, rows: np.ndarray, slot_a: np.ndarray, slot_b: np.ndarray, dev: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (xA, yA, xB, yB) [R, 4] scaled to [-1, 1] and which are defined [R, 4] (B is absent in the
    one-object form)."""
    Q = len(scenes.QTYPES)
    scene = rows // Q
    half = scenes.IMAGE_SIZE / 2
    ca = b.center[scene, slot_a]
    cb = b.center[scene, np.maximum(slot_b, 0)]
    t = (np.concatenate([ca, cb], 1) - half) / half
    ok = np.repeat(np.stack([np.ones(len(rows), bool), slot_b >= 0], 1), 2, 1)
    return torch.as_tensor(t, dtype=torch.float32, device=dev), torch.as_tensor(
        ok, dtype=torch.float32, device=dev
    )


def patch_masks(
    b: scenes.SceneBatch, rows: np.ndarray, slot_a: np.ndarray, slot_b: np.ndarray, kept, dev: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks [R, n] of the image tokens in the sequence that show object A / B (any visible pixel in the
    patch); ``kept`` [B, k] patch indices when tokens were dropped (in the sorted order the sequence uses)."""
    Q = len(scenes.QTYPES)
    cov = b.coverage.to(dev)  # [B, K, N]
    scene = torch.as_tensor(rows // Q, device=dev)
    a = cov[scene, torch.as_tensor(slot_a, device=dev)] > 0  # [R, N]
    sb = torch.as_tensor(np.maximum(slot_b, 0), device=dev)
    bm = (cov[scene, sb] > 0) & torch.as_tensor(slot_b >= 0, device=dev)[:, None]
    if kept is not None:
        idx = kept.sort(1).values[scene]
        a, bm = torch.gather(a, 1, idx), torch.gather(bm, 1, idx)
    return a, bm
