"""The scene VLM, built the LLaVA way (Liu et al., 2023, arXiv:2304.08485; LLaVA-1.5, arXiv:2310.03744):

    image -> frozen scene ViT -> patch features of the penultimate layer (CLS dropped, LLaVA's "default"
    strategy, ``vision_feature_layer = -2``) -> 2-layer MLP projector (LLaVA-1.5's mlp2x_gelu)
    -> a transformers ``LlamaForCausalLM`` decoder fed through ``inputs_embeds``.

The prompt is ``<bos> <img> x N  question (QLEN tokens, left-padded) ?`` and the answer is the next token, read
at the last position (the "last instruction token" that PyramidDrop and FastV rank image tokens with). The
decoder is a stock Llama (8 layers, so that PyramidDrop's three stages have layers to work in), so the same
hooks and loaders serve it, SmolLM2 and LLaVA's language model. LLaVA keeps the vision encoder frozen in both
training stages; so does this model, which lets ``vlm.safetensors`` hold only the projector and the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.vision import scenes

__all__ = ["LMSpec", "lm_config", "Projector", "SceneVLM", "last_token_attention"]


@dataclass(frozen=True)
class LMSpec:
    hidden_size: int = 256
    intermediate_size: int = 512
    num_hidden_layers: int = 8  # three PyramidDrop stages at [2, 4, 6]
    num_attention_heads: int = 8  # head_dim 32
    num_key_value_heads: int = 8
    max_position_embeddings: int = 256  # 1 + 196 image tokens + 10 question tokens fit


def lm_config(spec: LMSpec = LMSpec()):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(scenes.VOCAB),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=scenes.TOKEN_ID["<bos>"],
        pad_token_id=scenes.TOKEN_ID["<pad>"],
        eos_token_id=None,
        attention_dropout=0.0,
    )


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Unit-norm 2-D sine-cosine position codes [grid*grid, dim] in raster order (half the channels code the
    column, half the row; the fixed 2-D embedding of MAE, He et al. 2022, arXiv:2111.06377)."""
    g = torch.arange(grid, dtype=torch.float32)
    omega = 1.0 / (100.0 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4)))
    e = torch.cat([(g[:, None] * omega).sin(), (g[:, None] * omega).cos()], 1)  # [grid, dim/2]
    col = e[None].expand(grid, -1, -1)
    row = e[:, None].expand(-1, grid, -1)
    p = torch.cat([col, row], -1).reshape(grid * grid, -1)
    p = torch.nn.functional.pad(p, (0, dim - p.shape[1]))
    return p / p.norm(dim=-1, keepdim=True)


def last_token_attention(attn, hn: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Softmax attention [B, H, T] of the last position over all T, as the Llama attention module ``attn``
    computes it on its (already normed) input ``hn`` [B, T, d]: q/k projections, RoPE from ``cos``/``sin``
    [B or 1, T, head_dim], keys shared by grouped heads, fp32 softmax. Serves PyramidDrop's ranking
    (``engine.tokens.methods``) and the training-only grounding aid (``engine.vision.grounding``)."""
    from transformers.models.llama.modeling_llama import repeat_kv, rotate_half

    B, T, _ = hn.shape
    dh = attn.head_dim
    q = attn.q_proj(hn[:, -1:]).view(B, 1, -1, dh).transpose(1, 2)  # [B, H, 1, dh]
    k = attn.k_proj(hn).view(B, T, -1, dh).transpose(1, 2)  # [B, Hkv, T, dh]
    cos, sin = cos[:, None], sin[:, None]
    q = q * cos[:, :, -1:] + rotate_half(q) * sin[:, :, -1:]
    k = repeat_kv(k * cos + rotate_half(k) * sin, attn.num_key_value_groups)
    return torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scaling, -1)[:, :, 0]


class Projector(nn.Module):
    """LLaVA-1.5's ``mlp2x_gelu``: Linear -> GELU -> Linear (keys ``linear_1``/``linear_2`` as in transformers),
    plus a learned 2-D position embedding ``pos`` [N, d_out] added to each image token.

    Deviation from LLaVA, and why: the decoder's RoPE sees the image as a flat raster, where "one to the left" and
    "one row up" are 1 and 14 positions away; a first training run of this model stayed at chance on left/above
    questions. ``pos`` (zero-initialised, learned) gives each patch token its (row, col) identity, which it keeps
    when other tokens are pruned, as CLIP patch features carry theirs.
    """

    def __init__(self, d_in: int, d_out: int, n_tokens: int = 0) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(d_in, d_out)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(d_out, d_out)
        self.pos = nn.Parameter(torch.zeros(n_tokens, d_out)) if n_tokens else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, d_in] -> [B, N, d_out]
        y = self.linear_2(self.act(self.linear_1(x)))
        return y + self.pos if self.pos is not None else y


class SceneVLM(nn.Module):
    """``vit`` (a :class:`~engine.vision.vit.SceneViT`, frozen), ``projector``, ``lm`` (LlamaForCausalLM)."""

    feature_layer = -2  # hidden_states index of the ViT layer fed to the LM (LLaVA's default)

    def __init__(self, vit: nn.Module, lm_cfg) -> None:
        super().__init__()
        from transformers import LlamaForCausalLM

        self.vit = vit
        self.projector = Projector(vit.config.hidden_size, lm_cfg.hidden_size, scenes.GRID * scenes.GRID)
        self.lm = LlamaForCausalLM(lm_cfg)

    @property
    def n_image_tokens(self) -> int:
        return scenes.GRID * scenes.GRID

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch features [B, N, d_vit] of the ViT's penultimate layer (CLS dropped)."""
        out = self.vit(pixels, output_hidden_states=True)
        return out.hidden_states[self.feature_layer][:, 1:]

    def image_embeds(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected image tokens [B, N, d_lm]."""
        return self.projector(self.image_features(pixels))

    def sequence(
        self,
        img_embeds: torch.Tensor,
        questions: torch.Tensor,
        keep: torch.Tensor | None = None,
        keep_positions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs_embeds`` [B, 1 + n + QLEN, d] and ``position_ids`` [B, 1 + n + QLEN].

        ``keep`` [B, n] (patch indices, any order) feeds only those image tokens, in raster order. By default the
        sequence is compacted (positions 0..len-1), as token-pruning methods that act before the LM do;
        ``keep_positions=True`` gives every kept token the position it had in the full sequence instead.
        """
        emb = self.lm.get_input_embeddings()
        B, N = img_embeds.shape[:2]
        dev = img_embeds.device
        if keep is not None:
            keep = keep.sort(1).values
            img_embeds = torch.gather(img_embeds, 1, keep[..., None].expand(-1, -1, img_embeds.shape[-1]))
        bos = emb(torch.full((B, 1), scenes.TOKEN_ID["<bos>"], device=dev))
        q = emb(questions)
        x = torch.cat([bos, img_embeds.to(q.dtype), q], 1)
        if keep is not None and keep_positions:
            zero = torch.zeros(B, 1, dtype=torch.long, device=dev)
            after = torch.arange(1 + N, 1 + N + questions.shape[1], device=dev)[None].expand(B, -1)
            pos = torch.cat([zero, keep.to(dev) + 1, after], 1)
        else:
            pos = torch.arange(x.shape[1], device=dev)[None].expand(B, -1)
        return x, pos

    def forward(
        self,
        pixels: torch.Tensor | None,
        questions: torch.Tensor,  # [B, QLEN] token ids
        *,
        img_embeds: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        keep_positions: bool = False,
        **kwargs,
    ):
        """The LM output (``logits`` [B, T, V]; ``kwargs`` such as ``output_attentions`` pass through)."""
        if img_embeds is None:
            img_embeds = self.image_embeds(pixels)
        x, pos = self.sequence(img_embeds, questions, keep, keep_positions)
        return self.lm(inputs_embeds=x, position_ids=pos, **kwargs)

    @torch.no_grad()
    def answer(self, pixels, questions, *, keep=None) -> torch.Tensor:
        """Predicted answer token ids [B] (argmax over the whole vocabulary at the last position)."""
        return self(pixels, questions, keep=keep, logits_to_keep=1).logits[:, -1].argmax(-1)
