"""The scene ViT: a transformers ``ViTModel`` (Dosovitskiy et al., 2021, arXiv:2010.11929) with a CLS token,
patch 8 on 112 px images (a 14x14 grid), and the heads it is trained with.

Being a stock transformers ViT, the same hooks and ``output_attentions`` serve it and hub ViT / CLIP / DINOv2
encoders. The training task asks both the CLS token and every patch token to know the scene, so that the
patch features the VLM reads are informative and CLS attention means something:

- ``presence`` (from CLS): which of the 30 (shape, colour) pairs are in the scene, multi-label;
- ``count`` (from CLS): how many objects, 0..10;
- ``patch`` (from each patch token): the (shape, colour) of the object covering most of the patch, or
  background (class 0) when objects cover under a quarter of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.vision import scenes

__all__ = ["ViTSpec", "vit_config", "SceneViT", "vit_targets", "PIXEL_MEAN", "PIXEL_STD"]

PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.5, 0.5, 0.5)
N_PAIRS = len(scenes.SHAPES) * len(scenes.COLORS)


@dataclass(frozen=True)
class ViTSpec:
    hidden_size: int = 192  # ViT-Tiny width
    num_hidden_layers: int = 8  # deep enough for FlowCut's layer schedule (select_layer = L - 2)
    num_attention_heads: int = 3  # head_dim 64, as ViT-Tiny
    intermediate_size: int = 576  # 3x width keeps the weights small
    image_size: int = scenes.IMAGE_SIZE
    patch_size: int = scenes.PATCH


def vit_config(spec: ViTSpec = ViTSpec()):
    from transformers import ViTConfig

    return ViTConfig(
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        num_channels=3,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        intermediate_size=spec.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-6,
        qkv_bias=True,
    )


class SceneViT(nn.Module):
    """``vit`` (a transformers ViTModel without pooler) and ``heads``; takes pixels in [0, 1]."""

    def __init__(self, config) -> None:
        super().__init__()
        from transformers import ViTModel

        self.config = config
        self.vit = ViTModel(config, add_pooling_layer=False)
        d = config.hidden_size
        self.heads = nn.ModuleDict(
            {
                "presence": nn.Linear(d, N_PAIRS),
                "count": nn.Linear(d, scenes.MAX_OBJECTS + 1),
                "patch": nn.Linear(d, N_PAIRS + 1),
            }
        )

    @staticmethod
    def normalize(pixels: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] in [0, 1]
        mean = torch.tensor(PIXEL_MEAN, device=pixels.device, dtype=pixels.dtype)[:, None, None]
        std = torch.tensor(PIXEL_STD, device=pixels.device, dtype=pixels.dtype)[:, None, None]
        return (pixels - mean) / std

    def forward(self, pixels: torch.Tensor, **kwargs):
        """Returns the ViTModel output (``kwargs`` such as ``output_attentions`` pass through)."""
        return self.vit(pixel_values=self.normalize(pixels), **kwargs)

    def head_logits(self, last_hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        cls, patches = last_hidden[:, 0], last_hidden[:, 1:]
        return {
            "presence": self.heads["presence"](cls),  # [B, 30]
            "count": self.heads["count"](cls),  # [B, 11]
            "patch": self.heads["patch"](patches),  # [B, N, 31]
        }


def vit_targets(batch: scenes.SceneBatch, device) -> dict[str, torch.Tensor]:
    """Training targets of :class:`SceneViT` from a scene batch."""
    pair = torch.as_tensor(batch.shape * len(scenes.COLORS) + batch.color, device=device)
    present = torch.as_tensor(batch.present, device=device)
    presence = torch.zeros(len(batch), N_PAIRS, device=device)
    presence.scatter_add_(1, pair, present.float())
    cov = batch.coverage.to(device)  # [B, K, N]
    best, slot = cov.max(1)  # [B, N]
    label = torch.gather(pair, 1, slot) + 1
    label = torch.where(best >= 0.25, label, torch.zeros_like(label))
    return {"presence": (presence > 0).float(), "count": present.sum(1), "patch": label}
