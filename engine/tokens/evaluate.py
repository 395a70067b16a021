"""Accuracy of the scene VLM against kept fraction, per method, with random controls at the same place.

For every method and kept fraction: answer accuracy on the first ``n`` validation scenes (six questions each),
the share of objects that keep at least one patch (the generator knows each object's patches), FLOPs of one
prefill (from the token count each layer saw), and for methods that prune inside the encoder the scene ViT's
own count accuracy with the same pruning. Controls: the same place, the same counts, random choice, over
several seeds (mean and standard deviation). Methods that act before the LM share one control (random before
the LM); FlowCut, PyramidDrop and FastV each get their own.

:func:`evaluate` returns a :class:`TokenEvaluation` (a :class:`~engine.results.ComparisonResult`: one row per
method and kept fraction; ``.table()`` is the JSON the tab draws) and :func:`accuracy_at` an
:class:`AccuracyReport` (``redex tokens --eval``); both are cached by model, settings and method
(:class:`~engine.cache.ResultCache`; the accuracy also on disk). Where a method acts, its random control and how
the table names that control are the method's registration (``acts_at``, ``control``, ``facts``).

The shipped table is ``assets/tokens/pareto.json`` (:func:`load_table`); ``python -m engine.tokens.evaluate``
recomputes it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.cache import ResultCache
from engine.registry import Param, Settings, by_family, get
from engine.results import ComparisonResult, Provenance, Result, from_dict
from engine.tokens import core
from engine.tokens.methods import control_extras

__all__ = [
    "CONFIGS", "TABLE_PATH", "EVAL", "evaluate", "accuracy_at", "load_table", "run_method", "TokenEvaluation",
    "AccuracyReport", "in_model_controls", "shipped_evaluation",
]  # fmt: skip

TABLE_PATH = Path(__file__).resolve().parents[2] / "assets" / "tokens" / "pareto.json"
KEEPS = (0.5, 0.25, 0.11)
SEEDS = (0, 1, 2)
# (label, method, params): what the table shows; the label names the layer a score is read from
CONFIGS = (
    ("cls-attention L6", "cls-attention", {"layer": -1}),
    ("cls-attention L3", "cls-attention", {"layer": 3}),
    ("turbo", "turbo", {}),
    ("llavolta", "llavolta", {}),
    ("flowcut", "flowcut", {}),
    ("flowcut-select", "flowcut-select", {}),
    ("pyramiddrop", "pyramiddrop", {}),
    ("fastv", "fastv", {}),
)
# the accuracy check's own setting (``redex tokens --eval --n``)
EVAL = Settings(
    "token accuracy", (Param("n", 16, low=1, high=2000, help="validation scenes (6 questions each)"),)
)


def in_model_controls() -> tuple[str, ...]:
    """Methods whose random control is their own (same layers / stages inside a model): their controls are run
    apart; every method that acts before the LM shares random-keep as its control."""
    return tuple(m.name for m in by_family("tokens") if m.fact("own_control"))


@dataclass
class TokenEvaluation(ComparisonResult):
    """The Pareto table: ``rows`` (one per method and kept fraction, with its control's numbers), the full-token
    reference and the run's size; :meth:`table` is the JSON of ``assets/tokens/pareto.json``."""

    model: str = ""
    split: str = "val"
    n_scenes: int = 0
    n_questions: int = 0
    seeds: list[int] = field(default_factory=list)
    keeps: list[float] = field(default_factory=list)
    full: dict = field(default_factory=dict)
    seconds: float = 0.0
    backend: str = "cpu"

    def tables(self) -> dict[str, list[dict]]:
        """``comparison``: one row per method and kept fraction (every row with every column; the random rows
        have no ``registered`` method or ViT count control), ``all_tokens``: the reference."""
        cols = list(dict.fromkeys(k for r in self.rows for k in r))
        return {"comparison": [{c: r.get(c) for c in cols} for r in self.rows], "all_tokens": [self.full]}

    def table(self) -> dict:
        return {"model": self.model, "split": self.split, "n_scenes": self.n_scenes,
                "n_questions": self.n_questions, "seeds": self.seeds, "keeps": self.keeps, "full": self.full,
                "rows": self.rows, "seconds": self.seconds, "backend": self.backend}  # fmt: skip


@dataclass
class AccuracyReport(Result):
    """Answer accuracy with one method at one kept fraction and with all tokens (``redex tokens --eval``)."""

    method: str = ""
    keep: float = 1.0
    n_scenes: int = 0
    n_questions: int = 0
    accuracy: float = 0.0
    accuracy_full: float = 0.0
    objects_kept: float = (
        1.0  # share of objects with a kept patch (1 for a pooling method: nothing is dropped)
    )

    def tables(self) -> dict[str, list[dict]]:
        keys = ("method", "keep", "n_scenes", "n_questions", "accuracy", "accuracy_full", "objects_kept")
        return {"accuracy": [{k: getattr(self, k) for k in keys}]}


EVAL_CACHE = ResultCache("tokens-evaluate", version=1, maxsize=4)
ACCURACY_CACHE = ResultCache("tokens-accuracy", version=1, load=lambda d: from_dict(AccuracyReport, d))


def run_method(vlm, pixels, questions, name: str, keep: float, params: dict | None = None, *, control=False,
               seed: int = 0, salt: int = 0, vit_heads: bool = False) -> list[core.RunOut]:  # fmt: skip
    """Run one registered method (or its control) on a batch; per-image methods run image by image."""
    m = get(name, family="tokens")
    p = m.validate(dict(params or {}, keep=keep))
    pol = m(vlm, control=control, seed=seed, salt=salt, **p)
    if not pol.info.get("per_image"):
        return [core.run_vlm(vlm, pixels, questions, pol, vit_heads=vit_heads)]
    outs = []
    for i in range(len(pixels)):
        extra = control_extras(m, vlm, pixels[i : i + 1], p["keep"], control=control)  # its own counts here
        pol = m(vlm, control=control, seed=seed, salt=salt * 1000 + i, **p, **extra)
        outs.append(core.run_vlm(vlm, pixels[i : i + 1], questions[i : i + 1], pol, vit_heads=vit_heads))
    return outs


def _objects_kept(cov: np.ndarray, kept: np.ndarray, Q: int) -> float:
    """Share of (visible) objects with a kept patch; ``cov`` [B, K, N], ``kept`` [B*Q, k] patch indices."""
    B, K, N = cov.shape
    mask = np.zeros((len(kept), N), bool)
    np.put_along_axis(mask, kept, True, 1)
    c = np.repeat(cov > 0, Q, 0)  # [BQ, K, N]
    seen = c.any(2)
    hit = (c & mask[:, None]).any(2) & seen
    return float(hit.sum() / max(seen.sum(), 1))


def evaluate(vlm, *, n: int = 64, keeps=KEEPS, seeds=SEEDS, configs=CONFIGS, batch: int = 16, log=print,
             controls: tuple[str, ...] | None = None, progress=None) -> TokenEvaluation:  # fmt: skip
    """The Pareto table (see the module docstring) on validation scenes 0..n-1; ``controls``: the in-model
    methods whose same-place random control is run (default :func:`in_model_controls`; random before the LM
    always is). Cached by model and settings; runs in a heavy-job slot; ``progress(frac, desc)`` after every
    method of every batch (it may raise to stop the run)."""
    from engine.vision.loading import heavy_once

    controls = in_model_controls() if controls is None else tuple(controls)
    key = (vlm.name, n, list(keeps), list(seeds), [list(c) for c in configs], batch, list(controls))

    def compute() -> TokenEvaluation:
        with heavy_once(f"token accuracy table ({n} scenes)", expect_s=2.0 * n, progress=progress):
            return _evaluate(vlm, n, keeps, seeds, configs, batch, log, controls, progress)

    return EVAL_CACHE.get_or_compute(key, compute)


def _evaluate(vlm, n, keeps, seeds, configs, batch, log, controls, progress=None) -> TokenEvaluation:
    from engine.vision import scenes

    runs: dict[tuple, dict] = {}
    pools = {
        label for label, m, _ in configs if get(m, family="tokens").fact("pools")
    }  # no kept set to score
    in_vit = {
        m for _, m, _ in configs if get(m, family="tokens").acts_at == "vit"
    }  # the ViT's own count head

    def add(key, outs, ans, cov, Q, vit_true=None):
        pred = np.concatenate([o.logits.argmax(-1).numpy() for o in outs])
        kept = [o.kept for o in outs]
        rec = runs.setdefault(key, {"correct": 0, "total": 0, "obj": [], "flops": [], "vit": [], "k": []})
        rec["correct"] += int((pred == ans).sum())
        rec["total"] += len(ans)
        if key[0] != "full" and not (key[0] in pools and not key[2]):
            rows = np.concatenate(kept)
            rec["obj"].append((_objects_kept(cov, rows, Q), len(cov)))
        else:
            rec["obj"].append((1.0, len(cov)))
        rec["flops"] += [core.run_cost(vlm, o)["flops"] for o in outs]
        rec["k"].append(int(outs[0].lm_lengths[-1] - 1 - scenes.QLEN))
        if vit_true is not None and outs[0].vit_logits is not None:
            cnt = torch.cat([o.vit_logits["count"] for o in outs]).argmax(-1).numpy()
            rec["vit"].append(((cnt == vit_true).sum(), len(vit_true)))

    t0 = time.perf_counter()
    for s in range(0, n, batch):
        b = scenes.make_batch("val", s, min(batch, n - s))
        px = vlm.encoder.to_pixels(b.images)
        ans = b.answers.reshape(-1)
        cov = b.coverage.numpy()
        Q = b.questions.shape[1]
        vt = b.present.sum(1)
        add(
            ("full", 1.0, False, 0),
            [core.run_vlm(vlm, px, b.questions, None, vit_heads=True)],
            ans,
            cov,
            Q,
            vt,
        )
        for keep in keeps:
            for seed in seeds:
                add(("random", keep, True, seed), run_method(vlm, px, b.questions, "random-keep", keep, seed=seed, salt=s),
                    ans, cov, Q)  # fmt: skip
                for m in controls:
                    outs = run_method(vlm, px, b.questions, m, keep, control=True, seed=seed, salt=s,
                                      vit_heads=m in in_vit)  # fmt: skip
                    add((m, keep, True, seed), outs, ans, cov, Q, vt if m in in_vit else None)
            for label, m, params in configs:
                outs = run_method(vlm, px, b.questions, m, keep, params, vit_heads=m in in_vit)
                add((label, keep, False, 0), outs, ans, cov, Q, vt if m in in_vit else None)
                if progress is not None:
                    progress(s / n, f"scenes {s}..{s + len(b) - 1} of {n}: {label} at keep {keep}")
        log(f"scenes {s + len(b)}/{n}  {time.perf_counter() - t0:.0f} s")

    def stats(key):
        r = runs[key]
        obj = sum(v * w for v, w in r["obj"]) / sum(w for _, w in r["obj"])
        vit = sum(c for c, _ in r["vit"]) / sum(t for _, t in r["vit"]) if r["vit"] else None
        return {"accuracy": r["correct"] / r["total"], "objects_kept": obj, "flops": float(np.mean(r["flops"])),
                "vit_count_accuracy": vit, "tokens": int(np.median(r["k"]))}  # fmt: skip

    full = stats(("full", 1.0, False, 0))
    table = []
    for keep in keeps:
        ctl = {}
        for c in ("random", *controls):
            m = c
            st = [stats((m, keep, True, sd)) for sd in seeds]
            ctl[c] = {
                "accuracy_mean": float(np.mean([x["accuracy"] for x in st])),
                "accuracy_std": float(np.std([x["accuracy"] for x in st])),
                "objects_kept_mean": float(np.mean([x["objects_kept"] for x in st])),
                "flops": st[0]["flops"],
                "vit_count_accuracy": st[0]["vit_count_accuracy"] if c in in_vit else None,
            }
        table.append({"method": "random", "place": "pre-lm", "keep": keep, **_row(stats(("random", keep, True, 0))),
                      "accuracy": ctl["random"]["accuracy_mean"], "accuracy_std": ctl["random"]["accuracy_std"],
                      "objects_kept": ctl["random"]["objects_kept_mean"], "control": "random",
                      "control_accuracy_mean": ctl["random"]["accuracy_mean"],
                      "control_accuracy_std": ctl["random"]["accuracy_std"],
                      "control_objects_kept": ctl["random"]["objects_kept_mean"]})  # fmt: skip
        for label, m, _ in configs:
            st = stats((label, keep, False, 0))
            c = m if m in controls else "random"
            reg = get(m, family="tokens")
            table.append({"method": label, "registered": m, "place": reg.acts_at, "keep": keep, **_row(st),
                          "control": reg.fact("control_label"), "control_accuracy_mean": ctl[c]["accuracy_mean"],
                          "control_accuracy_std": ctl[c]["accuracy_std"],
                          "control_objects_kept": ctl[c]["objects_kept_mean"],
                          "control_vit_count_accuracy": ctl[c]["vit_count_accuracy"]})  # fmt: skip
    backend = "cpu" if not torch.cuda.is_available() else "cuda"
    seconds = time.perf_counter() - t0
    prov = Provenance(method="evaluate", params={"n": n, "keeps": list(keeps), "seeds": list(seeds),
                                                 "controls": list(controls)},
                      input_fingerprint=f"{vlm.name}/val/0..{n - 1}", backend=backend, timings={"total": seconds})  # fmt: skip
    return TokenEvaluation(
        provenance=prov, family="tokens", methods=[label for label, _, _ in configs], settings=prov.params,
        rows=table, model=vlm.name, split="val", n_scenes=n, n_questions=runs[("full", 1.0, False, 0)]["total"],
        seeds=list(seeds), keeps=list(keeps), full={"keep": 1.0, **_row(full)}, seconds=seconds, backend=backend,
    )  # fmt: skip


def _row(st: dict) -> dict:
    return {"accuracy": st["accuracy"], "objects_kept": st["objects_kept"], "flops": st["flops"],
            "tokens": st["tokens"], "vit_count_accuracy": st["vit_count_accuracy"]}  # fmt: skip


def accuracy_at(
    vlm, name: str, keep: float, params: dict | None = None, *, n: int = 16, batch: int = 16, progress=None
) -> AccuracyReport:
    """Accuracy with ``name`` at ``keep`` and with all tokens on validation scenes 0..n-1 (the CLI's --eval);
    cached by model, method, parameters and ``n`` (in memory and on disk). More than one batch of scenes runs
    in a heavy-job slot; ``progress(frac, desc)`` after every batch."""
    from engine.vision.loading import heavy_once

    m = get(name, family="tokens")
    p = m.validate(dict(params or {}, keep=keep))
    n = EVAL.validate({"n": n})["n"]
    key = (vlm.name, name, p, n, batch)

    def compute() -> AccuracyReport:
        if n <= batch:
            return _accuracy_at(vlm, m, p, n, batch, progress)
        with heavy_once(f"token accuracy ({n} scenes)", expect_s=0.5 * n, progress=progress):
            return _accuracy_at(vlm, m, p, n, batch, progress)

    return ACCURACY_CACHE.get_or_compute(key, compute)


def _accuracy_at(vlm, m, p: dict, n: int, batch: int, progress=None) -> AccuracyReport:
    from engine.vision import scenes

    t_start = time.perf_counter()
    name, keep = m.name, p["keep"]
    params = {k: v for k, v in p.items() if k != "keep"}
    c = f = t = 0
    obj = []
    for s in range(0, n, batch):
        b = scenes.make_batch("val", s, min(batch, n - s))
        px = vlm.encoder.to_pixels(b.images)
        ans = b.answers.reshape(-1)
        full = core.run_vlm(vlm, px, b.questions).logits.argmax(-1).numpy()
        outs = run_method(vlm, px, b.questions, name, keep, params, salt=s)
        pred = np.concatenate([o.logits.argmax(-1).numpy() for o in outs])
        c += int((pred == ans).sum())
        f += int((full == ans).sum())
        t += len(ans)
        if not m.fact("pools"):
            obj.append(_objects_kept(b.coverage.numpy(), np.concatenate([o.kept for o in outs]), 6))
        if progress is not None:
            progress((s + len(b)) / n, f"{name} at keep {keep}: scenes {s + len(b)} of {n}")
    prov = Provenance(method=name, params=p | {"n": n}, input_fingerprint=f"{vlm.name}/val/0..{n - 1}",
                      backend="cpu", timings={"total": time.perf_counter() - t_start})  # fmt: skip
    return AccuracyReport(provenance=prov, method=name, keep=keep, n_scenes=n, n_questions=t, accuracy=c / t,
                          accuracy_full=f / t, objects_kept=float(np.mean(obj)) if obj else 1.0)  # fmt: skip


def shipped_evaluation(path: Path | None = None) -> TokenEvaluation | None:
    """The shipped Pareto table (:func:`load_table`) as the :class:`TokenEvaluation` that computed it (its rows
    and all-tokens reference, for the tab's CSV / JSON download); ``None`` if there is none."""
    t = load_table(path)
    if t is None:
        return None
    p = Path(path or TABLE_PATH)
    params = {"n": t["n_scenes"], "keeps": t["keeps"], "seeds": t["seeds"]}
    prov = Provenance(method="evaluate", params=params, input_fingerprint=f"{t['model']}/{t['split']}/0..{t['n_scenes'] - 1}",
                      backend=t.get("backend", "cpu"), timings={"total": float(t.get("seconds", 0.0))},
                      created=p.stat().st_mtime, host=f"shipped table {p.name} (computed offline)")  # fmt: skip
    methods = [m for m in dict.fromkeys(r["method"] for r in t["rows"]) if m != "random"]
    return TokenEvaluation(
        provenance=prov, family="tokens", methods=methods, settings=params, rows=t["rows"], model=t["model"],
        split=t["split"], n_scenes=t["n_scenes"], n_questions=t["n_questions"], seeds=list(t["seeds"]),
        keeps=list(t["keeps"]), full=t["full"], seconds=float(t.get("seconds", 0.0)), backend=t.get("backend", "cpu"),
    )  # fmt: skip


def load_table(path: Path | None = None) -> dict | None:
    p = Path(path or TABLE_PATH)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def latency_table(vlm, keeps=(1.0, 0.5, 0.25, 0.11), repeats: int = 7) -> dict:
    """Median batch-1 prefill latency (ms) of each method at each kept fraction, on validation scene 0."""
    from engine.vision import scenes

    b = scenes.make_batch("val", 0, 1)
    px = vlm.encoder.to_pixels(b.images)
    q = b.questions[:, :1]
    out = {}
    names = [("full", None, {})] + [(lab, m, p) for lab, m, p in CONFIGS] + [("random", "random-keep", {})]
    for label, m, params in names:
        for keep in keeps if m else (1.0,):
            if m and keep >= 1:
                continue
            ts = []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                if m is None:
                    core.run_vlm(vlm, px, q)
                else:
                    run_method(vlm, px, q, m, keep, params)
                ts.append((time.perf_counter() - t) * 1e3)
            out[f"{label}@{keep}"] = float(np.median(ts[1:]))
    return out


def main(argv=None) -> None:
    import argparse

    from engine.vision.loading import load_vlm

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--out", default=str(TABLE_PATH))
    ap.add_argument(
        "--check-flowcut",
        action="store_true",
        help="only keep 0.25: FlowCut, CLS attention (L3, L6) and their controls (a larger-n check)",
    )
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    vlm = load_vlm("scene-vlm")
    if a.check_flowcut:
        cfg = tuple(c for c in CONFIGS if c[1] in ("flowcut", "flowcut-select", "cls-attention"))
        res = evaluate(vlm, n=a.n, keeps=(0.25,), configs=cfg, controls=("flowcut",)).table()
    else:
        res = evaluate(vlm, n=a.n).table()
        res["latency_ms"] = latency_table(vlm)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
