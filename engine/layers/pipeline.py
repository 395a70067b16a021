"""The Layer Redundancy workflow end to end, shared by the app tab and the `redex layers` command.

Model + text -> calibration windows -> cached scan -> drop plan -> evaluation on held-out windows. Scans are
cached by fingerprint of (model, text, samples, length, head layer), in memory and on disk, so a repeated
request (or the default example after a restart) answers at once.

- :func:`run_scan`: the cached scan of a :class:`ScanRequest`.
- :func:`drop_plan`: the plan of a registered drop method (the registry is the dispatch), from that scan.
- :func:`manual_plan`: the plan a user ticked by hand.
- :func:`evaluate_plan`: full vs dropped model on held-out windows, with :data:`APPLY` settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.cache import MemoryCache, disk_get, disk_put
from engine.config import LIMITS
from engine.corpus import Corpus, default_corpus, token_windows, user_corpus
from engine.layers.drop import DEFAULT_PROMPT, DropEval, DropPlan, evaluate_drop
from engine.layers.scan import LayerScan, scan_from_dict, scan_layers
from engine.models import LoadedModel, load_model
from engine.registry import InputError, Param, Settings, get
from engine.results import fingerprint

__all__ = [
    "ScanRequest", "APPLY", "DEFAULT_DROP", "corpus_for", "run_scan", "heldout_windows", "calibration_windows",
    "drop_plan", "default_plan", "manual_plan", "evaluate_plan",
]  # fmt: skip

DEFAULT_DROP = "attn-drop"  # the ranking the scan preselects with (the paper's headline method)
MAX_PROMPT_CHARS = 2000

APPLY = Settings(
    "drop evaluation",
    (
        Param("prompt", DEFAULT_PROMPT, help="greedy generation prompt (empty: the default)",
              label="Generation prompt"),
        Param("max_new_tokens", 32, low=1, high=LIMITS.max_new_tokens, help="tokens generated per model",
              label="New tokens"),
    ),
)  # fmt: skip

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


def drop_plan(
    req: ScanRequest,
    method: str,
    values: dict | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> DropPlan:
    """The plan of the registered drop ``method`` on the cached scan of ``req``.

    ``values`` may hold the controls every drop method shares (``n``, ``iterative``, ``seed``); those the
    method does not take are ignored, the rest go through ``Method.validate``. Calibration windows are only
    tokenised for an iterative plan (which re-scores the pruned model).
    """
    m = get(method, family="layers")
    if m.role != "drop":
        raise InputError(f"{method!r} is a {m.role} method, not a drop method")
    own = {p.name for p in m.params}
    params = m.validate({k: v for k, v in (values or {}).items() if k in own})
    loaded, corpus, scan = run_scan(req)
    windows = (
        calibration_windows(loaded, corpus, req.samples, req.seq_len) if params.get("iterative") else None
    )
    return m(loaded, windows, scan=scan, progress=progress, **params)


def default_plan(req: ScanRequest) -> DropPlan:
    """What the scan preselects: :data:`DEFAULT_DROP` with its default count (at most the model's layers)."""
    _, _, scan = run_scan(req)
    n = get(DEFAULT_DROP, family="layers").param("n").default
    return drop_plan(req, DEFAULT_DROP, {"n": min(n, scan.n_layers)})


def manual_plan(attn=(), mlp=(), block=()) -> DropPlan:
    """A plan of hand-picked layer indices (the tab's checkboxes); at least one must be picked."""
    plan = DropPlan(
        attn=tuple(sorted(int(i) for i in attn or [])),
        mlp=tuple(sorted(int(i) for i in mlp or [])),
        block=tuple(sorted(int(i) for i in block or [])),
        strategy="manual",
    )
    if plan.count == 0:
        raise InputError("pick at least one layer to drop (tick attention, MLP or block layers)")
    return plan


def evaluate_plan(req: ScanRequest, plan: DropPlan, settings: dict | None = None) -> DropEval:
    """Full vs dropped model on the held-out windows of ``req``'s text, with :data:`APPLY` settings; the full
    model's numbers are memoised across calls."""
    s = APPLY.validate(settings)
    prompt = (s["prompt"] or "").strip() or DEFAULT_PROMPT
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"the prompt is over {MAX_PROMPT_CHARS:,} characters")
    loaded, corpus, _ = run_scan(req)
    heldout = heldout_windows(loaded, corpus, min(req.seq_len, 256))
    return evaluate_drop(
        loaded, plan, heldout, prompt=prompt, max_new_tokens=s["max_new_tokens"], full_cache=_FULL_EVAL
    )
