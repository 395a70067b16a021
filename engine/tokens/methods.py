"""The visual-token pruning methods, each a registered factory of a :class:`~engine.tokens.core.Policy`.

Every factory has the signature ``fn(vlm, *, keep, control=False, seed=0, salt=0, **params) -> Policy``:
``keep`` is the fraction of the N image tokens that reaches the last LM layer; ``control=True`` returns the
random control *at the same place* (same layer / stage, same token count at every step, random choice), so
every score can be compared with chance where it acts. Depths are scaled from the papers' models to ours
(CLIP-L 24 layers -> the scene ViT's 8; Vicuna-7B 32 layers -> the scene LM's 8).

References (METHODS.md, "Visual tokens"):

- FlowCut: Tong et al., 2025, arXiv:2505.19536 (authors' package ``flowcut``).
- PyramidDrop: Xing et al., 2024, arXiv:2410.17247.
- FastV: Chen et al., "An Image is Worth 1/2 Tokens After Layer 2", 2024, arXiv:2403.06764.
- LLaVolta: Chen et al., "Efficient Large Multi-modal Models via Visual Context Compression", 2024,
  arXiv:2406.20092.
- Turbo: Ju et al., 2024, arXiv:2407.11717.
"""

from __future__ import annotations

import math

import torch

from engine.registry import InputError, Paper, Param, register
from engine.tokens.core import Policy, keep_count, random_keep, topk_sorted

__all__ = [
    "KEEP",
    "family_params",
    "control_extras",
    "own_counts",
    "flowcut_prune_count",
    "flowcut_scores",
    "flowcut_counts",
    "pdrop_attention",
    "fastv_received",
    "turbo_scores",
    "feature_layers",
    "pdrop_stages",
    "fastv_layer",
]

FLOWCUT = Paper("FlowCut: Rethinking Redundancy via Information Flow for Efficient Vision-Language Models",
                2025, "arXiv:2505.19536", "https://arxiv.org/abs/2505.19536", ("Tong, Jintao", "others"))  # fmt: skip
PDROP = Paper("PyramidDrop: Accelerating Your Large Vision-Language Models via Pyramid Visual Redundancy "
              "Reduction", 2024, "arXiv:2410.17247", "https://arxiv.org/abs/2410.17247", ("Xing, Long", "others"))  # fmt: skip
FASTV = Paper("An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration for Large "
              "Vision-Language Models (FastV)", 2024, "arXiv:2403.06764", "https://arxiv.org/abs/2403.06764",
              ("Chen, Liang", "others"))  # fmt: skip
LLAVOLTA = Paper("Efficient Large Multi-modal Models via Visual Context Compression (LLaVolta)", 2024,
                 "arXiv:2406.20092", "https://arxiv.org/abs/2406.20092", ("Chen, Jieneng", "others"))  # fmt: skip
TURBO = Paper("Turbo: Informativity-Driven Acceleration Plug-In for Vision-Language Models", 2024,
              "arXiv:2407.11717", "https://arxiv.org/abs/2407.11717", ("Ju, Chen", "others"))  # fmt: skip
CLS_ATTN = Paper("An Image is Worth 16x16 Words (CLS token attention as patch importance)", 2021,
                 "arXiv:2010.11929", "https://arxiv.org/abs/2010.11929", ("Dosovitskiy, Alexey", "others"))  # fmt: skip

KEEP = Param("keep", 0.25, low=0.01, high=1.0, help="fraction of image tokens that reaches the last LM layer",
             label="Kept fraction of image tokens")  # fmt: skip
LAYER = Param("layer", -1, low=-1, high=63, label="Encoder layer read (-1: the one the LM reads)",
              help="encoder layer whose CLS attention ranks the patches (-1: the one the LM reads)")  # fmt: skip
# Where each method acts is its registration's ``acts_at``: "vit" (inside the encoder), "pre-lm" (between the
# projector and the LM), "lm" (inside the LM). ``control`` is the registered random control, random-keep; a
# method that acts inside a model has the fact "own_control": its ``control=True`` policy is random-keep's choice
# made at the method's own place (same layers / stages, same counts, random choice).
# facts: "control_label" (how the Pareto table names the control), "control_counts" (the control follows the
# token counts the method itself keeps on the same image), "pools" (no kept *set*: every patch is pooled).


def feature_layers(vlm) -> int:
    """Encoder layers whose output the LM reads (LLaVA's ``vision_feature_layer=-2`` -> L - 1 layers run)."""
    L, f = vlm.encoder.n_layers, vlm.feature_layer
    return L + 1 + f if f < 0 else f


def _check_vlm(vlm, name: str) -> None:
    if getattr(vlm, "kind", None) not in ("scene-vlm", "llava"):
        raise InputError(
            f"{name} needs a vision-language model (the scene VLM or a LLaVA-style model): it prunes the image "
            f"tokens a language model reads; {getattr(vlm, 'name', vlm)!r} is not one"
        )


def _layer_arg(vlm, layer: int) -> int:
    n = feature_layers(vlm)
    layer = n - 1 if layer < 0 else layer
    if not 0 <= layer < n:
        raise InputError(
            f"layer {layer} is out of range: the VLM reads the output of encoder layer {n - 1} "
            f"(layers 0..{n - 1}; -1 means that last one)"
        )
    return layer


# ----------------------------------------------------------------------------------------------- random
@register("random-keep", family="tokens", paper=None, params=[KEEP], role="prune", acts_at="pre-lm",
          facts={"control_label": "random"},
          summary="Keep a uniformly random subset of the image tokens before the LM (the baseline every method "
                  "must beat).")  # fmt: skip
def random_pruning(vlm, *, keep=0.25, control=False, seed=0, salt=0) -> Policy:
    _check_vlm(vlm, "random-keep")
    N = vlm.encoder.n_patches
    k = keep_count(keep, N)

    def pre(caps, feats):
        B = feats.shape[0]
        return random_keep(B, N, k, seed, salt), torch.full((B, N), float("nan"))

    return Policy(place="pre-lm", pre_select=pre, info={"k": k})


# ----------------------------------------------------------------------------------------------- CLS attention
@register("cls-attention", family="tokens", paper=CLS_ATTN, params=[KEEP, LAYER], role="prune", acts_at="pre-lm",
          control="random-keep", facts={"control_label": "random"},
          summary="Keep the patches the CLS token attends to most (mean over heads) at a chosen encoder layer.")  # fmt: skip
def cls_attention(vlm, *, keep=0.25, layer=-1, control=False, seed=0, salt=0) -> Policy:
    _check_vlm(vlm, "cls-attention")
    layer = _layer_arg(vlm, int(layer))
    N, p = vlm.encoder.n_patches, vlm.encoder.n_prefix
    k = keep_count(keep, N)

    def pre(caps, feats):
        s = caps[layer]["attn"][:, :, 0, p:].mean(1)  # [B, N]
        kept = random_keep(len(s), N, k, seed, salt) if control else topk_sorted(s, k)
        return kept, s

    return Policy(place="pre-lm", capture_layers=(layer,), pre_select=pre, info={"k": k, "layer": layer})


# ----------------------------------------------------------------------------------------------- Turbo
def turbo_scores(keys: torch.Tensor, cls_attn: torch.Tensor, alpha: float) -> torch.Tensor:
    """Information degree of each patch: ``alpha * N * A_j - R_j`` (higher = keep).

    ``keys`` [B, H, N, dh] of the patches, ``cls_attn`` [B, N] (CLS -> patch, mean over heads). Mutual
    redundancy ``R_j`` = mean cosine similarity of patch j's head-averaged key to every other patch's;
    semantic value ``A_j`` = CLS attention normalised over patches (times N, so its mean is 1). Turbo's drop
    criterion E = R - alpha * A is the negative of this score. Turbo merges tokens (ToMe-style bipartite
    matching); here the same information degree ranks tokens for pruning, so it compares with the others.
    """
    k = torch.nn.functional.normalize(keys.mean(1), dim=-1)  # [B, N, dh]
    sim = k @ k.transpose(1, 2)  # [B, N, N]
    n = sim.shape[-1]
    R = (sim.sum(-1) - sim.diagonal(dim1=1, dim2=2)) / max(n - 1, 1)
    A = cls_attn / cls_attn.sum(-1, keepdim=True) * n
    return alpha * A - R


@register("turbo", family="tokens", paper=TURBO, role="prune", acts_at="pre-lm", control="random-keep",
          params=[KEEP, Param("alpha", 1.0, low=0.0, high=10.0, help="weight of semantic value (CLS attention)",
                              label="Turbo: weight of semantic value"), LAYER],
          facts={"control_label": "random"},
          summary="Keep patches of high information degree: CLS attention (semantic value) minus mean key "
                  "cosine similarity to the other patches (mutual redundancy).")  # fmt: skip
def turbo(vlm, *, keep=0.25, alpha=1.0, layer=-1, control=False, seed=0, salt=0) -> Policy:
    _check_vlm(vlm, "turbo")
    layer = _layer_arg(vlm, int(layer))
    N, p = vlm.encoder.n_patches, vlm.encoder.n_prefix
    k = keep_count(keep, N)

    def pre(caps, feats):
        c = caps[layer]
        s = turbo_scores(c["k"][:, :, p:], c["attn"][:, :, 0, p:].mean(1), float(alpha))
        kept = random_keep(len(s), N, k, seed, salt) if control else topk_sorted(s, k)
        return kept, s

    return Policy(place="pre-lm", capture_layers=(layer,), pre_select=pre, info={"k": k, "layer": layer})


# ----------------------------------------------------------------------------------------------- LLaVolta
@register("llavolta", family="tokens", paper=LLAVOLTA, params=[KEEP], role="prune", acts_at="pre-lm",
          control="random-keep", facts={"control_label": "random", "pools": True},
          summary="Average-pool the raster-ordered image tokens with kernel = stride = round(1/keep) before the "
                  "LM (no ranking: every patch contributes to one pooled token).")  # fmt: skip
def llavolta(vlm, *, keep=0.25, control=False, seed=0, salt=0) -> Policy:
    """LLaVolta compresses at an LM layer during training; the scene VLM was never trained with pooling, so
    the pooling happens on the projected tokens before the LM (layer 0), and each pooled token takes its
    window's first position. Kept count = ceil(N / s): 98, 49, 22 of 196 for keep 0.5, 0.25, 0.11."""
    _check_vlm(vlm, "llavolta")
    N = vlm.encoder.n_patches
    keep_count(keep, N)
    s = max(1, round(1 / keep))
    k = math.ceil(N / s)
    if control:
        return random_pruning(vlm, keep=k / N, seed=seed, salt=salt)
    return Policy(place="pre-lm", pool=s, info={"k": k, "stride": s})


# ----------------------------------------------------------------------------------------------- FlowCut
def flowcut_prune_count(n: int, target: int, entropy: float, rpl: int) -> int:
    """Tokens FlowCut removes at a pruning layer: ``r = round((n - T) / sqrt(rpl) * (1 - (H / ln n)^2))``,
    and ``n - T`` at ``rpl = 0``; clipped to [0, n - T]."""
    if rpl == 0:
        return max(0, n - target)
    r = round((n - target) / math.sqrt(rpl) * (1 - (entropy / math.log(n)) ** 2))
    return int(min(max(r, 0), max(0, n - target)))


def flowcut_scores(attn: torch.Tensor, values: torch.Tensor, p: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """FlowCut's per-layer score and the normalised CLS attention.

    ``attn`` [B, H, T, T], ``values`` [B, H, T, dh] (prefix tokens first, ``p`` of them, CLS at 0).
    cls_j = CLS->patch attention averaged over heads; sem_j = softmax_j(v_cls . v_j) (no 1/sqrt(d)) averaged
    over heads; score_j = (cls_j / sum cls + sem_j / sum sem) * ||mean-over-heads v_j||_1.
    Returns (score [B, n], cls / sum cls [B, n]).
    """
    cls = attn[:, :, 0, p:].mean(1)
    v = values.float()
    sem = torch.softmax((v[:, :, :1] @ v[:, :, p:].transpose(-1, -2)).squeeze(2), -1).mean(1)  # [B, n]
    vn = v[:, :, p:].mean(1).abs().sum(-1)
    clsn = cls / cls.sum(-1, keepdim=True)
    return (clsn + sem / sem.sum(-1, keepdim=True)) * vn, clsn


@register("flowcut", family="tokens", paper=FLOWCUT, params=[KEEP], role="prune", acts_at="vit", control="random-keep",
          facts={"control_label": "random-in-vit (flowcut schedule)", "control_counts": True, "own_control": True},
          summary="Inside the encoder: CLS + semantic attention times value L1 norm, accumulated over layers "
                  "(S <- S/2 + score/2), pruned progressively on an entropy-driven schedule to the target.")  # fmt: skip
def flowcut(vlm, *, keep=0.25, control=False, seed=0, salt=0, counts: list[int] | None = None) -> Policy:
    """FlowCut in the scene ViT. ``select_layer`` = the last encoder layer the LM reads (L - 2 = 6 of 8, as
    LLaVA's CLIP-L reads layer 22 of 24); pruning after layer ``l`` when ``rpl = select_layer - l - 1`` is even
    (l = 1, 3, 5 here). Deviation, and why: FlowCut's target T counts CLS (T - 1 patches + CLS, and LLaVA then
    drops CLS); here the target is k patches + CLS, so the LM reads the same k image tokens as every other
    method. The random control prunes at the same layers to the same counts: ``counts`` (tokens kept after each
    pruning layer), taken from FlowCut's own run on the same image (:func:`flowcut_counts`); without them the
    control follows the entropy of the tokens it kept. Token counts depend on each image's entropy, so the
    policy takes one image at a time (``per_image``)."""
    _check_vlm(vlm, "flowcut")
    enc = vlm.encoder
    N, p = enc.n_patches, enc.n_prefix
    k = keep_count(keep, N)
    sl = feature_layers(vlm) - 1
    if sl < 1:
        raise InputError(
            f"FlowCut prunes inside the encoder before the layer the LM reads; {vlm.name!r} reads layer "
            f"{sl + 1} of its encoder, which leaves no layer to prune at"
        )
    state: dict = {"S": None, "full": torch.full((1, N), float("nan")), "counts": []}

    def select(li, cap, ids):
        if li >= sl:
            return None
        if ids.shape[0] != 1:
            raise InputError("flowcut takes one image at a time (token counts depend on each image)")
        score, clsn = flowcut_scores(cap["attn"], cap["v"], p)
        S = score if state["S"] is None else 0.5 * state["S"] + 0.5 * score
        state["S"] = S
        state["full"].scatter_(1, ids, S.double().float())
        rpl = sl - li - 1
        if rpl % 2:
            return None
        n = S.shape[1]
        H = float(-(clsn * clsn.clamp_min(1e-12).log()).sum())
        r = flowcut_prune_count(n, k, H, rpl)
        if control and counts is not None:
            r = n - counts[len(state["counts"])]
        state["counts"].append({"layer": li, "rpl": rpl, "entropy": H, "removed": r, "kept": n - r})
        if r == 0:
            return None
        sel = random_keep(1, n, n - r, seed, salt * 31 + li) if control else topk_sorted(S, n - r)
        state["S"] = torch.gather(S, 1, sel)
        return sel

    pol = Policy(place="vit", vit_select=select, info={"k": k, "select_layer": sl, "per_image": True})
    pol.info["scores"] = state["full"]
    pol.info["schedule"] = state["counts"]
    return pol


def own_counts(method, vlm, pixels, keep: float) -> list[int]:
    """Tokens ``method`` (a registered in-encoder method) keeps after each of its pruning layers on one image
    [1, 3, S, S] (encoder only): what its random control follows (``facts["control_counts"]``)."""
    from engine.tokens.core import run_vit

    pol = method(vlm, keep=keep)
    run_vit(vlm.encoder, pixels, pol, feature_layers(vlm))
    return [c["kept"] for c in pol.info["schedule"]]


def flowcut_counts(vlm, pixels, keep: float) -> list[int]:
    """Tokens FlowCut keeps after each of its pruning layers on one image [1, 3, S, S] (encoder only)."""
    return own_counts(flowcut, vlm, pixels, keep)


def control_extras(method, vlm, pixels, keep: float, *, control: bool) -> dict:
    """Extra arguments of ``method``'s policy on one image: for its random control, the method's own token
    counts when the control must follow them (``facts["control_counts"]``); nothing otherwise."""
    if not control or not method.fact("control_counts"):
        return {}
    return {"counts": own_counts(method, vlm, pixels, keep)}


@register("flowcut-select", family="tokens", paper=FLOWCUT, params=[KEEP], role="prune", acts_at="pre-lm",
          control="random-keep", facts={"control_label": "random"},
          summary="FlowCut's selection (its own progressive pass through the encoder) applied before the LM to the "
                  "features of the unpruned encoder: where FlowCut chooses, without pruning inside the encoder.")  # fmt: skip
def flowcut_select(vlm, *, keep=0.25, control=False, seed=0, salt=0) -> Policy:
    """An ablation of :func:`flowcut`, not a method of the paper: FlowCut runs as usual (scores accumulated over
    the encoder layers, entropy schedule, pruning after layers 1, 3, 5) but only to *choose* the k patches; the LM
    then reads those patches' features from an encoder pass over all tokens. It separates FlowCut's choice from
    the cost of pruning inside an encoder that was never run on pruned sets (which changes the features the LM
    reads). It pays for a second, partial encoder pass (counted in the FLOPs). Its control is random before the
    LM (same k), since that is where it acts."""
    _check_vlm(vlm, "flowcut-select")
    N = vlm.encoder.n_patches
    k = keep_count(keep, N)
    info: dict = {"k": k, "per_image": True}

    def select(caps, feats, pixels):
        from engine.tokens.core import run_vit

        B = feats.shape[0]
        if control:
            return random_keep(B, N, k, seed, salt), None
        kept, scores = [], []
        for b in range(B):  # FlowCut's token counts depend on each image
            pol = flowcut(vlm, keep=keep)
            _, ids, _, _, vit_len, _ = run_vit(vlm.encoder, pixels[b : b + 1], pol, feature_layers(vlm))
            kept.append(ids.sort(1).values)
            scores.append(pol.info["scores"])
        info["extra_vit_lengths"] = vit_len
        info["schedule"] = pol.info["schedule"]
        return torch.cat(kept), torch.cat(scores)

    return Policy(place="pre-lm", pre_select=select, pre_select_pixels=True, info=info)


# ----------------------------------------------------------------------------------------------- PyramidDrop
def pdrop_stages(n_layers: int) -> tuple[int, ...]:
    """PyramidDrop's stage boundaries [8, 16, 24] of 32 layers, scaled to ``n_layers`` ([2, 4, 6] of 8)."""
    return tuple(sorted({min(n_layers - 1, max(1, round(b * n_layers / 32))) for b in (8, 16, 24)}))


def pdrop_attention(
    layer, x: torch.Tensor, pos: torch.Tensor, rotary, span: tuple[int, int], cos_sin=None
) -> torch.Tensor:
    """Attention [BQ, n] from the last token to the image tokens, as layer ``layer`` would compute it on its
    input ``x`` [BQ, T, d]: its input norm, q/k projections, RoPE at ``pos``, fp32 softmax over all T keys,
    mean over heads (PyramidDrop's ranking). ``cos_sin``: the rotary tables for ``pos`` if already computed."""
    from engine.vision.vlm import last_token_attention

    cos, sin = cos_sin if cos_sin is not None else rotary(x, pos)  # [B, T, dh]
    w = last_token_attention(layer.self_attn, layer.input_layernorm(x), cos, sin)  # [B, H, T]
    return w[:, :, span[0] : span[1]].mean(1)


@register("pyramiddrop", family="tokens", paper=PDROP, params=[KEEP], role="prune", acts_at="lm",
          control="random-keep", facts={"control_label": "random-at-pdrop-stages", "own_control": True},
          summary="Inside the LM: after each of three stages keep the image tokens the last instruction token "
                  "attends to most (next layer's norm, q/k, RoPE, fp32 softmax, mean over heads).")  # fmt: skip
def pyramiddrop(vlm, *, keep=0.25, control=False, seed=0, salt=0) -> Policy:
    """Stages scaled to the LM depth (:func:`pdrop_stages`). The ratio lambda per stage is chosen so that the
    last stage keeps ``keep`` of the tokens: lambda = keep ** (1/3) (the paper's lambda = 0.5 is keep = 0.125).
    Kept tokens keep their RoPE positions. The random control drops at the same stages to the same counts."""
    _check_vlm(vlm, "pyramiddrop")
    N = vlm.encoder.n_patches
    k = keep_count(keep, N)
    stages = pdrop_stages(vlm.n_layers)
    lam = float(keep) ** (1 / len(stages))
    counts = [max(k, round(N * lam ** (s + 1))) for s in range(len(stages))]
    counts[-1] = k

    def select(i, st):
        if i not in stages:
            return None
        n_keep = counts[stages.index(i)]
        x, pos, span, base = st["x"], st["pos"], st["span"], st["base"]
        B = x.shape[0]
        n = span[1] - span[0]
        if n_keep >= n:
            return None
        if control:
            return random_keep(B, n, n_keep, seed, salt * 31 + i)
        s = pdrop_attention(base.layers[i], x, pos, base.rotary_emb, span, st.get("cos_sin"))
        sc = torch.full((B, N), float("nan"))
        sc.scatter_(1, st["ids"], s.float())
        pol.info["scores"] = sc
        return topk_sorted(s, n_keep)

    pol = Policy(
        place="lm", lm_select=select, info={"k": k, "stages": stages, "lambda": lam, "counts": counts}
    )
    return pol


# ----------------------------------------------------------------------------------------------- FastV
def fastv_layer(n_layers: int, K: int = 2) -> int:
    """FastV's K = 2 of 32 layers scaled to ``n_layers`` (at least 1: there must be a layer's attention)."""
    return max(1, min(n_layers - 1, round(K * n_layers / 32)))


def fastv_received(attn: torch.Tensor, span: tuple[int, int], query: str = "all") -> torch.Tensor:
    """Attention each image token receives, [B, n], from eager weights ``attn`` [B, H, T, T] (mean over heads):
    ``"all"``: mean over the queries that can see it (causal: rows i >= j), the paper's "average attention
    received from other tokens"; ``"last"``: from the last token only (the official in-place code)."""
    a = attn.float().mean(1)  # [B, T, T]
    s0, s1 = span
    if query == "last":
        return a[:, -1, s0:s1]
    T = a.shape[1]
    cols = a[:, :, s0:s1].sum(1)
    seen = (T - torch.arange(s0, s1, dtype=a.dtype))[None]
    return cols / seen


@register("fastv", family="tokens", paper=FASTV, role="prune", acts_at="lm", control="random-keep",
          params=[KEEP, Param("K", -1, low=-1, high=63, help="prune before LM layer K (-1: 2 of 32 scaled)",
                              label="FastV: prune before LM layer K (-1: 2 of 32 scaled)"),
                  Param("query", "all", choices=("all", "last"), help="attention received from all / last token",
                        label="FastV: attention received from")],
          facts={"control_label": "random-at-fastv-layer", "own_control": True},
          summary="Inside the LM: rank image tokens by the attention they receive in layer K-1 and drop the "
                  "rest before layer K.")  # fmt: skip
def fastv(vlm, *, keep=0.25, K=-1, query="all", control=False, seed=0, salt=0) -> Policy:
    _check_vlm(vlm, "fastv")
    N = vlm.encoder.n_patches
    k = keep_count(keep, N)
    K = fastv_layer(vlm.n_layers) if int(K) < 0 else int(K)
    if not 1 <= K < vlm.n_layers:
        raise InputError(f"FastV's K must be in 1..{vlm.n_layers - 1} for this LM, got {K}")

    def select(i, st):
        if i != K:
            return None
        B = st["x"].shape[0]
        n = st["span"][1] - st["span"][0]
        if control:
            return random_keep(B, n, k, seed, salt * 31 + i)
        s = fastv_received(st["attn"][K - 1], st["span"], query)
        sc = torch.full((B, N), float("nan"))
        sc.scatter_(1, st["ids"], s)
        pol.info["scores"] = sc
        return topk_sorted(s, k)

    pol = Policy(place="lm", lm_select=select, lm_capture=() if control else (K - 1,),
                 info={"k": k, "K": K, "query": query})  # fmt: skip
    return pol


def family_params() -> list[Param]:
    """Every parameter of the registered token-pruning methods, once per name, in registration order (the
    tab's controls and the CLI's flags; each method reads only its own, through ``Method.validate``)."""
    from engine.registry import by_family

    seen: dict[str, Param] = {}
    for m in by_family("tokens"):
        for p in m.params:
            seen.setdefault(p.name, p)
    return list(seen.values())
