"""Run the flow methods of :mod:`engine.flow.graph` on a model and one image.

- Vision encoders (``scene-vit``, hub CLIP / ViT / DINOv2): flow from the patches (and CLS) to the CLS token of
  the last layer.
- Vision-language models (``scene-vlm``, hub LLaVA): flow through the decoder from ``<bos>``, the image tokens and
  the question tokens to the last token, the one whose next-token prediction is the answer.

The model's forward pass (:func:`attend`) is cached by (image, model, question), so every method, and every
comparison (:mod:`engine.flow.compare`), reads one forward pass; the graphs are cached by (image, model, method,
parameters, question, target). Both caches live in memory (:class:`engine.cache.ResultCache`).

Serving (a shared server): on a cache miss, :func:`estimate` sizes the job from the model's shape before any
forward pass (layers x heads x tokens^2 x 4 bytes of attentions, and the float64 copies the graph makes), the
memory estimate is checked (:func:`engine.admission.check_memory`), and a job over :data:`HEAVY_S` seconds (hub
models, exact max-flow, long sequences) runs in a heavy slot (:func:`engine.admission.heavy_slot`), one slot per
request however many graphs a comparison computes. ``progress(frac, desc)`` is called per layer of the forward
pass and about every half second of max-flow, so a Stop (or the time limit) ends the job within a second or so.
Nothing here mutates a shared model: the forward runs under ``no_grad``, and the per-layer progress hooks only
act in the thread that installed them and are removed in ``finally``.
"""

from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from engine.admission import check_memory, fmt_bytes, heavy_slot
from engine.cache import ResultCache
from engine.flow.graph import FLOW_PARAMS, FlowGraph
from engine.registry import InputError, Param, get
from engine.results import Stopwatch, fingerprint

__all__ = [
    "DEFAULT_QUESTION",
    "HEAVY_S",
    "TARGET",
    "Attention",
    "FlowCost",
    "admitted",
    "estimate",
    "attend",
    "clear_caches",
    "flow_for_image",
    "method_params",
    "token_labels",
]

DEFAULT_QUESTION = "how many objects ?"
TARGET = Param("target", "output", choices=("output", "patches"), label="Trace the flow into",
               help="output: CLS (encoders) or the last token (VLMs); patches: the mean of the last layer's "
               "image tokens")  # fmt: skip
_FORWARD = ResultCache("flow-forward", maxsize=4)  # attentions of one forward pass: the heavy part
_GRAPHS = ResultCache("flow-graph", maxsize=16)
HEAVY_S = 3.0  # a job estimated to run longer takes a heavy slot; shorter ones (the scene models) run at once

# Seconds per unit of work on a laptop-class CPU core, measured on the scene ViT (8 layers, 197 tokens): the
# rollout and entropy take ~0.15 s for L * T^3 = 61 M, exact max-flow ~12 s for T * L * T * T = 61 M.
_S_PER_ROLLOUT = 2.5e-9
_S_PER_MAXFLOW = 2.2e-7
_S_PER_FLOP = 5e-11  # a transformer forward at ~20 GFLOP/s; it costs ~24 x width^2 FLOPs per token and layer
_BUILTIN_FORWARD_S = 1.5  # the scene models' forward pass, measured (load excluded)


def clear_caches() -> None:
    """Forget every cached forward pass and graph (tests that want a cold run)."""
    _FORWARD.clear()
    _GRAPHS.clear()


def method_params(method: str, values: dict | None = None) -> dict:
    """The parameters ``method`` takes, picked from values of the family's table :data:`FLOW_PARAMS` (what the
    tab's controls and the CLI's flags send: every parameter of the family), and checked by the method."""
    m = get(method, family="flow")
    FLOW_PARAMS.validate(values, only=list(values or {}))  # every value sent is checked, used or not
    own = {p.name for p in m.params}
    return m.validate({k: v for k, v in (values or {}).items() if k in own})


@dataclass(frozen=True)
class FlowCost:
    """What one flow job will take, known before its forward pass: its shape, memory and seconds."""

    n_layers: int
    n_heads: int
    n_tokens: int
    attention_bytes: int  # L x H x T^2 x 4 (float32 attentions of every layer)
    peak_bytes: int  # attentions + the graph's float64 head-averaged copies and rollout
    forward_s: float  # 0 when the forward pass is cached
    graph_s: float  # every requested method's graph together
    what: str

    @property
    def seconds(self) -> float:
        return self.forward_s + self.graph_s

    @property
    def heavy(self) -> bool:
        return self.seconds > HEAVY_S

    def describe(self) -> str:
        return (f"{self.what} ({self.n_layers} layers x {self.n_heads} heads x {self.n_tokens} tokens: "
                f"{fmt_bytes(self.attention_bytes)} of attentions, about {self.seconds:.0f} s)")  # fmt: skip


def _graph_seconds(method: str, values: dict, L: int, T: int) -> float:
    s = _S_PER_ROLLOUT * L * T**3
    if get(method, family="flow").fact("cost") == "max-flow":
        k = values.get("top_k") or T
        s += _S_PER_MAXFLOW * T * L * T * min(int(k) + 1, T)
    return s


def _width(module, default: int) -> int:
    """The hidden size of a transformers model (a VLM's text config for its LM), or ``default``."""
    cfg = getattr(module, "config", None)
    if cfg is not None and hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()
    return int(getattr(cfg, "hidden_size", 0) or default)


def _shape(model_name: str, question: str | None, allow_network) -> tuple[int, int, int, float]:
    """(layers, heads, tokens, forward seconds) of ``model_name`` on one image, from the loaded model's config."""
    from engine.vision.loading import BUILTIN_VISION, VisionLanguageModel, load_vision

    model = load_vision(model_name, allow_network=allow_network)  # cached, loaded once under a lock
    if isinstance(model, VisionLanguageModel):
        enc = model.encoder
        pre, post = model.prompt_ids((question or DEFAULT_QUESTION).strip())  # checks the question's words
        n_img = enc.n_patches + (0 if model.drop_cls else enc.n_prefix)
        L, H, T = int(model.n_layers), int(model.n_heads), len(pre) + n_img + len(post)
        lm_flops = 24 * L * T * _width(model.lm, 4096) ** 2
    else:
        enc = model
        L, H, T = int(enc.n_layers), int(enc.n_heads), enc.n_prefix + enc.n_patches
        lm_flops = 0
    vis_flops = 24 * enc.n_layers * (enc.n_prefix + enc.n_patches) * _width(enc.model, 1024) ** 2
    forward_s = _S_PER_FLOP * (lm_flops + vis_flops)
    if model_name in BUILTIN_VISION:
        forward_s = min(forward_s, _BUILTIN_FORWARD_S)
    return L, H, T, forward_s


def estimate(image, *, model: str = "scene-vit", methods=("attention-rollout",), params: dict | None = None,
             question: str | None = None, allow_network: bool | None = None) -> FlowCost:  # fmt: skip
    """The cost of computing ``methods``' graphs of ``model`` on ``image`` (the forward pass counted only when it
    is not cached). ``params``: the family's values (:data:`FLOW_PARAMS`). Loads the model (cached) to read its
    shape; raises :class:`InputError` for a bad model, question or method."""
    image = _check_image(image)
    key = (image, model, question or "")
    if key in _FORWARD:
        att = attend(image, model=model, question=question, allow_network=allow_network)
        L, H, T, _ = att.attn.shape
        forward_s = 0.0
    else:
        L, H, T, forward_s = _shape(model, question, allow_network)
    graph_s = sum(_graph_seconds(m, params or {}, L, T) for m in methods)
    att_bytes = L * H * T * T * 4
    # the graph holds a float64 copy of the attentions, its head mean, the rollout and the edge flows
    peak = att_bytes * 3 + 3 * (L + 1) * T * T * 8
    what = f"{', '.join(methods)} on {model}"
    return FlowCost(L, H, T, att_bytes, peak, forward_s, graph_s, what)


_ADMITTED = threading.local()  # set while this thread's job holds its admission (one slot per request)


@contextmanager
def admitted(cost: FlowCost, progress=None):
    """Check ``cost``'s memory and, when it is heavy, hold a heavy slot for the body; a no-op inside another
    admitted job of the same thread (a comparison's graphs share its slot)."""
    if getattr(_ADMITTED, "held", False):
        yield
        return
    check_memory(cost.peak_bytes, cost.describe())
    slot = (
        heavy_slot(f"flow: {cost.what}", expect_s=cost.seconds, progress=progress)
        if cost.heavy
        else nullcontext()
    )
    with slot:
        _ADMITTED.held = True
        try:
            yield
        finally:
            _ADMITTED.held = False


@contextmanager
def _layer_progress(modules, progress, lo: float, hi: float, desc: str):
    """Call ``progress`` after each module's forward, in this thread only (the model is shared between requests:
    another thread's forward must not report here, or be stopped by this request's Stop)."""
    if progress is None or not modules:
        yield
        return
    me = threading.get_ident()
    done = [0]
    n = len(modules)

    def hook(*_):
        if threading.get_ident() == me:
            done[0] += 1
            progress(lo + (hi - lo) * min(done[0], n) / n, f"{desc}: layer {min(done[0], n)} of {n}")

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def token_labels(
    n_before: int, grid: tuple[int, int], after: list[str], before: list[str]
) -> tuple[list, list]:
    """Labels and kinds ("cls", "bos", "patch", "text") of every token of a sequence."""
    labels = list(before)
    kinds = ["cls" if b == "CLS" else "bos" if b in ("<bos>", "<s>") else "text" for b in before]
    rows, cols = grid
    labels += [f"patch r{r} c{c}" for r in range(rows) for c in range(cols)]
    kinds += ["patch"] * (rows * cols)
    labels += after
    kinds += ["text"] * len(after)
    assert len(labels) == n_before + rows * cols + len(after)
    return labels, kinds


@dataclass
class Attention:
    """One forward pass of a model on one image: its attentions and what the token axis means."""

    model: str
    model_kind: str  # "encoder" or "vlm"
    attn: np.ndarray  # [L, H, T, T] float32, every layer's attention
    labels: list  # [T] token labels
    kinds: list  # [T] "cls", "bos", "patch", "text"
    grid: tuple[int, int]  # patch rows, cols
    n_before: int  # tokens before the image patches
    output: int  # the traced token: CLS (encoders) or the last token (VLMs)
    answer: str = ""
    question: str = ""
    notices: list = field(default_factory=list)  # what resizing did to the image
    seen: np.ndarray | None = None  # the (resized) RGB uint8 image the model saw
    backend: str = "cpu"
    timings: dict = field(default_factory=dict)  # "load", "forward" (s)

    @property
    def image_span(self) -> list[int]:
        return [self.n_before, self.n_before + self.grid[0] * self.grid[1]]


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image must be RGB uint8 [H, W, 3], got {image.dtype} {image.shape}")
    return image


def attend(image: np.ndarray, *, model: str = "scene-vit", question: str | None = None,
           allow_network: bool | None = None, progress=None) -> Attention:  # fmt: skip
    """The attentions of ``model`` on ``image`` (RGB uint8 [H, W, 3], resized to the model's input), cached.

    On a miss the job is sized first (:func:`estimate`), then admitted (:func:`admitted`)."""
    image = _check_image(image)

    def compute() -> Attention:
        if progress is not None:
            progress(0.0, f"loading {model}")
        cost = estimate(image, model=model, methods=(), question=question, allow_network=allow_network)
        with admitted(cost, progress):
            return _forward(image, model, question, allow_network, progress)

    return _FORWARD.get_or_compute((image, model, question or ""), compute)


def _forward(image, model_name, question, allow_network, progress=None) -> Attention:
    import torch

    from engine.vision.images import resize_for
    from engine.vision.loading import VisionLanguageModel, load_vision

    sw = Stopwatch()
    with sw("load"):
        model = load_vision(model_name, allow_network=allow_network)
    is_vlm = isinstance(model, VisionLanguageModel)
    enc = model.encoder if is_vlm else model
    seen, notices = resize_for(image, enc.image_size)
    answer = ""
    layers = [*list(enc.layers or [])] + ([*list(model.lm_layers or [])] if is_vlm else [])
    with sw("forward"), torch.no_grad(), _layer_progress(layers, progress, 0.0, 0.5, f"{model_name} forward"):
        pix = enc.preprocess(seen)
        if is_vlm:
            q = (question or DEFAULT_QUESTION).strip()
            pre, post = model.prompt_ids(q)
            answer, out = model.answer(pix, q, output_attentions=True)
            n_before = len(pre)
            if model.kind == "scene-vlm":
                from engine.vision import scenes

                before = [scenes.VOCAB[i] for i in pre]
                after = [scenes.VOCAB[i] for i in post]
            else:
                before = [model.tokenizer.decode([i]) for i in pre]
                after = [model.tokenizer.decode([i]) for i in post]
            n_img = out.attentions[0].shape[-1] - len(pre) - len(post)
            g = int(round(n_img**0.5))
            grid = (g, n_img // max(g, 1))
            output = out.attentions[0].shape[-1] - 1
        else:
            out = enc.forward(pix, output_attentions=True)
            n_before = enc.n_prefix
            before = ["CLS"] + [f"reg{i}" for i in range(enc.n_prefix - 1)]
            after = []
            grid = enc.grid
            output = 0
        if not out.attentions or out.attentions[0] is None:
            raise InputError(f"model {model_name!r} returned no attentions (it needs eager attention)")
        attn = torch.stack([a[0] for a in out.attentions]).float().cpu().numpy()  # [L, H, T, T]
    labels, kinds = token_labels(n_before, grid, after, before)
    return Attention(
        model=model_name, model_kind="vlm" if is_vlm else "encoder", attn=attn, labels=labels, kinds=kinds,
        grid=tuple(grid), n_before=n_before, output=output, answer=answer,
        question=(question or DEFAULT_QUESTION) if is_vlm else "", notices=notices, seen=seen,
        backend=enc.device, timings=dict(sw.timings),
    )  # fmt: skip


def flow_for_image(
    image: np.ndarray,
    *,
    model: str = "scene-vit",
    method: str = "attention-rollout",
    question: str | None = None,
    params: dict | None = None,
    target: str = "output",
    allow_network: bool | None = None,
    progress=None,
) -> FlowGraph:
    """The flow graph of ``model`` on ``image`` (RGB uint8 [H, W, 3], any size: resized to the model's input).

    ``target``: "output" traces the flow into CLS (encoders) or the last token (VLMs); "patches" into the mean
    of the image tokens of the last layer, where CLS shows up as a relay if patches read what CLS gathered.
    ``params``: the method's own parameters (:func:`method_params` picks them from the family's table).

    Returns a :class:`FlowGraph` with ``extra`` holding token labels and kinds, the patch grid, the image span
    in the sequence, the model name, the (resized) image the model saw, and the VLM's answer.

    ``progress(frac, desc)`` is called during the forward pass and the graph (it may raise to stop the job).
    On a cache miss the job is sized and admitted (memory check; heavy slot when long) before it starts.
    """
    m = get(method, family="flow")
    values = m.validate(params or {})
    image = _check_image(image)
    target = TARGET.check(target)
    key = fingerprint(image, model, method, values, question or "", target)

    def compute() -> FlowGraph:
        if progress is not None:
            progress(0.0, f"loading {model}")
        cost = estimate(image, model=model, methods=(method,), params=values, question=question,
                        allow_network=allow_network)  # fmt: skip
        with admitted(cost, progress):
            att = attend(
                image, model=model, question=question, allow_network=allow_network, progress=progress
            )
            return _graph(att, m, values, target, key, progress)

    return _GRAPHS.get_or_compute(key, compute)


def _takes_progress(fn) -> bool:
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "progress" or p.kind is inspect.Parameter.VAR_KEYWORD for p in ps)


def _graph(att: Attention, method, values: dict, target: str, key: str, progress=None) -> FlowGraph:
    output, output_label = att.output, att.labels[att.output]
    if target == "patches":
        a, b = att.image_span
        output = np.zeros(att.attn.shape[-1])
        output[a:b] = 1.0
        output_label = "all image patches (mean)"
    extra = {}
    if progress is not None and _takes_progress(method.fn):
        extra["progress"] = lambda frac, desc: progress(0.5 + 0.5 * frac, desc)
    res = method(att.attn, output=output, **values, **extra)
    res.provenance.timings = {**att.timings, **res.provenance.timings}
    res.provenance.input_fingerprint = key
    res.provenance.backend = att.backend
    res.extra = {
        "model": att.model,
        "model_kind": att.model_kind,
        "labels": att.labels,
        "kinds": att.kinds,
        "grid": list(att.grid),
        "image_span": att.image_span,
        "answer": att.answer,
        "question": att.question,
        "notices": att.notices,
        "image": att.seen,
        "output_label": output_label,
        "target": target,
    }
    return res
