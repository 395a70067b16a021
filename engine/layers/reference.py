"""The official LLM-Drop procedure, reimplemented as a parity and speed reference for :mod:`engine.layers.scan`.

CASE-Lab-UMD/LLM-Drop (src/llmtuner/compression/prune/) first captures, for every calibration sample, the
input (and keyword arguments: mask, rotary embeddings) of layer 0; then it walks the layers one at a time,
running each layer on each sample at batch size 1, recording the similarity, and feeding the layer's outputs
to the next layer. This module does the same (without the official code's similarity-file cache, which is
reused silently when model or data change). It exists for the parity test and bench/layers.py only.
"""

from __future__ import annotations

import torch

from engine.layers.arch import base_model, decoder_layers, first_tensor, layout_of
from engine.models import LoadedModel

__all__ = ["reference_scan"]


class _Captured(Exception):
    pass


@torch.inference_mode()
def reference_scan(loaded: LoadedModel, windows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-layer attention/MLP/block similarity, layer by layer at batch size 1. Returns float64 [L] tensors."""
    model = loaded.model
    layout = layout_of(model)
    layers = decoder_layers(model)
    body = base_model(model)
    windows = windows.to(loaded.device)
    inputs: list[tuple[torch.Tensor, tuple, dict]] = []

    def grab(module, args, kwargs):
        # keep every other argument (mask, rotary embeddings, GPT-2's positional mask) to replay the layer
        if args:
            x, rest = args[0], tuple(args[1:])
        else:
            x, rest = kwargs["hidden_states"], ()
        kw = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        inputs.append((x, rest, kw))
        raise _Captured  # stop the forward pass: only layer 0's inputs are needed

    h = layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for i in range(windows.shape[0]):
            try:
                body(input_ids=windows[i : i + 1], use_cache=False)
            except _Captured:
                pass
    finally:
        h.remove()

    n_layers = len(layers)
    out = {k: torch.zeros(n_layers, dtype=torch.float64) for k in ("attn", "mlp", "block")}
    tokens = sum(x.shape[0] * x.shape[1] for x, _, _ in inputs)
    for li, layer in enumerate(layers):
        mid: dict[str, torch.Tensor] = {}
        if layout.pre_norm:
            hk = getattr(layer, layout.mid_norm).register_forward_pre_hook(
                lambda m, a, mid=mid: mid.__setitem__("x", a[0])
            )
        else:
            hk = getattr(layer, layout.attn).register_forward_hook(
                lambda m, a, o, mid=mid: mid.__setitem__("x", first_tensor(o))
            )
        try:
            nxt = []
            for x, rest, kw in inputs:
                y = first_tensor(layer(x, *rest, **kw))
                m = mid["x"]
                cos = torch.nn.functional.cosine_similarity
                out["attn"][li] += cos(x.float(), m.float(), dim=-1).double().sum().item()
                out["mlp"][li] += cos(m.float(), y.float(), dim=-1).double().sum().item()
                out["block"][li] += cos(x.float(), y.float(), dim=-1).double().sum().item()
                nxt.append((y, rest, kw))
            inputs = nxt
        finally:
            hk.remove()
    return {k: v / tokens for k, v in out.items()}
