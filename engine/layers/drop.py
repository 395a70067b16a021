"""Dropping redundant layers (LLM-Drop, He et al., 2024, arXiv:2406.15786) and evaluating what it costs.

Strategies (registered below):

- ``attn-drop`` / ``mlp-drop`` / ``block-drop``: one-shot, drop the ``n`` sublayers with the highest similarity
  of one scan; ``iterative=True`` drops one per round and re-scores the pruned model in between (dropped layers
  excluded), as the paper's iterative variant.
- ``joint-drop``: rank attention and MLP sublayers together and drop the ``n`` most similar of either kind.
- ``random-drop``: a seeded random choice of ``n`` sublayers of one kind, the baseline every method must beat.

A dropped sublayer is swapped for a module that adds nothing to the residual stream (a dropped block passes
its input through), inside :func:`dropped`, a context manager that always restores the original modules. A
dropped attention layer keeps a 1-element placeholder in the KV cache so that position bookkeeping of
transformers' caches stays right; its real K/V are not stored, which is the KV-cache saving reported.

Evaluation (:func:`evaluate_drop`) compares the dropped model with the full one: perplexity on held-out text,
greedy-generation tokens per second, parameters and KV-cache bytes saved, and a generation sample side by side.
For encoder models (BERT/MiniLM) perplexity is undefined; the cosine between full and dropped mean-pooled
sentence embeddings is reported instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from engine.layers.arch import decoder_layers, layout_of
from engine.layers.guard import Ticker, ticking, using
from engine.layers.scan import LLM_DROP_PAPER, LayerScan, scan_layers
from engine.models import LoadedModel
from engine.registry import InputError, Param, get, register
from engine.results import Provenance, Result, Stopwatch, fingerprint

__all__ = [
    "DropPlan", "DropEval", "dropped", "plan_drop", "evaluate_drop", "perplexity", "drop_label", "KINDS",
    "DEFAULT_PROMPT", "heldout_info",
]  # fmt: skip

KINDS = ("attn", "mlp", "block")


@dataclass(frozen=True)
class DropPlan:
    attn: tuple[int, ...] = ()
    mlp: tuple[int, ...] = ()
    block: tuple[int, ...] = ()
    strategy: str = "manual"

    @property
    def count(self) -> int:
        return len(self.attn) + len(self.mlp) + len(self.block)

    def describe(self) -> str:
        parts = [f"{k} {list(getattr(self, k))}" for k in KINDS if getattr(self, k)]
        return "; ".join(parts) if parts else "nothing"


class _SkipAttention(nn.Module):
    """Stands in for a dropped attention sublayer: contributes zero to the residual stream."""

    def __init__(self, original: nn.Module, layout_kind: str) -> None:
        super().__init__()
        self.layer_idx = getattr(original, "layer_idx", None)
        self.layout_kind = layout_kind

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        if self.layout_kind == "bert":  # post-norm: the attention block's output *is* the stream
            return hidden_states, None
        cache = kwargs.get("cache", kwargs.get("past_key_values", kwargs.get("layer_past")))
        if cache is not None and self.layer_idx is not None and hasattr(cache, "update"):
            # placeholder K/V of one head x one channel keeps get_seq_length() right for this layer
            b, t = hidden_states.shape[:2]
            stub = hidden_states.new_zeros(b, 1, t, 1)
            cache.update(stub, stub, self.layer_idx)
        return torch.zeros_like(hidden_states), None


class _ZeroMLP(nn.Module):
    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return torch.zeros_like(hidden_states)


class _SkipBlock(nn.Module):
    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        attn = getattr(original, "self_attn", None) or getattr(original, "attn", None)
        self.inner = _SkipAttention(attn, "llama") if attn is not None else None
        self.returns_tuple = False

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        if self.inner is not None:
            self.inner(hidden_states, **kwargs)  # keep the cache's position bookkeeping
        return hidden_states


def _module_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@contextmanager
def dropped(model: nn.Module, plan: DropPlan, *, progress: Callable[[float, str], None] | None = None
            ) -> Iterator[dict]:  # fmt: skip
    """Swap the planned sublayers out for the duration of the block; always restores them.

    The model's lock (:func:`engine.layers.guard.using`) is held from before the first swap until after the
    last restore, so a concurrent request never sees a half-dropped model; ``progress`` is called while
    waiting for it (a Stop ends the wait). Yields a dict with ``params_removed``.
    """
    with using(model, progress), _swapped(model, plan) as info:
        yield info


@contextmanager
def _swapped(model: nn.Module, plan: DropPlan) -> Iterator[dict]:
    layout = layout_of(model)
    layers = decoder_layers(model)
    n = len(layers)
    for kind in KINDS:
        for i in getattr(plan, kind):
            if not 0 <= i < n:
                raise InputError(f"cannot drop {kind} layer {i}: the model has layers 0..{n - 1}")
    overlap = set(plan.block) & (set(plan.attn) | set(plan.mlp))
    if overlap:
        raise InputError(f"layers {sorted(overlap)} are dropped as blocks and as sublayers: choose one")
    saved: list[tuple[object, str, object]] = []  # (owner, attribute, original)
    removed = 0
    try:
        for i in plan.attn:
            orig = getattr(layers[i], layout.attn)
            removed += _module_params(orig)
            saved.append((layers[i], layout.attn, orig))
            setattr(layers[i], layout.attn, _SkipAttention(orig, layout.kind))
        for i in plan.mlp:
            if layout.kind == "bert":
                # BertLayer calls self.feed_forward_chunk(attention_output): make it the identity
                removed += _module_params(layers[i].intermediate) + _module_params(layers[i].output)
                saved.append((layers[i], "feed_forward_chunk", None))
                layers[i].feed_forward_chunk = lambda x: x
            else:
                orig = getattr(layers[i], layout.mlp)
                removed += _module_params(orig)
                saved.append((layers[i], layout.mlp, orig))
                setattr(layers[i], layout.mlp, _ZeroMLP())
        for i in plan.block:
            orig = layers[i]
            removed += _module_params(orig)
            saved.append((layers, str(i), orig))
            layers[i] = _SkipBlock(orig) if layout.kind != "bert" else _BertSkipBlock()
        yield {"params_removed": removed}
    finally:
        for owner, attr, orig in reversed(saved):
            if isinstance(owner, nn.ModuleList):
                owner[int(attr)] = orig
            elif orig is None:
                del owner.__dict__[attr]  # remove the instance override, exposing the method again
            else:
                setattr(owner, attr, orig)


class _BertSkipBlock(nn.Module):
    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        return hidden_states


# ----------------------------------------------------------------------------------------------- planning


def _one_shot(scan: LayerScan, kind: str, n: int, exclude: Sequence[int] = ()) -> list[int]:
    ranking = [i for i in scan.ranking(kind) if i not in set(exclude)]
    return sorted(ranking[:n])


def plan_drop(
    loaded: LoadedModel,
    windows: torch.Tensor,
    *,
    strategy: str,
    n: int,
    iterative: bool = False,
    random_kind: str = "attn",
    seed: int = 42,
    scan: LayerScan | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> DropPlan:
    """Choose the sublayers to drop. ``strategy`` is ``attn``, ``mlp``, ``block``, ``joint`` or ``random``."""
    n_layers = len(decoder_layers(loaded.model))
    limit = 2 * n_layers if strategy == "joint" else n_layers
    if not 0 <= n <= limit:
        raise InputError(f"can drop between 0 and {limit} {strategy} sublayers of this model, not {n}")
    if strategy == "random":
        if random_kind not in KINDS:
            raise InputError(f"random drop kind must be one of {KINDS}, got {random_kind!r}")
        rng = np.random.default_rng(seed)
        picked = sorted(int(i) for i in rng.choice(n_layers, size=n, replace=False))
        return DropPlan(**{random_kind: tuple(picked)}, strategy=f"random-{random_kind}")
    if strategy not in (*KINDS, "joint"):
        raise InputError(f"unknown drop strategy {strategy!r}; use attn, mlp, block, joint or random")
    if n == 0:
        return DropPlan(strategy=strategy)
    if scan is None or iterative:
        scan = scan if scan is not None else scan_layers(loaded, windows)
    if not iterative:
        if strategy == "joint":
            return _joint(scan, n, DropPlan(strategy="joint"))
        return DropPlan(**{strategy: tuple(_one_shot(scan, strategy, n))}, strategy=strategy)
    # iterative: drop one per round, re-score the pruned model in between
    plan = DropPlan(strategy=f"{strategy}-iterative")
    for r in range(n):
        if strategy == "joint":
            plan = _joint(scan, 1, plan)
        else:
            already = getattr(plan, strategy)
            nxt = _one_shot(scan, strategy, 1, exclude=already)
            plan = DropPlan(**{strategy: tuple(sorted(already + tuple(nxt)))}, strategy=plan.strategy)
        if progress is not None:
            progress(r / n, f"iterative drop: round {r + 1}/{n}")
        if r < n - 1:
            with dropped(loaded.model, plan, progress=progress):
                scan = scan_layers(loaded, windows, progress=_within(progress, r / n, (r + 1) / n))
    if progress is not None:
        progress(1.0, f"iterative drop: {n} rounds done")
    return plan


def _joint(scan: LayerScan, n: int, plan: DropPlan) -> DropPlan:
    cands = [(float(scan.attn_similarity[i]), "attn", i) for i in range(scan.n_layers) if i not in plan.attn]
    cands += [(float(scan.mlp_similarity[i]), "mlp", i) for i in range(scan.n_layers) if i not in plan.mlp]
    cands.sort(key=lambda c: -c[0])
    attn, mlp = set(plan.attn), set(plan.mlp)
    for _, kind, i in cands[:n]:
        (attn if kind == "attn" else mlp).add(i)
    return DropPlan(attn=tuple(sorted(attn)), mlp=tuple(sorted(mlp)), strategy=plan.strategy)


# --------------------------------------------------------------------------------------------- evaluation


def _within(progress: Callable[[float, str], None] | None, lo: float, hi: float):
    """``progress`` with its fraction mapped from [0, 1] onto [lo, hi] (a stage of a longer job)."""
    if progress is None:
        return None
    return lambda frac, desc: progress(lo + (hi - lo) * frac, desc)


PERPLEXITY_BATCH_TOKENS = 4096  # tokens per forward pass of :func:`perplexity`


@torch.inference_mode()
def perplexity(
    loaded: LoadedModel,
    windows: torch.Tensor,  # [N, T] token ids
    *,
    batch_tokens: int = PERPLEXITY_BATCH_TOKENS,
    progress: Callable[[float, str], None] | None = None,
    desc: str = "perplexity",
) -> float:
    """exp(mean next-token cross-entropy) over all windows (causal LMs).

    Holds the model's lock; ``progress(frac, desc)`` moves with every decoder layer of every batch.
    """
    model = loaded.model
    n, t = windows.shape
    per_batch = max(1, batch_tokens // t)
    total, count = 0.0, 0
    ticker = Ticker(progress, 0.0, 1.0, -(-n // per_batch) * len(decoder_layers(model)), desc)
    with using(model, progress), ticking(model, ticker):
        for s in range(0, n, per_batch):
            batch = windows[s : s + per_batch].to(loaded.device)
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
            )
            total += loss.item()
            count += batch[:, 1:].numel()
    return float(np.exp(total / count))


@torch.inference_mode()
def _embeddings(loaded: LoadedModel, windows: torch.Tensor, progress=None, desc: str = "") -> torch.Tensor:
    ticker = Ticker(progress, 0.0, 1.0, len(decoder_layers(loaded.model)), desc)
    with using(loaded.model, progress), ticking(loaded.model, ticker):
        out = loaded.model(input_ids=windows.to(loaded.device)).last_hidden_state
    return out.mean(dim=1).float()


@torch.inference_mode()
def _generate(
    loaded: LoadedModel, prompt: str, max_new_tokens: int, progress=None, desc: str = "generating"
) -> tuple[str, float, int]:
    tok = loaded.tokenizer
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = prompt
    ids = tok(text, return_tensors="pt").to(loaded.device)
    ticker = Ticker(progress, 0.0, 1.0, max_new_tokens * len(decoder_layers(loaded.model)), desc)
    with using(loaded.model, progress), ticking(loaded.model, ticker):
        t0 = time.perf_counter()
        out = loaded.model.generate(
            **ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=tok.pad_token_id,
        )  # fmt: skip
        dt = time.perf_counter() - t0
    new = out[0, ids["input_ids"].shape[1] :]
    return tok.decode(new, skip_special_tokens=True), dt, int(new.numel())


@dataclass
class DropEval(Result):
    model: str = ""
    plan: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)  # kind -> layer indices
    metric: str = "perplexity"  # or "embedding_cosine" for encoders
    full: dict = field(default_factory=dict)  # perplexity, tokens_per_s, params, kv_bytes_per_token, sample
    pruned: dict = field(default_factory=dict)
    params_removed: int = 0
    kv_saving: float = 0.0  # fraction of KV-cache bytes saved
    prompt: str = ""
    heldout: dict = field(default_factory=dict)  # the evaluation windows: windows, tokens_per_window, source

    def tables(self) -> dict[str, list[dict]]:
        keys = [k for k in self.full if k != "sample"]
        return {"metrics": [{"metric": k, "full": self.full[k], "dropped": self.pruned.get(k)} for k in keys]}


def _kv_bytes_per_token(loaded: LoadedModel, attn_layers: int) -> int:
    elem = next(loaded.model.parameters()).element_size()
    return 2 * attn_layers * loaded.n_kv_heads * loaded.head_dim * elem


DEFAULT_PROMPT = "Explain in two sentences what a hash table is."


def evaluate_drop(
    loaded: LoadedModel,
    plan: DropPlan,
    heldout: torch.Tensor,  # [N, T] held-out token windows
    *,
    prompt: str = DEFAULT_PROMPT,
    max_new_tokens: int = 32,
    full_cache: dict | None = None,
    heldout_source: str = "",
    progress: Callable[[float, str], None] | None = None,
) -> DropEval:
    """Full model vs the model with ``plan`` dropped, on the same held-out windows and prompt.

    ``full_cache`` (a dict the caller keeps) memoises the full model's numbers across calls;
    ``heldout_source`` says where the windows come from (shown in captions). ``progress(frac, desc)`` moves
    layer by layer through every stage; when it raises (Stop, time limit) the model is restored and its lock
    released before the exception leaves.
    """
    n_layers = len(decoder_layers(loaded.model))
    sw = Stopwatch()
    causal = loaded.kind == "causal"
    total_params = sum(p.numel() for p in loaded.model.parameters())
    key = fingerprint(loaded.name, heldout.numpy(), prompt, max_new_tokens)
    have_full = full_cache is not None and key in full_cache
    # progress ranges of the stages: (quality, generation) for the full model (unless memoised), then dropped
    stages = [0.0, 0.3, 0.5, 0.8, 1.0] if not have_full else [0.0, 0.0, 0.0, 0.6, 1.0]
    if not causal:
        stages = [0.0, 0.5, 0.5, 1.0, 1.0] if not have_full else [0.0, 0.0, 0.0, 1.0, 1.0]

    def measure(tag: str, lo: float, mid: float, hi: float) -> dict:
        out: dict = {}
        what = (
            f"{tag} model: {'perplexity' if causal else 'embeddings'} on {heldout.shape[0]} held-out windows"
        )
        with sw(f"quality_{tag}"):
            if causal:
                out["perplexity"] = perplexity(
                    loaded, heldout, progress=_within(progress, lo, mid), desc=what
                )
            else:
                out["_emb"] = _embeddings(loaded, heldout, _within(progress, lo, mid), what)
        if causal:
            with sw(f"generate_{tag}"):
                text, dt, k = _generate(
                    loaded, prompt, max_new_tokens, _within(progress, mid, hi),
                    f"{tag} model: generating {max_new_tokens} tokens",
                )  # fmt: skip
            out["tokens_per_s"] = k / dt if dt > 0 else float("nan")
            out["sample"] = text
        return out

    if have_full:
        full = dict(full_cache[key])
    else:
        full = measure("full", *stages[:3])
        if full_cache is not None:
            full_cache[key] = dict(full)
    with dropped(loaded.model, plan, progress=progress) as info:
        pruned = measure("dropped", *stages[2:])
    attn_gone = len(set(plan.attn) | set(plan.block))
    full["params"] = total_params
    pruned["params"] = total_params - info["params_removed"]
    full["kv_bytes_per_token"] = _kv_bytes_per_token(loaded, n_layers)
    pruned["kv_bytes_per_token"] = _kv_bytes_per_token(loaded, n_layers - attn_gone)
    metric = "perplexity"
    if not causal:
        metric = "embedding_cosine"
        cos = torch.nn.functional.cosine_similarity(full.pop("_emb"), pruned.pop("_emb"), dim=-1)
        full["embedding_cosine"] = 1.0
        pruned["embedding_cosine"] = float(cos.mean())
    prov = Provenance(
        method=f"drop:{plan.strategy}",
        params={"plan": plan.describe(), "max_new_tokens": max_new_tokens},
        input_fingerprint=key,
        backend=loaded.device,
        timings=sw.timings,
    )
    return DropEval(
        provenance=prov,
        model=loaded.name,
        plan={"strategy": plan.strategy, "description": plan.describe()},
        dropped={k: list(getattr(plan, k)) for k in KINDS},
        metric=metric,
        full=full,
        pruned=pruned,
        params_removed=info["params_removed"],
        kv_saving=attn_gone / n_layers,
        prompt=prompt,
        heldout=heldout_info(heldout, heldout_source),
    )


def heldout_info(heldout: torch.Tensor, source: str = "") -> dict:
    """What captions say about the evaluation windows ``[N, T]``: how many, how long, from where."""
    n, t = heldout.shape
    return {"windows": int(n), "tokens_per_window": int(t), "tokens": int(n * t), "source": source}


# ------------------------------------------------------------------------------------------- registration
#
# The registered functions are the dispatch: the tab's preselect, the CLI's --drop and the drop curve all call
# ``get(name, family="layers")(loaded, windows, scan=..., progress=..., **method.validate(values))``. Each
# returns a :class:`DropPlan`. Facts on the Method: ``acts_at`` (the sublayer kind it drops), ``control``
# (the random baseline) and ``label`` (a display template filled with the parameters: "attn", "random-mlp").

_DROP_PARAMS = [
    Param("n", 4, low=0, high=64, help="sublayers to drop (paper: 4 or 8)", label="Sublayers to drop"),
    Param("iterative", False, help="drop one per round and re-score in between",
          label="Iterative (re-score after each drop)"),
]  # fmt: skip


def _make(kind: str, summary: str):
    @register(
        f"{kind}-drop", family="layers", paper=LLM_DROP_PAPER, summary=summary, params=_DROP_PARAMS,
        role="drop", acts_at=kind, needs=("scan",), control="random-drop", facts={"label": kind},
    )  # fmt: skip
    def method(
        loaded: LoadedModel, windows: torch.Tensor | None, *, n: int = 4, iterative: bool = False,
        scan: LayerScan | None = None, progress: Callable[[float, str], None] | None = None,
    ) -> DropPlan:  # fmt: skip
        return plan_drop(
            loaded, windows, strategy=kind, n=n, iterative=iterative, scan=scan, progress=progress
        )

    method.__name__ = f"{kind}_drop"
    return method


attn_drop = _make("attn", "Drop the attention sublayers whose input and output are most similar.")
mlp_drop = _make("mlp", "Drop the MLP sublayers whose input and output are most similar.")
block_drop = _make("block", "Drop whole transformer blocks whose input and output are most similar.")
joint_drop = _make("joint", "Rank attention and MLP sublayers together and drop the most similar of either.")


@register(
    "random-drop",
    family="layers",
    paper=None,
    summary="Seeded random choice of sublayers of one kind: the baseline every scoring method must beat.",
    params=[
        Param("n", 4, low=0, high=64, help="sublayers to drop", label="Sublayers to drop"),
        Param("kind", "attn", choices=KINDS, help="which sublayers are dropped at random"),
        Param("seed", 42, low=0, help="seed of the random choice", label="Seed (random-drop)"),
    ],
    role="drop",
    facts={"label": "random-{kind}"},
)
def random_drop(
    loaded: LoadedModel, windows: torch.Tensor | None, *, n: int = 4, kind: str = "attn", seed: int = 42,
    scan: LayerScan | None = None, progress: Callable[[float, str], None] | None = None,
) -> DropPlan:  # fmt: skip
    return plan_drop(loaded, windows, strategy="random", n=n, random_kind=kind, seed=seed)


def drop_label(method: str, params: dict) -> str:
    """Display label of a drop method with its parameters: ``attn-drop`` -> "attn", ``random-drop`` with
    ``kind="mlp"`` -> "random-mlp" (from the method's ``label`` fact)."""
    m = get(method, family="layers")
    return m.fact("label", m.name).format(**{**m.defaults(), **params})
