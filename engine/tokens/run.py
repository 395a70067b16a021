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

from engine.admission import check_memory
from engine.cache import ResultCache
from engine.registry import InputError, Param, Settings, get
from engine.results import ComparisonResult, Provenance, Result, fingerprint, to_jsonable
from engine.tokens import core
from engine.tokens.methods import KEEP, control_extras

__all__ = [
    "TokenPruning", "TokenComparison", "prune_image", "compare", "iou_matrix", "DEFAULT_QUESTION", "COMPARE",
    "PRUNE_CACHE", "COMPARE_CACHE", "run_bytes", "SMALL_COMPARE",
]  # fmt: skip

DEFAULT_QUESTION = "how many objects ?"
PLACES = {"vit": "inside the encoder", "pre-lm": "before the LM", "lm": "inside the LM"}
# the comparison's own settings (each method's parameters are its registration's): one kept fraction for all
COMPARE = Settings(
    "token comparison", (KEEP, Param("question", DEFAULT_QUESTION, help="question for the VLM"))
)
PRUNE_CACHE = ResultCache("tokens-prune", version=1, maxsize=64)  # in memory: results hold numpy arrays
COMPARE_CACHE = ResultCache("tokens-compare", version=1, maxsize=16)
# a comparison on the scene VLM with at most this many methods not yet computed is cheap (about a second on a
# CPU) and runs at once; more, or any run on a hub / LLaVA model, waits for a heavy-job slot
SMALL_COMPARE = 2
MAX_QUESTION_CHARS = 500  # a question for the VLM (the scene VLM reads at most 10 words)


def _patch_rows(grid: tuple[int, int]) -> list[dict]:
    gh, gw = grid
    return [{"patch": i, "row": i // gw, "col": i % gw} for i in range(gh * gw)]


def _unique(names: list[str]) -> list[str]:
    """Column names for a table with one column per method (a method asked twice gets ' (2)')."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


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
            ],
            "patches": self.patch_table(),
        }

    def patch_table(self) -> list[dict]:
        """The data behind the overlay: one row per patch (index, grid row and column), the method's score
        (empty where it scored none), whether it is kept after each pruning step and at the end, and its pooled
        window (pooling methods)."""
        rows = _patch_rows(self.grid)
        final = set(np.asarray(self.kept).tolist()) if self.kept is not None else set()
        steps = [set(np.asarray(st["kept"]).reshape(-1).tolist()) for st in self.stages]
        scores = self.scores if self.scores is not None else np.full(len(rows), np.nan)
        for r in rows:
            i = r["patch"]
            s = float(scores[i]) if i < len(scores) else float("nan")
            r["score"] = None if s != s else s
            for j, st in enumerate(steps, start=1):
                r[f"kept after step {j}"] = int(i in st)
            r["kept"] = int(i in final)  # pooling: the first patch of each window stands for it
            if self.groups is not None:
                r["pooled window"] = int(np.asarray(self.groups)[i])
        return rows


def _load(model: str, allow_network: bool | None, progress=None):
    from engine.vision.loading import load_vision

    m = load_vision(model or "scene-vlm", allow_network=allow_network, progress=progress)
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
    if len(q) > MAX_QUESTION_CHARS:
        raise InputError(f"the question has {len(q):,} characters; at most {MAX_QUESTION_CHARS} are read")
    _, ids = vlm.prompt_ids(q)
    return image, px, np.asarray(ids, dtype=np.int64)[None, None], q, notices + more


def run_bytes(vlm, n_question_tokens: int, runs: int = 2) -> int:
    """Memory of ``runs`` pruning runs on one image (bytes, float32): per LM layer the eager attention weights
    [H, T, T] and about 16 activations [T, d] live at once, the same for the encoder; the weights are loaded
    already (their estimate is checked when the model loads)."""
    enc = vlm.encoder
    lm_cfg = getattr(vlm.lm.config, "text_config", vlm.lm.config)
    T = len(vlm.prefix_ids()) + enc.n_patches + n_question_tokens
    Tv = enc.n_patches + enc.n_prefix
    d_lm = int(lm_cfg.hidden_size)
    d_v = int(getattr(getattr(enc.model, "config", None), "hidden_size", 0) or d_lm)
    per_run = vlm.n_heads * T * T + 16 * T * d_lm + enc.n_heads * Tv * Tv + 16 * Tv * d_v
    return int(4 * runs * per_run * 2)  # x2: the captured layers' weights kept for scoring


def _heavy_model(vlm) -> bool:
    """A run on anything but the shipped scene VLM (a LLaVA from the hub or a folder) is heavy work."""
    return vlm.kind != "scene-vlm"


def prune_image(image: np.ndarray, *, method: str, keep: float, params: dict | None = None,
                question: str | None = None, model: str = "scene-vlm", seed: int = 0,
                allow_network: bool | None = None, control: bool = False, progress=None) -> TokenPruning:  # fmt: skip
    """Prune the image tokens of ``image`` (RGB uint8 [H, W, 3]) with ``method`` at ``keep``; with ``control``,
    the method's random control at the same place (same layer / stage and token counts; ``seed``).

    ``progress(frac, desc)`` is called before each step and on every layer of a run (it may raise
    :class:`engine.admission.Stopped`, which ends the run; nothing shared is left changed). A run on a model
    other than the scene VLM takes a heavy-job slot; every run first checks its memory estimate.

    Raises :class:`InputError` for a bad image, a keep fraction outside (0, 1], an unknown method, a parameter
    out of range, or a model the method does not apply to.
    """
    m = get(method, family="tokens")
    p = m.validate(dict(params or {}, keep=keep))  # the one range check, before any work
    vlm = _load(model, allow_network, progress)
    image, px, q, qtext, notices = _inputs(vlm, image, question)
    key = (fingerprint(image), method, p, qtext, seed, model, control)
    tell = progress or (lambda frac, desc: None)

    def compute():
        check_memory(run_bytes(vlm, q.shape[-1]), f"pruning on {vlm.name}")
        if _heavy_model(vlm):
            from engine.vision.loading import heavy_once

            with heavy_once(f"token pruning on {vlm.name}", expect_s=30.0, progress=progress):
                return _prune(vlm, m, p, image, px, q, qtext, notices, method, keep, seed, control, tell)
        return _prune(vlm, m, p, image, px, q, qtext, notices, method, keep, seed, control, tell)

    return PRUNE_CACHE.get_or_compute(key, compute)


def _ticker(tell, lo: float, hi: float, desc: str, n: int):
    """A per-layer callback for :func:`core.run_vlm` that moves ``tell`` from ``lo`` to ``hi`` over ``n`` calls."""
    count = [0]

    def tick() -> None:
        count[0] += 1
        tell(lo + (hi - lo) * min(1.0, count[0] / max(n, 1)), desc)

    return tick


def _prune(vlm, m, p, image, px, q, qtext, notices, method, keep, seed, control, tell) -> TokenPruning:
    n_layers = vlm.encoder.n_layers + vlm.n_layers
    tell(0.05, f"{method}: scoring and pruning")
    extra = control_extras(m, vlm, px, p["keep"], control=control)
    pol = m(vlm, seed=seed, control=control, **p, **extra)
    with torch.no_grad():
        out = core.run_vlm(vlm, px, q, pol, tick=_ticker(tell, 0.1, 0.55, f"{method}: pruned run", n_layers))
        full = core.run_vlm(
            vlm, px, q, None, tick=_ticker(tell, 0.55, 0.95, f"{method}: all tokens", n_layers)
        )
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
        cols = _unique(names)
        agreement = [{"method": a, **dict(zip(cols, map(float, row), strict=True))} for a, row in
                     zip(cols, self.iou, strict=True)]  # fmt: skip
        kept = _patch_rows(self.results[0].grid) if self.results else []
        for col, r in zip(cols, self.results, strict=True):
            ks = set(np.asarray(r.kept).tolist())
            for row in kept:
                row[col] = int(row["patch"] in ks)
        return {"comparison": self.rows, "agreement": agreement, "kept": kept}


def compare(image: np.ndarray, methods: list[str], *, keep: float, question: str | None = None,
            params: dict[str, dict] | None = None, model: str = "scene-vlm", progress=None) -> TokenComparison:  # fmt: skip
    """Several registered methods on one image at the same kept fraction (``params``: method -> its own
    parameters), with the IoU of their kept sets; cached by image fingerprint and settings.

    ``progress(frac, desc)`` moves once per method and per layer of each run. More than
    :data:`SMALL_COMPARE` methods not computed yet, or a model other than the scene VLM, take a heavy-job slot.
    """
    if len(methods or []) < 1:
        raise InputError("pick at least one method to compare")
    s = COMPARE.validate({"keep": keep, "question": (question or "").strip() or DEFAULT_QUESTION})
    for name in methods:
        get(name, family="tokens")  # unknown names fail before any work
    key = (fingerprint(image), list(methods), s, params or {}, model)
    tell = progress or (lambda frac, desc: None)

    def run_all() -> TokenComparison:
        res = []
        for i, m in enumerate(methods):
            lo, hi = i / len(methods), (i + 1) / len(methods)
            sub = lambda frac, desc, lo=lo, hi=hi: tell(lo + (hi - lo) * frac, desc)  # noqa: E731
            tell(lo, f"method {i + 1} of {len(methods)}: {m}")
            res.append(prune_image(image, method=m, keep=s["keep"], params=(params or {}).get(m),
                                   question=s["question"], model=model, progress=sub))  # fmt: skip
        rows = [{"method": r.method, "acts": PLACES.get(r.place, r.place), "kept tokens": len(r.kept),
                 "answer, pruned": r.answer_pruned, "answer, all tokens": r.answer_full,
                 "prefill GFLOPs": r.flops / 1e9, "prefill GFLOPs, all tokens": r.flops_full / 1e9}
                for r in res]  # fmt: skip
        prov = Provenance(method="compare", params={"methods": list(methods), **s, "model": model},
                          input_fingerprint=fingerprint(image), backend=res[0].provenance.backend,
                          timings={"total": sum(sum(r.provenance.timings.values()) for r in res)})  # fmt: skip
        return TokenComparison(provenance=prov, family="tokens", methods=list(methods), settings=s, rows=rows,
                               results=res, iou=iou_matrix([r.kept for r in res]), question=res[0].question)  # fmt: skip

    def compute() -> TokenComparison:
        vlm = _load(model, None, progress)
        if _heavy_model(vlm) or _missing(image, methods, s, params, model, vlm) > SMALL_COMPARE:
            from engine.vision.loading import heavy_once

            with heavy_once(f"token comparison ({len(methods)} methods)", expect_s=2.0 * len(methods),
                            progress=progress):  # fmt: skip
                return run_all()
        return run_all()

    return COMPARE_CACHE.get_or_compute(key, compute)


def _missing(image, methods, s, params, model, vlm) -> int:
    """How many of ``methods`` have no cached :func:`prune_image` result for this comparison yet."""
    img, _, _, qtext, _ = _inputs(vlm, image, s["question"])
    fp = fingerprint(img)
    n = 0
    for name in dict.fromkeys(methods):
        p = get(name, family="tokens").validate(dict((params or {}).get(name) or {}, keep=s["keep"]))
        n += (fp, name, p, qtext, 0, model, False) not in PRUNE_CACHE
    return n
