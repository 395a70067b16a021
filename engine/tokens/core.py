"""Run the scene VLM (or a ViT-type encoder) with a token-pruning policy, and count what it costs.

A pruning *policy* acts at one of three places, and every method's random control acts at the same place:

- ``"vit"``: inside the vision encoder, after a layer (FlowCut). The encoder is run layer by layer; after layer
  ``l`` the policy may drop patch tokens, and later layers only see the kept ones (CLS always stays).
- ``"pre-lm"``: between the projector and the LM (random, CLS attention, Turbo, LLaVolta pooling). The encoder
  runs whole; the policy reads attention / keys / values captured at the layers it asks for. Kept tokens keep
  their positions in the full sequence (a pooled token its window's first patch's), as inside the LM.
- ``"lm"``: inside the decoder, before a layer (PyramidDrop, FastV). The decoder is run layer by layer with the
  model's own rotary embedding and an explicit causal mask; kept tokens keep their original RoPE positions
  (as PyramidDrop's and FastV's code gather ``position_ids``).

The runner records the token count every layer saw, so FLOPs (:func:`vit_flops`, :func:`lm_flops`) follow the
real schedule, and the time spent inside the policy (its scoring cost) apart from the forward it rides on.

Shapes: ``B`` images, ``Q`` questions per image, ``N`` patches, ``T`` tokens in a sequence, ``H`` heads.

Concurrency: the models are shared by every request of the server. A run never changes a model; the forward
hooks that read attention, keys and values (:func:`capture`, the LM's attention store) record only calls made
by the thread that installed them, so two runs on one model at once never see each other's tensors, and the
hooks are removed in ``finally`` even when a run is stopped (``tick`` may raise).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.registry import InputError

__all__ = [
    "Policy",
    "RunOut",
    "capture",
    "run_vlm",
    "run_vit",
    "keep_count",
    "topk_sorted",
    "random_keep",
    "pool_tokens",
    "causal_mask",
    "vit_flops",
    "lm_flops",
    "language_model",
]


def keep_count(keep: float, n: int) -> int:
    """Tokens kept out of ``n`` at fraction ``keep`` (at least 1), as the vision card counts them."""
    if not (isinstance(keep, int | float) and 0 < keep <= 1) or keep != keep:
        raise InputError(f"keep fraction must be in (0, 1], got {keep!r}")
    return max(1, min(n, round(keep * n)))


def topk_sorted(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, k] of the ``k`` highest scores per row, in ascending (spatial / sequence) order."""
    return scores.topk(k, dim=-1).indices.sort(-1).values


def random_keep(B: int, n: int, k: int, seed: int, salt: int = 0) -> torch.Tensor:
    """``k`` of ``n`` indices per row, uniformly at random, sorted; reproducible by (seed, salt)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(salt))
    return torch.rand(B, n, generator=g).argsort(1)[:, :k].sort(1).values


@dataclass
class Policy:
    """What a method does to the token stream (any hook may be None).

    vit_select(l, cap, ids) -> local indices [B, k] of the patch tokens to keep after ViT layer ``l`` (into the
        current patch tokens, CLS excluded) or None. ``cap``: {"attn": [B,H,T,T], "v": [B,H,T,dh], "k": ...}.
    pre_select(caps, feats) -> (kept [B, k] patch indices, scores [B, N]) from a whole-encoder forward;
        ``caps[l]`` as above for each layer in ``capture_layers``; ``feats`` the patch features [B, N, d].
    pool: kernel = stride of raster average pooling before the LM (LLaVolta); 0 = none.
    lm_select(i, state) -> local indices [BQ, k] into the current image tokens to keep before LM layer ``i``.
    """

    place: str
    capture_layers: tuple[int, ...] = ()
    vit_select: Callable | None = None
    pre_select: Callable | None = None
    pool: int = 0
    lm_select: Callable | None = None
    lm_capture: tuple[int, ...] = ()  # LM layers whose eager attention weights the policy reads
    pre_select_pixels: bool = False  # pre_select(caps, feats, pixels): it runs its own encoder pass
    info: dict = field(default_factory=dict)


@dataclass
class RunOut:
    logits: torch.Tensor | None  # [B*Q, V] at the last position (None for an encoder-only run)
    kept: np.ndarray  # [B*Q, k] (or [B, k]) patch indices that reach the last LM layer / the encoder output
    stages: list[dict]  # {"place", "layer", "kept": [rows, k]} after each pruning step
    scores: np.ndarray | None  # [rows, N] the policy's last per-patch scores (NaN where not scored)
    vit_lengths: list[int]  # tokens each ViT layer saw (CLS included)
    lm_lengths: list[int]  # tokens each LM layer saw
    score_s: float  # seconds spent inside the policy
    forward_s: float  # seconds of the whole run
    vit_logits: dict | None = None  # the scene ViT's task heads (when asked)
    extra_vit_lengths: list[int] | None = None  # tokens per layer of a policy's own extra encoder pass
    groups: np.ndarray | None = None  # [N] pooled-window id of each patch (pooling)


def language_model(vlm):
    """(decoder with ``layers``/``norm``/``rotary_emb``, lm_head) of a scene VLM or a LLaVA model."""
    lm = vlm.lm
    base = lm.model
    base = getattr(base, "language_model", base)
    if not all(hasattr(base, a) for a in ("layers", "norm", "rotary_emb")):
        raise InputError(f"{vlm.name}: the language model is not Llama-like (layers / norm / rotary_emb)")
    return base, lm.lm_head


def _attn_module(layer):
    for name in ("attention", "self_attn"):
        m = getattr(layer, name, None)
        if m is not None and hasattr(m, "v_proj"):
            return m
    raise InputError(f"{type(layer).__name__}: no attention module with q/k/v projections")


def _own_thread(fn: Callable) -> Callable:
    """A forward hook that acts only on calls from the thread that made it (the model is shared: another
    request's forward through the same module must not write into this run's store)."""
    me = threading.get_ident()

    def hook(module, args, output):
        if threading.get_ident() == me:
            fn(module, args, output)

    return hook


@contextmanager
def capture(layers, which: tuple[int, ...], store: dict):
    """Hooks that put each chosen encoder layer's attention weights [B,H,T,T], values and keys [B,H,T,dh] into
    ``store[li]``; they record this thread's calls only, and are always removed."""
    handles = []
    try:
        for li in which:
            att = _attn_module(layers[li])
            slot = store.setdefault(li, {})
            H = getattr(att, "num_attention_heads", None) or getattr(att, "num_heads", None)

            def heads(t, H=H):
                B, T, D = t.shape
                return t.view(B, T, H, D // H).transpose(1, 2)

            handles.append(
                att.register_forward_hook(_own_thread(lambda m, a, o, s=slot: s.__setitem__("attn", o[1])))
            )
            handles.append(att.v_proj.register_forward_hook(
                _own_thread(lambda m, a, o, s=slot, h=heads: s.__setitem__("v", h(o))))
            )  # fmt: skip
            handles.append(att.k_proj.register_forward_hook(
                _own_thread(lambda m, a, o, s=slot, h=heads: s.__setitem__("k", h(o))))
            )  # fmt: skip
        yield store
    finally:
        for h in handles:
            h.remove()


def _vit_parts(enc):
    """(embeddings module, layers, final layernorm or None, heads module or None) of a ViT-type encoder."""
    if enc.kind == "scene-vit":
        base = enc.model.vit.vit
        return base.embeddings, enc.layers, base.layernorm, getattr(enc, "extra_vit", None)
    if enc.kind in ("vit", "dinov2"):
        return enc.model.embeddings, enc.layers, getattr(enc.model, "layernorm", None), None
    if enc.kind == "clip":  # CLIPVisionModel (LLaVA's tower): embeddings, then pre_layrnorm, then the layers
        base = getattr(enc.model, "vision_model", enc.model)
        return (lambda px: base.pre_layrnorm(base.embeddings(px))), enc.layers, None, None
    raise InputError(
        f"{enc.name}: pruning inside the encoder is wired for ViT, DINOv2 and CLIP encoders, not {enc.kind!r}; "
        "use a method that acts before the LM"
    )


def run_vit(enc, pixels, policy: Policy | None, n_run: int, *, heads: bool = False, timer=None, tick=None):
    """The encoder layer by layer up to ``n_run`` layers, with ``policy.vit_select`` after each layer;
    ``tick()`` after each layer (progress; it may raise to stop the run).

    Returns (patch features [B, k, d] of the kept patches, ids [B, k], stages, captures, lengths, vit_logits).
    """
    emb, layers, norm, vit_heads = _vit_parts(enc)
    extra = (None,) if enc.kind == "clip" else ()  # CLIP's layers take an attention-mask argument
    p = enc.n_prefix
    with torch.no_grad():
        h = emb(pixels)  # [B, p + N, d]
    B, N = h.shape[0], h.shape[1] - p
    ids = torch.arange(N)[None].expand(B, -1)
    stages, lengths, caps = [], [], {}
    want = set(policy.capture_layers) if policy else set()
    if policy is not None and policy.vit_select is not None:
        want |= set(range(n_run))
    total = n_run if not heads else len(layers)
    feats = None
    for li in range(total):
        store: dict = {}
        with torch.no_grad(), capture(layers, (li,) if li in want else (), store):
            h = layers[li](h, *extra)
            h = h[0] if isinstance(h, tuple) else h
        if li in store:
            caps[li] = store[li]
        lengths.append(int(h.shape[1]))
        if tick is not None:
            tick()
        if policy is not None and policy.vit_select is not None and li < n_run:
            t0 = time.perf_counter()
            sel = policy.vit_select(li, store.get(li), ids)
            if timer is not None:
                timer[0] += time.perf_counter() - t0
            if sel is not None:
                ids = torch.gather(ids, 1, sel)
                patches = torch.gather(h[:, p:], 1, sel[..., None].expand(-1, -1, h.shape[-1]))
                h = torch.cat([h[:, :p], patches], 1)
                stages.append({"place": "vit", "layer": li, "kept": ids.numpy().copy()})
        if li == n_run - 1:
            feats = h[:, p:]
    vit_logits = None
    if heads and vit_heads is not None:
        with torch.no_grad():
            lg = vit_heads.head_logits(norm(h))
        vit_logits = {"count": lg["count"], "presence": lg["presence"]}
    return feats, ids, stages, caps, lengths[:n_run], vit_logits


def pool_tokens(img: torch.Tensor, s: int) -> torch.Tensor:
    """LLaVolta's pooling: average of raster-ordered tokens [B, n, d] in windows of ``s`` with stride ``s``;
    the last window averages the tokens it has (ceil mode). Returns [B, ceil(n / s), d]."""
    return torch.nn.functional.avg_pool1d(img.transpose(1, 2), s, s, ceil_mode=True).transpose(1, 2)


def causal_mask(T: int, dtype=torch.float32) -> torch.Tensor:
    """Additive causal mask [1, 1, T, T] (0 on and below the diagonal, the dtype's minimum above)."""
    m = torch.full((T, T), torch.finfo(dtype).min, dtype=dtype).triu(1)
    return m[None, None]


def _project(vlm, feats, ids):
    proj = vlm.projector
    with torch.no_grad():
        if hasattr(proj, "linear_1") and getattr(proj, "pos", None) is not None:
            y = proj.linear_2(proj.act(proj.linear_1(feats)))
            return y + proj.pos[ids]  # the kept patch keeps its learned 2-D position
        return proj(feats)


def run_vlm(vlm, pixels, questions, policy: Policy | None = None, *, vit_heads: bool = False,
            tick: Callable[[], None] | None = None) -> RunOut:  # fmt: skip
    """The scene VLM or a LLaVA-style model on images [B, 3, S, S] (normalised) and questions [B, Q, L] (token
    ids of the text after the image), pruned by ``policy``. The prompt is ``prefix image-tokens question``
    (prefix: ``<bos>``, or LLaVA's ``USER: ``), as :meth:`VisionLanguageModel.build` lays it out. ``tick()`` is
    called after every encoder and decoder layer (progress; an exception from it ends the run cleanly).
    """
    if vlm.kind not in ("scene-vlm", "llava"):
        raise InputError(f"{vlm.name}: the pruning runner takes the scene VLM or a LLaVA-style model")
    if not vlm.drop_cls:
        raise InputError(
            f"{vlm.name}: token pruning needs LLaVA's 'default' feature strategy (patch tokens only)"
        )
    t_start = time.perf_counter()
    timer = [0.0]
    enc = vlm.encoder
    L = enc.n_layers
    f = vlm.feature_layer
    n_run = L + 1 + f if f < 0 else f
    place = policy.place if policy else "none"
    feats, ids, stages, caps, vit_len, vit_logits = run_vit(
        enc,
        pixels,
        policy if place in ("vit", "pre-lm") else None,
        n_run,
        heads=vit_heads,
        timer=timer,
        tick=tick,
    )
    B, N = feats.shape[0], enc.n_patches
    scores = None
    groups = None
    if place == "vit" and policy.info.get("scores") is not None:
        scores = policy.info["scores"]
    if place == "pre-lm" and policy.pre_select is not None:
        t0 = time.perf_counter()
        extra = (pixels,) if policy.pre_select_pixels else ()
        kept, scores = policy.pre_select(caps, feats, *extra)
        timer[0] += time.perf_counter() - t0
        ids = kept
        feats = torch.gather(feats, 1, kept[..., None].expand(-1, -1, feats.shape[-1]))
        stages.append({"place": "pre-lm", "layer": -1, "kept": kept.numpy().copy()})
    img = _project(vlm, feats, ids)  # [B, n, d_lm]
    if place == "pre-lm" and policy.pool:
        t0 = time.perf_counter()
        s = int(policy.pool)
        img = pool_tokens(img, s)
        groups = np.arange(N) // s
        ids = ids[:, ::s]  # each pooled token is placed at its window's first patch
        timer[0] += time.perf_counter() - t0
        stages.append({"place": "pre-lm", "layer": -1, "kept": ids.numpy().copy(), "pool": s})
    q = torch.as_tensor(np.asarray(questions), dtype=torch.long)
    Q = q.shape[1]
    q = q.reshape(B * Q, -1)
    base, head = language_model(vlm)
    if place != "lm":
        logits, lm_len = _lm_shared_prefix(vlm, base, head, img, q, Q, ids, tick=tick)
        ids = ids.repeat_interleave(Q, 0)
    else:
        img = img.repeat_interleave(Q, 0)
        ids = ids.repeat_interleave(Q, 0)
        logits, lm_len, ids, scores = _lm_pruned(vlm, base, head, img, q, ids, policy, stages, timer, scores,
                                                 tick=tick)  # fmt: skip
    return RunOut(
        logits=logits, kept=ids.numpy(), stages=stages,
        scores=None if scores is None else np.asarray(scores, dtype=np.float64),
        vit_lengths=vit_len, lm_lengths=lm_len, score_s=timer[0], forward_s=time.perf_counter() - t_start,
        vit_logits=vit_logits, groups=groups,
        extra_vit_lengths=policy.info.get("extra_vit_lengths") if policy else None,
    )  # fmt: skip


def _embed_prompt(vlm, img, q):
    """(embedded ``prefix + image`` [B, P + n, d], embedded question tokens [BQ, Lq, d])."""
    emb = vlm.lm.get_input_embeddings()
    prefix = torch.tensor(vlm.prefix_ids(), dtype=torch.long)[None].expand(img.shape[0], -1)
    pre = emb(prefix)
    return torch.cat([pre, img.to(pre.dtype)], 1), emb(q)


def _lm_shared_prefix(vlm, base, head, img, q, Q, ids=None, *, tick=None):
    """The decoder with the ``<bos> + image`` prefix computed once per image and its keys/values shared by the
    image's Q questions (exact: the prefix never sees the question under the causal mask).

    ``ids`` [B, n] (the patch each image token stands for): the tokens keep the RoPE positions they have in the
    full sequence (prefix 0..P-1, patch j at P + j, the question after all N patches), as inside the LM and as the
    scene VLM was trained with dropped tokens; without ``ids`` the positions are 0..len-1."""
    from transformers import DynamicCache

    with torch.no_grad():
        pre, qe = _embed_prompt(vlm, img, q)
        B, Tp = pre.shape[:2]
        Tq = qe.shape[1]
        cache = DynamicCache(config=vlm.lm.config)
        if ids is not None:
            P = Tp - ids.shape[1]  # prefix tokens (<bos>, or LLaVA's "USER: ")
            pos = torch.cat([torch.arange(P)[None].expand(B, -1), ids.long() + P], 1)
            q0 = P + vlm.encoder.n_patches
        else:
            pos = torch.arange(Tp)[None].expand(B, -1)
            q0 = Tp
        x = pre
        for layer in base.layers:
            x = _call(layer, x, causal_mask(Tp, x.dtype), pos, base.rotary_emb(x, pos), cache)
            if tick is not None:
                tick()
        cache.batch_repeat_interleave(Q)
        m = torch.cat([torch.zeros(Tq, Tp), causal_mask(Tq)[0, 0]], 1)[None, None]
        pos = torch.arange(q0, q0 + Tq)[None].expand(B * Q, -1)
        x = qe
        for layer in base.layers:
            x = _call(layer, x, m, pos, base.rotary_emb(x, pos), cache)
        logits = head(base.norm(x[:, -1:]))[:, -1]
    return logits, [Tp + Tq] * len(base.layers)


def _call(layer, x, mask, pos, cos_sin, cache=None):
    kw = {"cache": cache, "use_cache": True} if cache is not None else {}
    y = layer(x, attention_mask=mask, position_ids=pos, position_embeddings=cos_sin, **kw)
    return y[0] if isinstance(y, tuple) else y


def _lm_pruned(vlm, base, head, img, q, ids, policy, stages, timer, scores, *, tick=None):
    """The decoder layer by layer on whole sequences [BQ, T], with ``policy.lm_select`` before each layer."""
    with torch.no_grad():
        pre, qe = _embed_prompt(vlm, img, q)
        x = torch.cat([pre, qe], 1)
    BQ = x.shape[0]
    pos = torch.arange(x.shape[1])[None].expand(BQ, -1)
    s0 = pre.shape[1] - img.shape[1]  # image span after the prefix
    s1 = s0 + img.shape[1]
    lm_len = []
    attn_store: dict[int, torch.Tensor] = {}
    handles = [
        base.layers[i].self_attn.register_forward_hook(
            _own_thread(lambda m, a, o, i=i: attn_store.__setitem__(i, o[1]))
        )
        for i in policy.lm_capture
    ]
    try:
        with torch.no_grad():
            cos_sin = base.rotary_emb(x, pos)  # rotary tables: recomputed only when the positions change
            for i, layer in enumerate(base.layers):
                t0 = time.perf_counter()
                state = {"x": x, "pos": pos, "span": (s0, s1), "base": base, "attn": attn_store, "ids": ids,
                         "cos_sin": cos_sin}  # fmt: skip
                sel = policy.lm_select(i, state)
                timer[0] += (
                    time.perf_counter() - t0
                )  # the scoring; applying the choice is shared with controls
                if sel is not None:
                    ids = torch.gather(ids, 1, sel)
                    img_h = torch.gather(x[:, s0:s1], 1, sel[..., None].expand(-1, -1, x.shape[-1]))
                    img_p = torch.gather(pos[:, s0:s1], 1, sel)
                    x = torch.cat([x[:, :s0], img_h, x[:, s1:]], 1)
                    pos = torch.cat([pos[:, :s0], img_p, pos[:, s1:]], 1)
                    s1 = s0 + sel.shape[1]
                    cos_sin = base.rotary_emb(x, pos)
                    stages.append({"place": "lm", "layer": i, "kept": ids.numpy().copy()})
                    if "scores" in policy.info:
                        scores = policy.info["scores"]
                T = x.shape[1]
                x = _call(layer, x, causal_mask(T, x.dtype), pos, cos_sin)
                lm_len.append(int(T))
                if tick is not None:
                    tick()
            logits = head(base.norm(x[:, -1:]))[:, -1]
    finally:
        for h in handles:
            h.remove()
    return logits, lm_len, ids, scores


def vit_flops(cfg, lengths: list[int]) -> float:
    """Multiply-adds x 2 of the encoder layers for the token count each layer saw (``cfg``: a ViT config)."""
    d, m = cfg.hidden_size, cfg.intermediate_size
    return float(sum(2 * t * (4 * d * d + 2 * d * m) + 4 * t * t * d for t in lengths))


def lm_flops(cfg, lengths: list[int]) -> float:
    """FLOPs of the decoder layers (q/k/v/o with GQA, SwiGLU MLP, attention scores and mix) plus the LM head
    at one position, for the sequence length each layer saw."""
    d, m = cfg.hidden_size, cfg.intermediate_size
    kv = cfg.num_key_value_heads * (d // cfg.num_attention_heads)
    per_tok = 2 * (2 * d * d + 2 * d * kv + 3 * d * m)
    return float(sum(per_tok * t + 4 * t * t * d for t in lengths) + 2 * d * cfg.vocab_size)


def run_cost(vlm, out: RunOut) -> dict[str, Any]:
    """FLOPs of one prefill (encoder + projector + LM for one question) from the lengths the run recorded."""
    enc_cfg = (
        vlm.extra["module"].vit.config
        if "module" in vlm.extra
        else getattr(vlm.encoder.model, "config", None)
    )
    enc_cfg = getattr(enc_cfg, "vision_config", enc_cfg)
    lm_cfg = getattr(vlm.lm.config, "text_config", vlm.lm.config)  # LLaVA: its language model's config
    vf = vit_flops(enc_cfg, out.vit_lengths) if enc_cfg is not None else 0.0
    if enc_cfg is not None and out.extra_vit_lengths:  # a policy's own encoder pass (flowcut-select)
        vf += vit_flops(enc_cfg, out.extra_vit_lengths)
    d_in = enc_cfg.hidden_size if enc_cfg is not None else 0
    proj = 2 * vlm.encoder.n_patches * (d_in * lm_cfg.hidden_size + lm_cfg.hidden_size**2)
    lf = lm_flops(lm_cfg, out.lm_lengths)
    return {"vit_flops": vf, "projector_flops": float(proj), "lm_flops": lf, "flops": vf + proj + lf}
