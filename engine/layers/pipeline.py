"""The Layer Redundancy workflow end to end, shared by the app tab and the `redex layers` command.

Model + text -> calibration windows -> cached scan -> drop plan -> evaluation on held-out windows. Scans are
cached by fingerprint of (model, text, samples, length, head layer), in memory and on disk, so a repeated
request (or the default example after a restart) answers at once.

- :func:`run_scan`: the cached scan of a :class:`ScanRequest`.
- :func:`drop_plan`: the plan of a registered drop method (the registry is the dispatch), from that scan.
- :func:`manual_plan`: the plan a user ticked by hand.
- :func:`evaluate_plan`: full vs dropped model on held-out windows, with :data:`APPLY` settings.
- :func:`eval_windows`: the held-out windows both Apply and the drop curve measure on (the same ones, so the
  full model's perplexity is one number in both places).

Work over the default small sizes runs in a heavy slot and is refused up front when its memory estimate is
over what the server can give (:mod:`engine.layers.cost`); cached results answer without either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.cache import MemoryCache, disk_get, disk_put
from engine.config import LIMITS
from engine.corpus import Corpus, default_corpus, token_windows, user_corpus
from engine.layers.cost import admitted, perplexity_bytes, scan_bytes
from engine.layers.drop import DEFAULT_PROMPT, DropEval, DropPlan, evaluate_drop
from engine.layers.scan import LayerScan, scan_from_dict, scan_layers
from engine.models import LoadedModel, load_model
from engine.registry import InputError, Param, Settings, get
from engine.results import fingerprint

__all__ = [
    "ScanRequest", "APPLY", "DEFAULT_DROP", "corpus_for", "run_scan", "heldout_windows", "calibration_windows",
    "drop_plan", "default_plan", "manual_plan", "evaluate_plan", "eval_windows", "heldout_source",
    "EVAL_WINDOWS", "EVAL_SEQ_LEN",
]  # fmt: skip

DEFAULT_DROP = "attn-drop"  # the ranking the scan preselects with (the paper's headline method)
MAX_PROMPT_CHARS = 2000
EVAL_WINDOWS = 4  # held-out windows of every evaluation (Apply and each point of the drop curve)
EVAL_SEQ_LEN = 256  # their length is the scan's sample length, at most this

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
    loaded: LoadedModel, corpus: Corpus, seq_len: int, *, max_windows: int = EVAL_WINDOWS
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


def eval_windows(loaded: LoadedModel, corpus: Corpus, req: ScanRequest) -> torch.Tensor:
    """The held-out windows every evaluation of ``req`` uses: :data:`EVAL_WINDOWS` windows of the scan's
    sample length (at most :data:`EVAL_SEQ_LEN`) from the held-out part of the text."""
    return heldout_windows(loaded, corpus, min(req.seq_len, EVAL_SEQ_LEN), max_windows=EVAL_WINDOWS)


def heldout_source(corpus: Corpus) -> str:
    """Where the evaluation windows come from, for captions."""
    return f"the held-out part of {corpus.source} (paragraphs the scan never saw)"


def run_scan(
    req: ScanRequest, *, progress: Callable[[float, str], None] | None = None
) -> tuple[LoadedModel, Corpus, LayerScan]:
    """The scan of ``req``: from memory, from disk, or computed (in a heavy slot when over the small sizes)."""
    loaded = load_model(req.model, allow_network=req.allow_network)
    corpus = corpus_for(req.text)
    key = fingerprint("scan-v1", loaded.name, corpus.calibration, req.samples, req.seq_len, req.head_layer)

    def compute() -> LayerScan:
        cached = disk_get("layers", key)
        if cached is not None:
            return scan_from_dict(cached)
        windows = calibration_windows(loaded, corpus, req.samples, req.seq_len)
        what = f"a layer scan of {loaded.name} ({req.samples} x {req.seq_len} tokens)"
        nbytes = scan_bytes(loaded, req.samples, req.seq_len)
        with admitted(what, loaded, tokens=windows.numel(), nbytes=nbytes, progress=progress):
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
    loaded, corpus, scan = run_scan(req, progress=progress)
    if not params.get("iterative"):
        return m(loaded, None, scan=scan, progress=progress, **params)
    windows = calibration_windows(loaded, corpus, req.samples, req.seq_len)
    rounds = max(0, int(params.get("n", 1)) - 1)  # an iterative plan re-scans after every round but the last
    what = f"an iterative {method} plan ({rounds} re-scans of {req.samples} x {req.seq_len} tokens)"
    nbytes = scan_bytes(loaded, req.samples, req.seq_len)
    with admitted(what, loaded, tokens=rounds * windows.numel(), nbytes=nbytes, progress=progress):
        return m(loaded, windows, scan=scan, progress=progress, **params)


def default_plan(req: ScanRequest) -> DropPlan:
    """What the scan preselects: :data:`DEFAULT_DROP` with its default count (at most the model's layers)."""
    _, _, scan = run_scan(req)
    n = get(DEFAULT_DROP, family="layers").param("n").default
    return drop_plan(req, DEFAULT_DROP, {"n": min(n, scan.n_layers)})


def _indices(values, what: str) -> tuple[int, ...]:
    """Sorted layer indices from a checkbox group's values; each must be a whole number."""
    if values is None:
        return ()
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise InputError(f"the {what} layers must be a list of layer numbers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise InputError(f"{what} layer {v!r} is not a layer number")
        try:
            f = float(v)
        except ValueError:
            raise InputError(f"{what} layer {v!r} is not a layer number") from None
        if not f.is_integer():
            raise InputError(f"{what} layer {v!r} is not a whole number")
        out.append(int(f))
    return tuple(sorted(out))


def manual_plan(attn=(), mlp=(), block=()) -> DropPlan:
    """A plan of hand-picked layer indices (the tab's checkboxes); at least one must be picked."""
    plan = DropPlan(
        attn=_indices(attn, "attention"),
        mlp=_indices(mlp, "MLP"),
        block=_indices(block, "block"),
        strategy="manual",
    )
    if plan.count == 0:
        raise InputError("pick at least one layer to drop (tick attention, MLP or block layers)")
    return plan


def check_prompt(prompt) -> str:
    """The generation prompt, stripped (empty: :data:`DEFAULT_PROMPT`); text of at most
    :data:`MAX_PROMPT_CHARS` valid Unicode characters."""
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
    prompt = (prompt or "").strip() or DEFAULT_PROMPT
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"the prompt is over {MAX_PROMPT_CHARS:,} characters")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"the prompt is not valid Unicode (bad character at position {e.start})") from None
    return prompt


def evaluate_plan(
    req: ScanRequest,
    plan: DropPlan,
    settings: dict | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> DropEval:
    """Full vs dropped model on the held-out windows of ``req``'s text (:func:`eval_windows`), with
    :data:`APPLY` settings; the full model's numbers are memoised across calls."""
    s = APPLY.validate(settings)
    prompt = check_prompt(s["prompt"])
    loaded, corpus, _ = run_scan(req, progress=progress)
    heldout = eval_windows(loaded, corpus, req)
    n, t = heldout.shape
    gen_tokens = 2 * (s["max_new_tokens"] + len(prompt) // 3)  # two generations (prompt ~3 chars a token)
    what = f"a drop evaluation of {loaded.name} ({n} x {t} held-out tokens, {s['max_new_tokens']} new tokens)"
    nbytes = perplexity_bytes(loaded, n, t)
    with admitted(what, loaded, tokens=2 * n * t + gen_tokens, nbytes=nbytes, progress=progress):
        return evaluate_drop(
            loaded, plan, heldout, prompt=prompt, max_new_tokens=s["max_new_tokens"], full_cache=_FULL_EVAL,
            heldout_source=heldout_source(corpus), progress=progress,
        )  # fmt: skip
