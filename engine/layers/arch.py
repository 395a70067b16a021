"""Where the residual stream and the sublayers live in the transformer families this app supports.

Three layouts cover Llama, Mistral, Qwen2/3, SmolLM, Phi-3 ("llama": ``self_attn``, ``mlp``,
``input_layernorm``, ``post_attention_layernorm``), GPT-2/GPT-J-like ("gpt2": ``attn``, ``mlp``, ``ln_1``,
``ln_2``) and BERT/MiniLM ("bert": post-norm ``attention``, ``intermediate``/``output``).

For pre-norm layouts the residual stream entering the attention sublayer is the layer input, the stream after
it is the input of the second norm (``post_attention_layernorm`` / ``ln_2``), and the stream after the MLP is
the layer output, exactly as in LLM-Drop. BERT is post-norm: there the "stream" after attention is the
attention block's (layer-normed) output; we say so wherever BERT results are shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.registry import InputError

__all__ = ["Layout", "layout_of", "decoder_layers", "base_model"]

_LAYER_PATHS = (
    "model.layers",
    "layers",
    "model.decoder.layers",
    "transformer.h",
    "h",
    "encoder.layer",
    "bert.encoder.layer",
    "gpt_neox.layers",
)


@dataclass(frozen=True)
class Layout:
    kind: str  # "llama", "gpt2" or "bert"
    attn: str  # attribute of the layer holding the attention sublayer
    mlp: str  # attribute holding the MLP sublayer ("" for bert: see drop.py)
    mid_norm: str  # pre-norm: module whose *input* is the stream after attention; bert: "" (attention output)
    pre_norm: bool


_LAYOUTS = {
    "llama": Layout("llama", "self_attn", "mlp", "post_attention_layernorm", True),
    "gpt2": Layout("gpt2", "attn", "mlp", "ln_2", True),
    "bert": Layout("bert", "attention", "", "", False),
}


def _get_path(obj: nn.Module, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def base_model(model: nn.Module) -> nn.Module:
    """The transformer body without the LM head (scans do not need logits)."""
    return getattr(model, "base_model", model)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    for path in _LAYER_PATHS:
        layers = _get_path(model, path)
        if isinstance(layers, nn.ModuleList) and len(layers) > 0:
            return layers
    raise InputError(
        f"{type(model).__name__}: cannot find its transformer layers (looked for {', '.join(_LAYER_PATHS)})"
    )


def layout_of(model: nn.Module) -> Layout:
    layer = decoder_layers(model)[0]
    if all(hasattr(layer, a) for a in ("self_attn", "mlp", "post_attention_layernorm")):
        return _LAYOUTS["llama"]
    if all(hasattr(layer, a) for a in ("attn", "mlp", "ln_2")):
        return _LAYOUTS["gpt2"]
    if all(hasattr(layer, a) for a in ("attention", "intermediate", "output")):
        return _LAYOUTS["bert"]
    raise InputError(
        f"{type(layer).__name__}: unsupported layer layout; supported are Llama/Mistral/Qwen-style "
        "(self_attn, mlp, post_attention_layernorm), GPT-2-style (attn, mlp, ln_2) and BERT-style layers"
    )


def first_tensor(x) -> torch.Tensor:
    """Modules return a tensor or a tuple whose first element is the hidden states."""
    return x[0] if isinstance(x, tuple | list) else x
