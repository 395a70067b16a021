"""One image, one question, one or several pruning methods: what each keeps and what the VLM answers.

The entry point of the tab and of ``redex tokens --image``: :func:`prune_image` returns a
:class:`TokenPruning` (per-patch scores, kept patches after every stage, the answers with all tokens and with
the pruned ones, FLOPs and times), :func:`compare` runs several methods at the same kept fraction and returns a
:class:`TokenComparison` (each method's result and the agreement matrix, the IoU of kept sets). Both are cached
by input fingerprint (:class:`~engine.cache.ResultCache`), so the tab's download and a repeated click answer
at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.cache import ResultCache
from engine.registry import InputError, Param, Settings, get
from engine.results import ComparisonResult, Provenance, Result, fingerprint, to_jsonable
from engine.tokens import core
from engine.tokens.methods import KEEP, control_extras

__all__ = [
    "TokenPruning", "TokenComparison", "prune_image", "compare", "iou_matrix", "DEFAULT_QUESTION", "COMPARE",
    "PRUNE_CACHE", "COMPARE_CACHE",
]  # fmt: skip

DEFAULT_QUESTION = "how many objects ?"
PLACES = {"vit": "inside the encoder", "pre-lm": "before the LM", "lm": "inside the LM"}
# the comparison's own settings (each method's parameters are its registration's): one kept fraction for all
COMPARE = Settings(
    "token comparison", (KEEP, Param("question", DEFAULT_QUESTION, help="question for the VLM"))
)
PRUNE_CACHE = ResultCache("tokens-prune", version=1, maxsize=64)  # in memory: results hold numpy arrays
COMPARE_CACHE = ResultCache("tokens-compare", version=1, maxsize=16)


@dataclass
class TokenPruning(Result):
    method: str = ""
    model: str = ""
    place: str = ""  # "vit", "pre-lm", "lm"
    keep: float = 1.0
    grid: tuple[int, int] = (14, 14)
    scores: np.ndarray | None = (
        None  # [N] the method's last per-patch scores (NaN: not scored / dropped earlier)
    )
    kept: np.ndarray | None = None  # [k] patch indices that reach the last LM layer
    stages: list[dict] = field(default_factory=list)  # {"place", "layer", "kept": [k_s]} after each step
    groups: np.ndarray | None = None  # [N] pooled window of each patch (LLaVolta), else None
    question: str = ""
    answer_full: str = ""
    answer_pruned: str = ""
    flops: float = 0.0  # one prefill with pruning
    flops_full: float = 0.0
    notices: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # method details (layer, stages, schedule, lambda, ...)

    def tables(self) -> dict[str, list[dict]]:
        return {
            "summary": [
                {"quantity": "method", "value": self.method},
                {"quantity": "acts", "value": PLACES.get(self.place, self.place)},
                {
                    "quantity": "kept image tokens",
                    "value": f"{len(self.kept)} of {self.grid[0] * self.grid[1]}",
                },
                {"quantity": "answer, all tokens", "value": self.answer_full},
                {"quantity": "answer, pruned", "value": self.answer_pruned},
                {
                    "quantity": "prefill GFLOPs (pruned / all)",
                    "value": f"{self.flops / 1e9:.3f} / {self.flops_full / 1e9:.3f}",
                },
                {
                    "quantity": "scoring time (ms)",
                    "value": f"{1e3 * self.provenance.timings.get('score', 0):.2f}",
                },
                {
                    "quantity": "forward time (ms)",
                    "value": f"{1e3 * self.provenance.timings.get('forward', 0):.1f}",
                },
            ]
        }


def _load(model: str, allow_network: bool | None):
    from engine.vision.loading import load_vision

    m = load_vision(model or "scene-vlm", allow_network=allow_network)
    if getattr(m, "kind", None) not in ("scene-vlm", "llava"):
        raise InputError(
            f"{model!r} is a {getattr(m, 'kind', type(m).__name__)} model: token pruning needs a vision-language "
            "model that reads image tokens (the scene VLM 'scene-vlm' or a LLaVA-style model)"
        )
    return m


def _inputs(vlm, image: np.ndarray, question: str | None):
    from engine.vision.images import resize_for, validate_array

    image, notices = validate_array(image)
    image, more = resize_for(image, vlm.encoder.image_size)
    px = vlm.encoder.preprocess(image)
    q = (question or "").strip() or DEFAULT_QUESTION
    _, ids = vlm.prompt_ids(q)
    return image, px, np.asarray(ids, dtype=np.int64)[None, None], q, notices + more


def prune_image(image: np.ndarray, *, method: str, keep: float, params: dict | None = None,
                question: str | None = None, model: str = "scene-vlm", seed: int = 0,
                allow_network: bool | None = None, control: bool = False) -> TokenPruning:  # fmt: skip
    """Prune the image tokens of ``image`` (RGB uint8 [H, W, 3]) with ``method`` at ``keep``; with ``control``,
    the method's random control at the same place (same layer / stage and token counts; ``seed``).

    Raises :class:`InputError` for a bad image, a keep fraction outside (0, 1], an unknown method, a parameter
    out of range, or a model the method does not apply to.
    """
    m = get(method, family="tokens")
    p = m.validate(dict(params or {}, keep=keep))  # the one range check, before any work
    vlm = _load(model, allow_network)
    image, px, q, qtext, notices = _inputs(vlm, image, question)
    key = (fingerprint(image), method, p, qtext, seed, model, control)

    def compute():
        extra = control_extras(m, vlm, px, p["keep"], control=control)
        pol = m(vlm, seed=seed, control=control, **p, **extra)
        with torch.no_grad():
            out = core.run_vlm(vlm, px, q, pol)
            full = core.run_vlm(vlm, px, q, None)
        N = vlm.encoder.n_patches
        scores = out.scores[0] if out.scores is not None else np.full(N, np.nan)
        info = {k: v for k, v in pol.info.items() if k not in ("scores",) and not callable(v)}
        prov = Provenance(method=method, params=p | {"question": qtext, "control": control}, input_fingerprint=fingerprint(image),
                          seed=seed, backend=str(px.device.type),
                          timings={"score": out.score_s, "forward": out.forward_s - out.score_s})  # fmt: skip
        return TokenPruning(
            provenance=prov, method=f"{method} (random control)" if control else method, model=vlm.name, place=pol.place, keep=float(keep),
            grid=vlm.encoder.grid, scores=np.asarray(scores, dtype=np.float64), kept=out.kept[0],
            stages=[{"place": s["place"], "layer": s["layer"], "kept": s["kept"][0]} for s in out.stages],
            groups=out.groups, question=qtext, answer_full=vlm.decode(int(full.logits[0].argmax())),
            answer_pruned=vlm.decode(int(out.logits[0].argmax())), flops=core.run_cost(vlm, out)["flops"],
            flops_full=core.run_cost(vlm, full)["flops"], notices=list(notices), info=to_jsonable(info),
        )  # fmt: skip

    return PRUNE_CACHE.get_or_compute(key, compute)


def iou_matrix(kept_sets: list[np.ndarray]) -> np.ndarray:
    """IoU |A & B| / |A | B| of every pair of kept patch sets, [M, M]."""
    M = len(kept_sets)
    out = np.ones((M, M))
    sets = [set(np.asarray(k).tolist()) for k in kept_sets]
    for i in range(M):
        for j in range(i + 1, M):
            u = len(sets[i] | sets[j])
            out[i, j] = out[j, i] = len(sets[i] & sets[j]) / u if u else 1.0
    return out


@dataclass
class TokenComparison(ComparisonResult):
    """Several methods on one image at one kept fraction: each method's :class:`TokenPruning` (in the order
    asked) and the IoU of their kept sets; ``rows`` is one row per method (what the table and CSV show)."""

    results: list[TokenPruning] = field(default_factory=list)
    iou: np.ndarray | None = None  # [M, M] IoU of the kept patch sets (1 on the diagonal)
    question: str = ""

    def tables(self) -> dict[str, list[dict]]:
        names = [r.method for r in self.results]
        agreement = [{"method": a, **dict(zip(names, map(float, row), strict=True))} for a, row in
                     zip(names, self.iou, strict=True)]  # fmt: skip
        return {"comparison": self.rows, "agreement": agreement}


def compare(image: np.ndarray, methods: list[str], *, keep: float, question: str | None = None,
            params: dict[str, dict] | None = None, model: str = "scene-vlm") -> TokenComparison:  # fmt: skip
    """Several registered methods on one image at the same kept fraction (``params``: method -> its own
    parameters), with the IoU of their kept sets; cached by image fingerprint and settings."""
    if len(methods or []) < 1:
        raise InputError("pick at least one method to compare")
    s = COMPARE.validate({"keep": keep, "question": (question or "").strip() or DEFAULT_QUESTION})
    for name in methods:
        get(name, family="tokens")  # unknown names fail before any work
    key = (fingerprint(image), list(methods), s, params or {}, model)

    def compute() -> TokenComparison:
        res = [prune_image(image, method=m, keep=s["keep"], params=(params or {}).get(m), question=s["question"],
                           model=model) for m in methods]  # fmt: skip
        rows = [{"method": r.method, "acts": PLACES.get(r.place, r.place), "kept tokens": len(r.kept),
                 "answer, pruned": r.answer_pruned, "answer, all tokens": r.answer_full,
                 "prefill GFLOPs": r.flops / 1e9, "prefill GFLOPs, all tokens": r.flops_full / 1e9}
                for r in res]  # fmt: skip
        prov = Provenance(method="compare", params={"methods": list(methods), **s, "model": model},
                          input_fingerprint=fingerprint(image), backend=res[0].provenance.backend,
                          timings={"total": sum(sum(r.provenance.timings.values()) for r in res)})  # fmt: skip
        return TokenComparison(provenance=prov, family="tokens", methods=list(methods), settings=s, rows=rows,
                               results=res, iou=iou_matrix([r.kept for r in res]), question=res[0].question)  # fmt: skip

    return COMPARE_CACHE.get_or_compute(key, compute)
