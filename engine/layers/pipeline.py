"""The Layer Redundancy workflow end to end, shared by the app tab and the `redex layers` command.

Model + text -> calibration windows -> cached scan -> drop plan -> evaluation on held-out windows. Scans are
cached by fingerprint of (model, text, samples, length, head layer), in memory and on disk, so a repeated
request (or the default example after a restart) answers at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.cache import MemoryCache, disk_get, disk_put
from engine.config import LIMITS
from engine.corpus import Corpus, default_corpus, token_windows, user_corpus
from engine.layers.scan import LayerScan, scan_from_dict, scan_layers
from engine.models import LoadedModel, load_model
from engine.results import fingerprint

__all__ = ["ScanRequest", "corpus_for", "run_scan", "heldout_windows", "calibration_windows"]

_SCANS = MemoryCache(maxsize=16)
_FULL_EVAL: dict = {}  # full-model evaluation numbers, memoised by drop.evaluate_drop


@dataclass(frozen=True)
class ScanRequest:
    model: str = "smollm2"
    text: str | None = None  # None: the default corpus
    samples: int = 8
    seq_len: int = 256
    head_layer: int = -1
    allow_network: bool = False


def corpus_for(text: str | None) -> Corpus:
    return default_corpus() if text is None else user_corpus(text)


def calibration_windows(loaded: LoadedModel, corpus: Corpus, samples: int, seq_len: int) -> torch.Tensor:
    return token_windows(loaded.tokenizer, corpus.calibration, samples, seq_len)


def heldout_windows(
    loaded: LoadedModel, corpus: Corpus, seq_len: int, *, max_windows: int = 8
) -> torch.Tensor:
    """As many held-out windows of ``seq_len`` tokens as the text holds, capped by ``LIMITS.max_eval_tokens``."""
    ids = loaded.tokenizer(corpus.heldout[: LIMITS.max_eval_tokens * 8], add_special_tokens=False)[
        "input_ids"
    ]
    bos = loaded.tokenizer.bos_token_id
    body = seq_len - (1 if bos is not None else 0)
    n = min(max_windows, len(ids) // body, max(1, LIMITS.max_eval_tokens // seq_len))
    if n < 1:
        from engine.registry import InputError

        raise InputError(
            f"the held-out part of the text holds {len(ids)} tokens, fewer than one window of {seq_len}: "
            "use a shorter sample length or more text"
        )
    return token_windows(loaded.tokenizer, corpus.heldout, n, seq_len)


def run_scan(
    req: ScanRequest, *, progress: Callable[[float, str], None] | None = None
) -> tuple[LoadedModel, Corpus, LayerScan]:
    loaded = load_model(req.model, allow_network=req.allow_network)
    corpus = corpus_for(req.text)
    key = fingerprint("scan-v1", loaded.name, corpus.calibration, req.samples, req.seq_len, req.head_layer)

    def compute() -> LayerScan:
        cached = disk_get("layers", key)
        if cached is not None:
            return scan_from_dict(cached)
        windows = calibration_windows(loaded, corpus, req.samples, req.seq_len)
        scan = scan_layers(
            loaded, windows, head_layer=req.head_layer, text_source=corpus.source, progress=progress
        )
        disk_put("layers", key, scan.to_dict())
        return scan

    return loaded, corpus, _SCANS.get_or_compute(key, compute)


def full_eval_cache() -> dict:
    return _FULL_EVAL
