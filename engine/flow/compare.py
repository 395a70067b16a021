"""Two or more flow methods on the same image and model: per-token importance, rank agreement and time.

Every method reads the same forward pass (:func:`engine.flow.run.attend`, cached), so what differs between the
rows is the method alone. Agreement is measured two ways:

- **Spearman's rank correlation** of the importance vectors over all input tokens (ties get mean ranks);
- **top-patch IoU**: ``|A & B| / |A | B|`` of the ``top_fraction`` most important image patches of two methods,
  the set a pruning method guided by the importance would keep.

Each row also states the method's cost (its own seconds, the estimated peak memory of the job) and how
concentrated its importance is (the share of the image's importance that the top 10% of patches hold).

A comparison is cached in memory by (image, model, methods, settings, question). On a miss the whole comparison
is sized once (:func:`engine.flow.run.estimate`: the forward pass and every method's graph) and admitted once
(memory check; one heavy slot when long), and ``progress`` moves through the methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.cache import ResultCache
from engine.flow.graph import FLOW_PARAMS
from engine.flow.run import TARGET, admitted, attend, estimate, flow_for_image, method_params
from engine.registry import InputError, Param, Settings, get
from engine.results import ComparisonResult, Provenance, Stopwatch, fingerprint

__all__ = ["COMPARE_SETTINGS", "FlowComparison", "compare", "rank_agreement", "top_iou"]

COMPARE_SETTINGS = Settings("flow comparison", (
    *FLOW_PARAMS.params,
    TARGET,
    Param("top_fraction", 0.1, low=0.01, high=1.0, step=0.01, label="Top patches compared",
          help="share of the image patches whose top sets the IoU compares"),
))  # fmt: skip
_CACHE = ResultCache("flow-compare", maxsize=8)


@dataclass
class FlowComparison(ComparisonResult):
    model: str = ""
    model_kind: str = ""
    question: str = ""
    answer: str = ""
    output_label: str = ""  # the token (or the patch mean) the flow is traced into
    n_tokens: int = 0
    grid: list = field(default_factory=list)  # patch rows, cols
    image_span: list = field(default_factory=list)  # [first, end) of the image tokens
    labels: list = field(default_factory=list)  # [T]
    kinds: list = field(default_factory=list)  # [T]
    importance: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [M, T], each row sums to 1
    spearman: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [M, M]
    top_iou: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [M, M]
    notices: list = field(default_factory=list)
    extra: dict = field(default_factory=dict, repr=False)  # "image": what the model saw, "graphs": FlowGraphs

    def tables(self):
        pairs = [
            {"method_a": a, "method_b": b, "spearman": float(self.spearman[i, j]),
             "top_iou": float(self.top_iou[i, j])}
            for i, a in enumerate(self.methods) for j, b in enumerate(self.methods) if i < j
        ]  # fmt: skip
        tokens = [
            {"token": t, "label": lab, "kind": k, **{m: float(self.importance[i, t]) for i, m in enumerate(self.methods)}}
            for t, (lab, k) in enumerate(zip(self.labels, self.kinds, strict=True))
        ]  # fmt: skip
        return {"comparison": self.rows, "agreement": pairs, "importance": tokens}


def rank_agreement(importance: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation [M, M] of the rows of ``importance`` [M, T] (NaN where a row is constant)."""
    from scipy.stats import rankdata

    r = rankdata(np.asarray(importance, dtype=np.float64), axis=1)
    r = r - r.mean(1, keepdims=True)
    norm = np.sqrt((r * r).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r @ r.T) / np.outer(norm, norm)


def top_iou(importance: np.ndarray, fraction: float) -> np.ndarray:
    """IoU [M, M] of the ``fraction`` highest entries of each row of ``importance`` [M, N] (at least one)."""
    imp = np.asarray(importance, dtype=np.float64)
    k = max(1, int(round(fraction * imp.shape[1])))
    top = np.zeros(imp.shape, dtype=bool)
    np.put_along_axis(top, np.argsort(-imp, axis=1, kind="stable")[:, :k], True, axis=1)
    inter = top.astype(np.int64) @ top.T.astype(np.int64)
    return inter / (2 * k - inter)


def compare(
    image: np.ndarray,
    methods: list[str] | tuple[str, ...],
    settings: dict | None = None,
    *,
    model: str = "scene-vit",
    question: str | None = None,
    notices: list[str] | tuple[str, ...] = (),
    allow_network: bool | None = None,
    progress=None,
) -> FlowComparison:
    """Run each of ``methods`` (registered flow methods) on ``image`` through ``model`` and compare them.

    ``settings``: values of :data:`COMPARE_SETTINGS` (every method takes the parameters of the family's table it
    uses, the target and the top fraction); unset ones take their defaults. ``notices``: what loading the image
    did (they come before the model's own). ``progress(frac, desc)`` moves through the forward pass and the
    methods (it may raise to stop the job).
    """
    methods = list(dict.fromkeys(methods or ()))
    if not methods:
        raise InputError("pick at least one flow method to compare")
    for name in methods:
        get(name, family="flow")
    values = COMPARE_SETTINGS.validate(settings)
    parts = (fingerprint(np.asarray(image)), model, methods, values, question or "", list(notices))
    method_values = {k: v for k, v in values.items() if k in {p.name for p in FLOW_PARAMS.params}}

    def compute() -> FlowComparison:
        cost = estimate(image, model=model, methods=methods, params=method_values, question=question,
                        allow_network=allow_network)  # fmt: skip
        with admitted(cost, progress):
            att = attend(image, model=model, question=question, allow_network=allow_network,
                         progress=_part(progress, 0.0, 0.3))  # fmt: skip
            return _compare(image, att, methods, values, question, [*notices, *att.notices], allow_network,
                            progress, cost.peak_bytes)  # fmt: skip

    return _CACHE.get_or_compute(parts, compute)


def _part(progress, lo: float, hi: float):
    return None if progress is None else (lambda frac, desc: progress(lo + (hi - lo) * frac, desc))


def _compare(image, att, methods, values, question, notices, allow_network, progress=None,
             peak_bytes=0) -> FlowComparison:  # fmt: skip
    method_values = {k: v for k, v in values.items() if k in {p.name for p in FLOW_PARAMS.params}}
    sw = Stopwatch(dict(att.timings))
    graphs = []
    n = len(methods)
    for i, name in enumerate(methods):  # one graph per method on the same cached forward pass
        step = _part(progress, 0.3 + 0.7 * i / n, 0.3 + 0.7 * (i + 1) / n)
        if step is not None:
            step(0.0, f"{name} ({i + 1} of {n})")
        with sw(name):
            graphs.append(flow_for_image(
                image, model=att.model, method=name, question=question, params=method_params(name, method_values),
                target=values["target"], allow_network=allow_network, progress=step,
            ))  # fmt: skip
    imp = np.stack([g.importance for g in graphs])  # [M, T]
    a, b = att.image_span
    rows = []
    for name, g in zip(methods, graphs, strict=True):
        t = g.provenance.timings
        top = int(np.argmax(g.importance))
        patches = np.sort(g.importance[a:b])[::-1]
        k10 = max(1, len(patches) // 10)
        rows.append({
            "method": name, "importance_s": t[name],
            "graph_s": sum(t[s] for s in ("rollout", name, "entropy", "edges")),
            "image_share": float(g.importance[a:b].sum()), "top_input": att.labels[top],
            "top_importance": float(g.importance[top]),
            "top10_patch_share": float(patches[:k10].sum() / max(patches.sum(), 1e-12)),
            "top_k": g.provenance.params.get("top_k"), "edges_kept": len(g.edges),
            "cross_edges": int(g.n_cross_edges), "peak_memory_bytes": int(peak_bytes),
        })  # fmt: skip
    first = graphs[0].extra
    return FlowComparison(
        provenance=Provenance(
            method="compare", params=values, timings=sw.timings, backend=att.backend,
            input_fingerprint=fingerprint(np.asarray(image), att.model, question or "", values["target"]),
        ),
        family="flow", methods=methods, settings=values, rows=rows, model=att.model, model_kind=att.model_kind,
        question=att.question, answer=att.answer, output_label=first["output_label"], n_tokens=imp.shape[1],
        grid=list(att.grid), image_span=att.image_span, labels=att.labels, kinds=att.kinds, importance=imp,
        spearman=rank_agreement(imp), top_iou=top_iou(imp[:, a:b], values["top_fraction"]),
        notices=notices, extra={"image": att.seen, "graphs": graphs},
    )  # fmt: skip
