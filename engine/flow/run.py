"""Run the flow methods of :mod:`engine.flow.graph` on a model and one image.

- Vision encoders (``scene-vit``, hub CLIP / ViT / DINOv2): flow from the patches (and CLS) to the CLS token of
  the last layer.
- Vision-language models (``scene-vlm``, hub LLaVA): flow through the decoder from ``<bos>``, the image tokens and
  the question tokens to the last token, the one whose next-token prediction is the answer.

The model's forward pass (:func:`attend`) is cached by (image, model, question), so every method, and every
comparison (:mod:`engine.flow.compare`), reads one forward pass; the graphs are cached by (image, model, method,
parameters, question, target). Both caches live in memory (:class:`engine.cache.ResultCache`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.cache import ResultCache
from engine.flow.graph import FLOW_PARAMS, FlowGraph
from engine.registry import InputError, Param, get
from engine.results import Stopwatch, fingerprint

__all__ = [
    "DEFAULT_QUESTION",
    "TARGET",
    "Attention",
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


def clear_caches() -> None:
    """Forget every cached forward pass and graph (tests that want a cold run)."""
    _FORWARD.clear()
    _GRAPHS.clear()


def method_params(method: str, values: dict | None = None) -> dict:
    """The parameters ``method`` takes, picked from values of the family's table :data:`FLOW_PARAMS` (what the
    tab's controls and the CLI's flags send: every parameter of the family), and checked by the method."""
    m = get(method, family="flow")
    FLOW_PARAMS.validate(values, only=[])  # names outside the family's table are an error; ranges: below
    own = {p.name for p in m.params}
    return m.validate({k: v for k, v in (values or {}).items() if k in own})


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
           allow_network: bool | None = None) -> Attention:  # fmt: skip
    """The attentions of ``model`` on ``image`` (RGB uint8 [H, W, 3], resized to the model's input), cached."""
    image = _check_image(image)
    return _FORWARD.get_or_compute(
        (image, model, question or ""), lambda: _forward(image, model, question, allow_network)
    )


def _forward(image, model_name, question, allow_network) -> Attention:
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
    with sw("forward"), torch.no_grad():
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
) -> FlowGraph:
    """The flow graph of ``model`` on ``image`` (RGB uint8 [H, W, 3], any size: resized to the model's input).

    ``target``: "output" traces the flow into CLS (encoders) or the last token (VLMs); "patches" into the mean
    of the image tokens of the last layer, where CLS shows up as a relay if patches read what CLS gathered.
    ``params``: the method's own parameters (:func:`method_params` picks them from the family's table).

    Returns a :class:`FlowGraph` with ``extra`` holding token labels and kinds, the patch grid, the image span
    in the sequence, the model name, the (resized) image the model saw, and the VLM's answer.
    """
    m = get(method, family="flow")
    values = m.validate(params or {})
    image = _check_image(image)
    target = TARGET.check(target)
    key = fingerprint(image, model, method, values, question or "", target)
    return _GRAPHS.get_or_compute(
        key, lambda: _graph(attend(image, model=model, question=question, allow_network=allow_network),
                            m, values, target, key)
    )  # fmt: skip


def _graph(att: Attention, method, values: dict, target: str, key: str) -> FlowGraph:
    output, output_label = att.output, att.labels[att.output]
    if target == "patches":
        a, b = att.image_span
        output = np.zeros(att.attn.shape[-1])
        output[a:b] = 1.0
        output_label = "all image patches (mean)"
    res = method(att.attn, output=output, **values)
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
