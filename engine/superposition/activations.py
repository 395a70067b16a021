"""Capture a transformer layer's activations with forward hooks (TransformerLens-style names).

Sites, named as TransformerLens names its hooks:

- ``resid``    ``blocks.L.hook_resid_post``: the residual stream after block ``L`` (the block's output).
- ``mlp_out``  ``blocks.L.hook_mlp_out``: the MLP's output, before it is added to the residual stream.
- ``attn_out`` ``blocks.L.hook_attn_out``: the attention output projection, before the residual add.

Hooks are installed by :func:`record`, a context manager that always removes them, and the forward pass stops
(by an internal exception) right after the deepest requested layer, so measuring layer 3 of 30 costs about
three layers of compute.

Rows are tokens: a window of ``seq_len`` tokens gives ``seq_len`` activation vectors, except the BOS token at
position 0, which is dropped: its residual-stream norm is tens of times the others' ("attention sink"), and a
single such row would dominate the SAE's MSE. For the same reason any other row whose norm exceeds
``OUTLIER_FACTOR`` (10) times the layer's median norm is dropped (SmolLM2 has a few such "massive activation"
tokens; about 1 in 10,000 rows), and the count is reported. Each row keeps its (window, position) so the feature map can show
the top-activating tokens in context.

Extension point for vision models: :func:`register_block_resolver` adds a function that finds the list of
blocks (and the MLP/attention submodules) in another architecture. The project's ViT can register one and
collect patch-token activations with :func:`record`; per the paper, codes of spatial tokens are then summed per
image before ``p`` is taken (``metrics.feature_distribution`` does this for [B, tokens, D] codes).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from engine.registry import InputError

__all__ = [
    "SITES",
    "SITE_LABELS",
    "ActivationSet",
    "record",
    "find_blocks",
    "site_module",
    "register_block_resolver",
    "collect_activations",
    "hook_name",
]

SITES = {
    "resid": "residual stream after the block (hook_resid_post)",
    "mlp_out": "MLP output (hook_mlp_out)",
    "attn_out": "attention output (hook_attn_out)",
}
SITE_LABELS = {
    "resid": "residual stream",
    "mlp_out": "MLP output",
    "attn_out": "attention output",
}  # UI names
MAX_ACTIVATIONS = 20_000  # rows per layer kept in memory (the paper trains on up to 10k)
OUTLIER_FACTOR = 10.0  # rows with norm above this many times the median are dropped (massive activations)


def hook_name(layer: int, site: str) -> str:
    return f"blocks.{layer}.hook_{'resid_post' if site == 'resid' else site}"


# -- finding blocks -----------------------------------------------------------------------------------------

_BLOCK_PATHS = (
    "model.layers",
    "layers",
    "encoder.layer",
    "bert.encoder.layer",
    "transformer.h",
    "gpt_neox.layers",
)
_MLP_NAMES = {
    "mlp_out": ("mlp", "output.dense", "feed_forward"),
    "attn_out": ("self_attn", "attn", "attention.output.dense", "attention"),
}
_RESOLVERS: list[Callable[[nn.Module], Sequence[nn.Module] | None]] = []


def register_block_resolver(fn: Callable[[nn.Module], Sequence[nn.Module] | None]) -> Callable:
    """Register ``fn(model) -> list of blocks or None`` for an architecture the default paths miss (a ViT)."""
    _RESOLVERS.insert(0, fn)
    return fn


def _get_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of ``model`` in order."""
    for fn in _RESOLVERS:
        blocks = fn(model)
        if blocks is not None:
            return list(blocks)
    for path in _BLOCK_PATHS:
        blocks = _get_path(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
            return list(blocks)
    raise InputError(
        f"cannot find the transformer blocks of {type(model).__name__}; supported: {_BLOCK_PATHS}"
    )


def site_module(block: nn.Module, site: str) -> nn.Module:
    if site not in SITES:
        raise InputError(f"unknown site {site!r}; choose one of {sorted(SITES)}")
    if site == "resid":
        return block
    for path in _MLP_NAMES[site]:
        mod = _get_path(block, path)
        if isinstance(mod, nn.Module):
            return mod
    raise InputError(f"block {type(block).__name__} has no {site} submodule (looked for {_MLP_NAMES[site]})")


# -- hooks --------------------------------------------------------------------------------------------------


class _StopForward(Exception):
    """Raised by the last hook to skip the layers nobody asked for."""


@contextmanager
def record(
    modules: dict[str, nn.Module], *, stop_after: str | None = None
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record each module's output (first tensor of a tuple) into ``store[name]`` while the block runs.

    With ``stop_after`` the forward pass is cut short right after that module; run the model inside
    ``with suppress_stop():``-like handling — :func:`_forward` below swallows the internal exception.

    The model is shared by every request (engine.models caches it), and requests run in threads at once: a
    hook acts only on forward passes of the thread that installed it, so two captures on the same model (or a
    capture and another tab's forward pass) neither mix their rows nor cut each other's pass short.
    """
    store: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    handles = []
    owner = threading.get_ident()

    def make(name: str):
        def hook(_mod, _inp, out):
            if threading.get_ident() != owner:
                return  # another request's forward pass through the same cached model: not ours to record or cut
            t = out[0] if isinstance(out, tuple | list) else out
            store[name].append(t.detach().float().cpu())
            if name == stop_after:
                raise _StopForward

        return hook

    try:
        for name, mod in modules.items():
            handles.append(mod.register_forward_hook(make(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _ticking(blocks: Sequence[nn.Module], tick: Callable[[int], None] | None) -> Iterator[None]:
    """Call ``tick(block index)`` after each block of this thread's forward passes, so a long pass on a slow
    CPU still reaches the progress callback (which may stop the job) every block; hooks always removed."""
    if tick is None:
        yield
        return
    owner = threading.get_ident()
    handles = []

    def make(i: int):
        def hook(_mod, _inp, _out):
            if threading.get_ident() == owner:
                tick(i)

        return hook

    try:
        for i, b in enumerate(blocks):
            handles.append(b.register_forward_hook(make(i)))
        yield
    finally:
        for h in handles:
            h.remove()


def _forward(model: nn.Module, ids: torch.Tensor) -> None:
    """One forward pass holding the cached model's lock (engine.models.using): a layer drop in another request
    swaps the model's sublayers out and back under that lock, so a capture never sees a half-dropped model."""
    from engine.models import using

    with using(model):
        try:
            with torch.no_grad():
                model(input_ids=ids, attention_mask=torch.ones_like(ids))
        except _StopForward:
            pass


# -- collecting over a corpus -------------------------------------------------------------------------------


@dataclass
class ActivationSet:
    acts: dict[int, torch.Tensor]  # layer -> [N, d] float32 (CPU)
    token_ids: torch.Tensor  # [n_windows, seq_len] the windows fed to the model
    rows: dict[int, torch.Tensor]  # layer -> [N, 2] (window, position) of each activation row
    site: str
    model_name: str
    width: int
    dropped: dict[int, int]  # layer -> rows dropped as outliers (norm > OUTLIER_FACTOR x median)

    @property
    def n(self) -> int:
        return int(min(r.shape[0] for r in self.rows.values()))


def collect_activations(
    loaded,
    layers: Sequence[int],
    *,
    site: str = "resid",
    text: str | None = None,
    max_activations: int = 10_000,
    seq_len: int = 128,
    batch_size: int = 8,
    progress: Callable[[float, str], None] | None = None,
) -> ActivationSet:
    """Activations of ``layers`` at ``site`` over windows of ``text`` (the calibration corpus by default).

    Parameters
    ----------
    loaded : engine.models.LoadedModel
    layers : block indices, 0-based, each in [0, loaded.n_layers)
    max_activations : rows kept per layer (tokens, BOS excluded); capped at MAX_ACTIVATIONS

    Raises
    ------
    InputError
        A layer out of range, an unknown site, too little text, or non-finite activations.
    """
    from engine.corpus import default_corpus, token_windows

    layers = sorted({int(x) for x in layers})
    if not layers:
        raise InputError("choose at least one layer")
    bad = [x for x in layers if not 0 <= x < loaded.n_layers]
    if bad:
        raise InputError(
            f"layer {bad[0]} is out of range: {loaded.name} has layers 0 to {loaded.n_layers - 1}"
        )
    if site not in SITES:
        raise InputError(f"unknown site {site!r}; choose one of {sorted(SITES)}")
    if not 1 <= max_activations <= MAX_ACTIVATIONS:
        raise InputError(f"max activations must be in [1, {MAX_ACTIVATIONS}], got {max_activations}")
    if text is None:
        text = default_corpus().calibration
    tok = loaded.tokenizer
    has_bos = tok.bos_token_id is not None or loaded.kind == "encoder"
    per_window = seq_len - (1 if has_bos else 0)
    n_windows = max(1, math.ceil(max_activations / per_window))
    windows = token_windows(tok, text, n_windows, seq_len)  # [n_windows, seq_len]
    if loaded.kind == "encoder" and tok.cls_token_id is not None and tok.bos_token_id is None:
        windows[:, 0] = tok.cls_token_id  # an encoder's sequences start with [CLS]; drop it like BOS
    blocks = find_blocks(loaded.model)
    mods = {f"{layer}": site_module(blocks[layer], site) for layer in layers}
    dev = next(loaded.model.parameters()).device
    start = 1 if has_bos else 0
    deepest = layers[-1] + 1
    state = {"batch": 0, "last": time.perf_counter()}

    def tick(block: int) -> None:  # within a batch, at most twice a second
        if time.perf_counter() - state["last"] > 0.5:
            state["last"] = time.perf_counter()
            frac = (state["batch"] + min(1.0, (block + 1) / deepest) * batch_size) / n_windows
            progress(min(1.0, frac), f"capturing activations: windows {state['batch'] + 1}-"
                     f"{min(state['batch'] + batch_size, n_windows)} of {n_windows}, block {block + 1}")  # fmt: skip

    with record(mods, stop_after=str(layers[-1])) as store, _ticking(blocks[:deepest], progress and tick):
        for i in range(0, n_windows, batch_size):
            state["batch"] = i
            _forward(loaded.model, windows[i : i + batch_size].to(dev))
            if progress is not None:
                progress(
                    min(1.0, (i + batch_size) / n_windows),
                    f"capturing activations {min(i + batch_size, n_windows)}/{n_windows}",
                )
    win = torch.arange(n_windows).repeat_interleave(per_window)
    pos = torch.arange(start, seq_len).repeat(n_windows)
    all_rows = torch.stack([win, pos], dim=1)[:max_activations]  # [N, 2]
    acts, rows, dropped = {}, {}, {}
    for layer in layers:
        a = torch.cat(store[str(layer)], dim=0)[:, start:]  # [n_windows, per_window, d]
        a = a.reshape(-1, a.shape[-1])[:max_activations]
        if not bool(torch.isfinite(a).all()):
            raise InputError(f"layer {layer} produced NaN or infinite activations; the model may be broken")
        norms = a.norm(dim=1)
        keep = norms <= OUTLIER_FACTOR * norms.median().clamp_min(1e-12)
        acts[layer] = a[keep].contiguous()
        rows[layer] = all_rows[keep]
        dropped[layer] = int((~keep).sum())
    return ActivationSet(
        acts=acts,
        token_ids=windows,
        rows=rows,
        dropped=dropped,
        site=site,
        model_name=loaded.name,
        width=int(next(iter(acts.values())).shape[1]),
    )
