"""What a layer scan, a drop evaluation or a drop curve will cost, decided before it starts.

Two numbers per job, both from the request and the loaded model's config, no forward pass:

- **work**: tokens pushed through the model, scaled by the model's size relative to SmolLM2-135M (a 7B
  model's token costs ~50 of SmolLM2's). Work over :data:`LIGHT_WORK` (about the default scan's size) is
  heavy and takes one of the server's heavy slots (:func:`engine.admission.heavy_slot`); the default small
  sizes run at once, next to everyone else's cheap work.
- **bytes**: the peak memory the job adds on top of the loaded weights, refused up front by
  :func:`engine.admission.check_memory` with the estimate in the message. A scan streams its windows in
  batches, so its peak is one batch's: the unit-normalised residual stream of every layer (kept for the
  hidden-state similarity, and once more while the batch's Gram matrix is formed), the attention weights
  the eager kernel materialises (the head comparison reads them), and the MLP's working activations.
  Perplexity adds the batch's logits and their log-softmax (vocabulary x tokens, float32).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

from engine.admission import check_memory, heavy_slot
from engine.models import LoadedModel

__all__ = ["LIGHT_WORK", "model_scale", "scan_bytes", "perplexity_bytes", "admitted", "expected_seconds"]

LIGHT_WORK = 4096  # SmolLM2-135M-equivalent tokens: the default scan (8 x 256) and one default Apply fit
_REFERENCE_PARAMS = 135e6  # SmolLM2-135M
_F32 = 4


_PARAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> parameter count


def model_scale(loaded: LoadedModel) -> float:
    """How many SmolLM2-135M tokens one token of this model costs (at least 1)."""
    n = _PARAMS.get(loaded.model)
    if n is None:
        n = _PARAMS[loaded.model] = sum(p.numel() for p in loaded.model.parameters())
    return max(1.0, n / _REFERENCE_PARAMS)


def _batch(n: int, t: int, batch_tokens: int) -> tuple[int, int]:
    """(windows per forward pass, tokens per forward pass) for ``n`` windows of ``t`` tokens."""
    per = max(1, min(n, batch_tokens // t))
    return per, per * t


def _vocab(loaded: LoadedModel) -> int:
    return int(getattr(loaded.model.config, "vocab_size", 0) or 0)


def _intermediate(loaded: LoadedModel) -> int:
    cfg = loaded.model.config
    return int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * loaded.hidden_size)


def scan_bytes(loaded: LoadedModel, samples: int, seq_len: int, *, batch_tokens: int | None = None) -> int:
    """Peak bytes a scan of ``samples`` x ``seq_len`` adds (one batch: streams, attention, MLP)."""
    if batch_tokens is None:
        batch_tokens = 1024 if loaded.device == "cpu" else 32768
    per, tok = _batch(samples, seq_len, batch_tokens)
    streams = 2 * tok * loaded.hidden_size * (loaded.n_layers + 1)  # kept per layer, stacked once more
    attention = 2 * per * loaded.n_heads * seq_len * seq_len  # scores and softmax of one layer
    mlp = 3 * tok * _intermediate(loaded)
    return _F32 * (streams + attention + mlp)


def perplexity_bytes(loaded: LoadedModel, windows: int, seq_len: int, *, batch_tokens: int = 4096) -> int:
    """Peak bytes one perplexity pass adds: logits and their log-softmax, attention, MLP of one batch."""
    per, tok = _batch(windows, seq_len, batch_tokens)
    logits = 2 * tok * _vocab(loaded)
    attention = 2 * per * loaded.n_heads * seq_len * seq_len
    mlp = 3 * tok * _intermediate(loaded) + 4 * tok * loaded.hidden_size
    return _F32 * (logits + attention + mlp)


def expected_seconds(loaded: LoadedModel, work: float) -> float:
    """A rough length of ``work`` (for the "try again in N s" others are told)."""
    rate = 300.0 if loaded.device == "cpu" else 30000.0  # SmolLM2 tokens per second, a loaded 2-core CPU
    return max(5.0, work / rate)


@contextmanager
def admitted(
    what: str,
    loaded: LoadedModel,
    *,
    tokens: float,
    nbytes: float,
    progress: Callable[[float, str], None] | None = None,
) -> Iterator[bool]:
    """Refuse ``what`` when ``nbytes`` is more than the server can give, then run the body, inside a heavy slot
    when its work (``tokens`` x :func:`model_scale`) is over :data:`LIGHT_WORK`. Yields whether it is heavy."""
    check_memory(nbytes, what)
    work = tokens * model_scale(loaded)
    heavy = work > LIGHT_WORK
    slot = heavy_slot(what, expect_s=expected_seconds(loaded, work), progress=progress) if heavy else None
    with slot or nullcontext():
        yield heavy
