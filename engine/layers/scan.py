"""LLM-Drop similarity scan (He et al., "What Matters in Transformers? Not All Attention is Needed", 2024,
arXiv:2406.15786; official code CASE-Lab-UMD/LLM-Drop).

For every layer l and sublayer (attention, MLP, whole block) the score is

    s = mean over all calibration tokens t of cos(X_t, Y_t)      (float32)

with X the residual stream entering the sublayer (before its pre-norm) and Y = X + sublayer(LN(X)) the stream
after it. A high s means the sublayer barely changes the stream: it is redundant. Importance = 1 - s.

Unlike the official code, which captures the input of each layer and then re-runs layers one at a time, this
module installs forward hooks and gets every layer's three scores from **one forward pass per batch**
(:func:`scan_layers`). The same pass also yields

- ``hidden_similarity[i, j]``: mean token cosine between the residual stream after layer i and after layer j
  (index 0 is the embedding output), the layer-by-layer picture of how fast the stream still changes;
- ``head_similarity[h, g]``: cosine between the attention patterns of heads h and g of one chosen layer,
  flattened over all query/key positions and samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.layers.arch import base_model, decoder_layers, first_tensor, layout_of
from engine.layers.guard import Ticker, ticking, using
from engine.models import LoadedModel
from engine.registry import InputError, Paper, Param, register
from engine.results import Provenance, Result, Stopwatch, fingerprint

__all__ = ["LLM_DROP_PAPER", "LayerScan", "scan_layers", "scan_from_dict", "hooks"]

LLM_DROP_PAPER = Paper(
    "What Matters in Transformers? Not All Attention is Needed", 2024, "arXiv:2406.15786",
    "https://arxiv.org/abs/2406.15786", ("He, Shwai", "Sun, Guoheng", "Shen, Zheyu", "Li, Ang"),
)  # fmt: skip

Progress = Callable[[float, str], None]


@dataclass
class LayerScan(Result):
    model: str = ""
    layout: str = ""
    n_layers: int = 0
    n_heads: int = 0
    samples: int = 0
    seq_len: int = 0
    tokens: int = 0
    text_source: str = ""
    attn_similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [L]
    mlp_similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [L]
    block_similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [L]
    hidden_similarity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [L+1, L+1]
    head_layer: int = 0
    head_similarity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [H, H]

    def ranking(self, kind: str) -> list[int]:
        """Layer indices ordered from most redundant (highest similarity) to least."""
        s = {"attn": self.attn_similarity, "mlp": self.mlp_similarity, "block": self.block_similarity}[kind]
        return [int(i) for i in np.argsort(-np.asarray(s), kind="stable")]

    def tables(self) -> dict[str, list[dict]]:
        rows = [
            {
                "index": i,
                "attn_similarity": float(self.attn_similarity[i]),
                "mlp_similarity": float(self.mlp_similarity[i]),
                "block_similarity": float(self.block_similarity[i]),
                "attn_importance": float(1 - self.attn_similarity[i]),
                "mlp_importance": float(1 - self.mlp_similarity[i]),
                "block_importance": float(1 - self.block_similarity[i]),
            }
            for i in range(self.n_layers)
        ]
        return {"layers": rows}


class _Accumulator:
    """Running sums filled by the hooks during the forward passes."""

    def __init__(self, n_layers: int, n_heads: int) -> None:
        self.attn = torch.zeros(n_layers, dtype=torch.float64)
        self.mlp = torch.zeros(n_layers, dtype=torch.float64)
        self.block = torch.zeros(n_layers, dtype=torch.float64)
        self.tokens = 0
        self.hidden_dot = torch.zeros(n_layers + 1, n_layers + 1, dtype=torch.float64)
        self.head_dot = torch.zeros(n_heads, n_heads, dtype=torch.float64)
        self.stream: dict[int, torch.Tensor] = {}  # per-batch residual stream, unit-normalised [T, D]
        self.inputs: dict[int, torch.Tensor] = {}
        self.mids: dict[int, torch.Tensor] = {}
        self.heads_seen = False
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None  # (last layer output, its unit vectors)


def _dot_sum(u: torch.Tensor, v: torch.Tensor) -> float:
    """Sum over tokens of the cosine of two streams given as unit vectors ``[T, D]`` (per token in float32)."""
    return (u * v).sum(dim=-1).double().sum().item()


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.float().reshape(-1, x.shape[-1])
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@contextmanager
def hooks(
    model: torch.nn.Module, acc: _Accumulator, *, head_layer: int | None, want_hidden: bool
) -> Iterator[None]:
    """Install the capture hooks; always removes them, even when the forward pass fails."""
    layout = layout_of(model)
    layers = decoder_layers(model)
    handles = []

    # Every stream is normalised once: a layer's input is the previous layer's output (the same tensor
    # object in these stacks), so its unit vectors are reused rather than recomputed.
    def pre_hook(idx):
        def fn(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            u = acc.last[1] if acc.last is not None and acc.last[0] is x else _unit(x)
            acc.inputs[idx] = u
            if want_hidden and idx == 0:
                acc.stream[0] = u

        return fn

    def mid_pre_hook(idx):
        def fn(module, args):
            acc.mids[idx] = _unit(args[0])

        return fn

    def mid_out_hook(idx):  # bert: stream after attention = attention block output
        def fn(module, args, out):
            acc.mids[idx] = _unit(first_tensor(out))

        return fn

    def out_hook(idx):
        def fn(module, args, out):
            y = first_tensor(out)
            ux, um, uy = acc.inputs.pop(idx), acc.mids.pop(idx), _unit(y)
            acc.attn[idx] += _dot_sum(ux, um)
            acc.mlp[idx] += _dot_sum(um, uy)
            acc.block[idx] += _dot_sum(ux, uy)
            acc.last = (y, uy)
            if want_hidden:
                acc.stream[idx + 1] = uy

        return fn

    def head_hook(module, args, out):
        weights = out[1] if isinstance(out, tuple) and len(out) > 1 else None
        if weights is None:
            return
        for w in weights.detach():  # one sample at a time bounds the float32 copy to [H, T*T]
            flat = w.float().reshape(w.shape[0], -1)
            acc.head_dot += (flat @ flat.T).double().cpu()
        acc.heads_seen = True

    try:
        for i, layer in enumerate(layers):
            handles.append(layer.register_forward_pre_hook(pre_hook(i), with_kwargs=True))
            if layout.pre_norm:
                handles.append(getattr(layer, layout.mid_norm).register_forward_pre_hook(mid_pre_hook(i)))
            else:
                handles.append(getattr(layer, layout.attn).register_forward_hook(mid_out_hook(i)))
            handles.append(layer.register_forward_hook(out_hook(i)))
        if head_layer is not None:
            handles.append(getattr(layers[head_layer], layout.attn).register_forward_hook(head_hook))
        yield
    finally:
        for h in handles:
            h.remove()
        acc.inputs.clear()
        acc.mids.clear()
        acc.stream.clear()
        acc.last = None


@register(
    "layer-similarity",
    family="layers",
    paper=LLM_DROP_PAPER,
    summary="Mean cosine between the residual stream before and after each attention, MLP and block.",
    role="scan",
    params=[
        Param(
            "samples",
            8,
            low=1,
            high=256,
            help="calibration windows (paper: 256)",
            label="Samples (calibration windows)",
        ),
        Param(
            "seq_len",
            256,
            low=8,
            high=2048,
            help="tokens per window (paper: 2048)",
            step=8,
            label="Sample length (tokens)",
        ),
        Param(
            "head_layer",
            -1,
            low=-1,
            high=512,
            help="layer whose heads are compared (-1: the last)",
            label="Layer for head similarity (-1 = last)",
        ),
    ],
)
def scan_layers(
    loaded: LoadedModel,
    windows: torch.Tensor,  # [N, T] token ids
    *,
    head_layer: int | None = -1,
    batch_tokens: int | None = None,
    hidden: bool = True,
    text_source: str = "",
    progress: Progress | None = None,
) -> LayerScan:
    """Score every layer's attention, MLP and block in one forward pass per batch.

    Parameters
    ----------
    loaded : the model (any layout of :mod:`engine.layers.arch`).
    windows : LongTensor ``[N, T]`` of token ids, e.g. from :func:`engine.corpus.token_windows`.
    hidden : also compute the layer-by-layer hidden-state similarity (``hidden_similarity``; empty when off).
    head_layer : layer whose attention heads are compared; negative counts from the end; ``None`` skips the
        head comparison (then the model may use a fused attention kernel that returns no weights).
    batch_tokens : windows are grouped so that one forward pass sees about this many tokens (default 1,024 on
        the CPU, where bigger batches run slower per token, and 32,768 on a GPU).

    Raises
    ------
    InputError
        Head layer out of range; a model whose attention returns no weights.
    """
    model = loaded.model
    n_layers = len(decoder_layers(model))
    if head_layer is not None:
        if not -n_layers <= head_layer < n_layers:
            raise InputError(f"head layer {head_layer} is out of range for a model with {n_layers} layers")
        head_layer %= n_layers
    max_pos = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    if max_pos and windows.shape[1] > max_pos:
        raise InputError(
            f"sample length {windows.shape[1]} is over this model's maximum of {max_pos} positions"
        )
    windows = windows.to(loaded.device)
    n, t = windows.shape
    if batch_tokens is None:
        batch_tokens = 1024 if loaded.device == "cpu" else 32768
    per_batch = max(1, batch_tokens // t)
    acc = _Accumulator(n_layers, loaded.n_heads)
    sw = Stopwatch()
    body = base_model(model)
    # the model's lock is held for the whole scan: the hooks would also see another request's forward pass,
    # and a concurrent drop must not change the layers under them; the ticker moves progress layer by layer
    n_batches = -(-n // per_batch)
    ticker = Ticker(progress, 0.0, 1.0, n_batches * n_layers, f"scanning {n} samples x {t} tokens")
    with (
        sw("forward"),
        torch.inference_mode(),
        using(model, progress),
        hooks(model, acc, head_layer=head_layer, want_hidden=hidden),
        ticking(model, ticker),
    ):
        for start in range(0, n, per_batch):
            batch = windows[start : start + per_batch]
            body(input_ids=batch, use_cache=False)
            acc.tokens += batch.numel()
            if hidden:  # hidden-state similarity, streamed: sum over tokens of <u_i, u_j>
                stream = torch.stack([acc.stream[i] for i in range(n_layers + 1)])  # [L+1, tokens, D]
                acc.hidden_dot += torch.einsum("itd,jtd->ij", stream, stream).double().cpu()
                acc.stream.clear()
            if progress is not None:
                progress(min(1.0, (start + len(batch)) / n), f"scanned {start + len(batch)}/{n} samples")
    if head_layer is not None and not acc.heads_seen:
        raise InputError(
            f"{type(model).__name__} returned no attention weights from layer {head_layer}; load it with "
            "eager attention (attn_implementation='eager')"
        )
    head_norm = acc.head_dot.diagonal().clamp_min(1e-30).sqrt()
    head_sim = acc.head_dot / (head_norm[:, None] * head_norm[None, :])
    prov = Provenance(
        method="layer-similarity",
        params={"samples": n, "seq_len": t, "head_layer": head_layer},
        input_fingerprint=fingerprint(loaded.name, windows.cpu().numpy()),
        seed=None,
        backend=loaded.device,
        timings=sw.timings,
    )
    return LayerScan(
        provenance=prov,
        model=loaded.name,
        layout=layout_of(model).kind,
        n_layers=n_layers,
        n_heads=loaded.n_heads,
        samples=n,
        seq_len=t,
        tokens=acc.tokens,
        text_source=text_source,
        attn_similarity=(acc.attn / acc.tokens).numpy(),
        mlp_similarity=(acc.mlp / acc.tokens).numpy(),
        block_similarity=(acc.block / acc.tokens).numpy(),
        hidden_similarity=(acc.hidden_dot / acc.tokens).numpy() if hidden else np.zeros((0, 0)),
        head_layer=-1 if head_layer is None else head_layer,
        head_similarity=head_sim.numpy() if head_layer is not None else np.zeros((0, 0)),
    )


def scan_from_dict(d: dict) -> LayerScan:
    """Rebuild a :class:`LayerScan` from :meth:`LayerScan.to_dict` output (disk cache, JSON exports)."""
    d = dict(d)
    prov = Provenance(**d.pop("provenance"))
    for k in (
        "attn_similarity",
        "mlp_similarity",
        "block_similarity",
        "hidden_similarity",
        "head_similarity",
    ):
        d[k] = np.asarray(d[k], dtype=np.float64)
    return LayerScan(provenance=prov, **d)
