"""Run the flow methods of :mod:`engine.flow.graph` on a model and one image.

- Vision encoders (``scene-vit``, hub CLIP / ViT / DINOv2): flow from the patches (and CLS) to the CLS token of
  the last layer.
- Vision-language models (``scene-vlm``, hub LLaVA): flow through the decoder from ``<bos>``, the image tokens and
  the question tokens to the last token, the one whose next-token prediction is the answer.

Results are cached in memory by (image, model, method, parameters, question).
"""

from __future__ import annotations

import numpy as np

from engine.cache import MemoryCache
from engine.flow.graph import FlowGraph
from engine.registry import InputError, get
from engine.results import Stopwatch, fingerprint

__all__ = ["DEFAULT_QUESTION", "FLOW_METHODS", "flow_for_image", "token_labels"]

DEFAULT_QUESTION = "how many objects ?"
FLOW_METHODS = ("attention-rollout", "attention-flow")
TARGETS = ("output", "patches")
_CACHE = MemoryCache(maxsize=16)


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

    Returns a :class:`FlowGraph` with ``extra`` holding token labels and kinds, the patch grid, the image span
    in the sequence, the model name, the (resized) image the model saw, and the VLM's answer.
    """
    if method not in FLOW_METHODS:
        raise InputError(f"unknown flow method {method!r}; choose one of {list(FLOW_METHODS)}")
    m = get(method)
    values = m.validate(params or {})
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image must be RGB uint8 [H, W, 3], got {image.dtype} {image.shape}")
    if target not in TARGETS:
        raise InputError(f"target must be one of {list(TARGETS)}, got {target!r}")
    key = fingerprint(image, model, method, values, question or "", target)
    return _CACHE.get_or_compute(
        key, lambda: _compute(image, model, m, values, question, allow_network, key, target)
    )


def _compute(image, model_name, method, values, question, allow_network, key, target) -> FlowGraph:
    import torch

    from engine.vision.images import resize_for
    from engine.vision.loading import VisionLanguageModel, load_vision

    sw = Stopwatch()
    with sw("load"):
        model = load_vision(model_name, allow_network=allow_network)
    enc = model.encoder if isinstance(model, VisionLanguageModel) else model
    seen, notices = resize_for(image, enc.image_size)
    answer = ""
    with sw("forward"), torch.no_grad():
        pix = enc.preprocess(seen)
        if isinstance(model, VisionLanguageModel):
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
    output_label = labels[output]
    if target == "patches":
        w = np.zeros(attn.shape[-1])
        w[n_before : n_before + grid[0] * grid[1]] = 1.0
        output, output_label = w, "all image patches (mean)"
    res = method(attn, output=output, **values)
    res.provenance.timings = {**sw.timings, **res.provenance.timings}
    res.provenance.input_fingerprint = key
    res.provenance.backend = enc.device
    res.extra = {
        "model": model_name,
        "model_kind": "vlm" if isinstance(model, VisionLanguageModel) else "encoder",
        "labels": labels,
        "kinds": kinds,
        "grid": list(grid),
        "image_span": [n_before, n_before + grid[0] * grid[1]],
        "answer": answer,
        "question": (question or DEFAULT_QUESTION) if isinstance(model, VisionLanguageModel) else "",
        "notices": notices,
        "image": seen,
        "output_label": output_label,
        "target": target,
    }
    return res
