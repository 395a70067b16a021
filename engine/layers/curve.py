"""Perplexity against the number of sublayers dropped, for several drop methods on the same data.

The comparison behind the paper's headline (He et al., 2024, arXiv:2406.15786, Fig. 1/Table 2): dropping the
most redundant attention layers hurts far less than dropping the same number of MLPs or whole blocks, and
far less than dropping attention layers at random. All methods share one similarity scan (one-shot) and the
same held-out windows, so the curves are directly comparable.

The curve's entries are registered drop methods with their parameters; an entry is named by its display
label (:func:`engine.layers.drop.drop_label`): ``attn`` is ``attn-drop``, ``random-mlp`` is ``random-drop``
with ``kind="mlp"``. :func:`curve_choices` lists every entry the registry offers (a method with a ``kind``
choice gives one entry per kind), :func:`compare` is the family's comparison, cached by input fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.cache import ResultCache
from engine.layers.cost import admitted, perplexity_bytes
from engine.layers.drop import DropPlan, drop_label, dropped, heldout_info, perplexity
from engine.layers.pipeline import ScanRequest, eval_windows, heldout_source, run_scan
from engine.layers.scan import LayerScan
from engine.models import LoadedModel
from engine.registry import InputError, Param, Settings, by_family, get
from engine.results import ComparisonResult, Provenance, Stopwatch, fingerprint, from_dict

__all__ = ["DropCurve", "CURVE", "DEFAULT_CURVE", "curve_choices", "compare", "drop_curve", "evaluations"]

CURVE = Settings(
    "drop curve",
    (
        Param("max_n", 8, low=1, high=64, help="largest number of sublayers dropped", label="Max dropped"),
        Param("step", 2, low=1, high=16, help="step between dropped counts", label="Step"),
        Param("seeds", 1, low=1, high=5, help="seeds the random baselines are averaged over",
              label="Random seeds"),
    ),
)  # fmt: skip

DEFAULT_CURVE = ("attn", "mlp", "block", "random-attn")
_FIRST_SEED = 42  # seeds are 42, 43, ... (the random-drop default first)


def curve_choices() -> dict[str, tuple[str, dict[str, Any]]]:
    """Label -> (registered drop method, its parameters) for every entry the curve can draw, in registry
    order; a method whose ``kind`` parameter has choices gives one entry per kind."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for m in by_family("layers", role="drop"):
        kinds = [p for p in m.params if p.name == "kind" and p.choices]
        for params in [{"kind": k} for k in kinds[0].choices] if kinds else [{}]:
            out[drop_label(m.name, params)] = (m.name, params)
    return out


@dataclass
class DropCurve(ComparisonResult):
    model: str = ""
    counts: list[int] = field(default_factory=list)
    perplexity: dict[str, list[float]] = field(default_factory=dict)  # label -> [len(counts)]
    dropped: dict[str, list[dict]] = field(default_factory=dict)  # label -> plan per count
    full_perplexity: float = 0.0
    seeds: list[int] = field(default_factory=list)
    heldout: dict = field(default_factory=dict)  # the evaluation windows: windows, tokens_per_window, source

    def curve_rows(self) -> list[dict]:
        rows = []
        for s, values in self.perplexity.items():
            for n, p, d in zip(self.counts, values, self.dropped[s]):
                rows.append({"strategy": s, "dropped": n, "perplexity": p, "layers": d})
        return rows

    def tables(self) -> dict[str, list[dict]]:
        return {"curve": self.rows or self.curve_rows()}


def drop_curve(
    loaded: LoadedModel,
    scan: LayerScan,
    heldout: torch.Tensor,  # [N, T] held-out token windows
    *,
    strategies: Sequence[str] = DEFAULT_CURVE,
    counts: Sequence[int] = (0, 2, 4, 6, 8),
    seeds: Sequence[int] = (_FIRST_SEED,),
    heldout_source: str = "",
    progress: Callable[[float, str], None] | None = None,
) -> DropCurve:
    """Held-out perplexity after dropping ``n`` sublayers, for each entry (a :func:`curve_choices` label)
    and each ``n`` in ``counts``.

    Methods with a ``seed`` parameter (the random baselines) are averaged over ``seeds`` (perplexity of each
    seed is kept in ``dropped``); the others are one-shot from ``scan``. ``progress`` moves layer by layer
    through every evaluation; each drop is restored (and the model's lock released) before the next, and
    when ``progress`` raises.
    """
    if loaded.kind != "causal":
        raise InputError("the perplexity curve needs a causal language model (this one is an encoder)")
    choices = curve_choices()
    bad = [s for s in strategies if s not in choices]
    if bad:
        raise InputError(f"unknown strategies {bad}; choose from {list(choices)}")
    counts = sorted(set(int(c) for c in counts))
    if counts and (counts[0] < 0 or counts[-1] > scan.n_layers):
        raise InputError(f"layer counts must be within 0..{scan.n_layers}")
    sw = Stopwatch()
    total = evaluations(strategies, counts, len(seeds))
    done = 0

    def measure(desc: str) -> float:
        nonlocal done
        p = perplexity(loaded, heldout, progress=_stage(progress, done, total), desc=desc)
        done += 1
        return p

    with sw("full"):
        full = measure(f"full model (evaluation 1 of {total})")
    out: dict[str, list[float]] = {}
    plans: dict[str, list[dict]] = {}
    for s in strategies:
        m = get(choices[s][0], family="layers")
        seeded = any(p.name == "seed" for p in m.params)
        out[s], plans[s] = [], []
        for n in counts:
            if n == 0:
                out[s].append(full)
                plans[s].append({})
                continue
            ps = []
            cands = [
                m(loaded, None, scan=scan, **m.validate({**choices[s][1], "n": n, **seed}))
                for seed in ([{"seed": sd} for sd in seeds] if seeded else [{}])
            ]
            for plan in cands:
                with sw(s), dropped(loaded.model, plan, progress=progress):
                    ps.append(measure(f"{s}: {n} dropped (evaluation {done + 1} of {total})"))
            out[s].append(float(sum(ps) / len(ps)))
            plans[s].append(_plan_dict(cands[0]) | ({"per_seed": ps} if len(ps) > 1 else {}))
    prov = Provenance(
        method="drop-curve",
        params={"strategies": list(strategies), "counts": counts, "seeds": list(seeds)},
        input_fingerprint=fingerprint(loaded.name, heldout.numpy(), scan.provenance.input_fingerprint),
        seed=seeds[0] if seeds else None,
        backend=loaded.device,
        timings=sw.timings,
    )
    curve = DropCurve(
        provenance=prov,
        family="layers",
        methods=[choices[s][0] for s in strategies],
        settings={"entries": {s: {"method": choices[s][0], "params": choices[s][1]} for s in strategies}},
        model=loaded.name,
        counts=counts,
        perplexity=out,
        dropped=plans,
        full_perplexity=full,
        seeds=list(seeds),
        heldout=heldout_info(heldout, heldout_source),
    )
    curve.rows = curve.curve_rows()
    return curve


def evaluations(strategies: Sequence[str], counts: Sequence[int], n_seeds: int) -> int:
    """Perplexity passes a curve runs: the full model once, then each entry at each non-zero count (a seeded
    entry once per seed)."""
    choices = curve_choices()
    nonzero = sum(1 for c in set(counts) if c > 0)
    total = 1
    for s in strategies:
        seeded = s in choices and any(p.name == "seed" for p in get(choices[s][0], family="layers").params)
        total += nonzero * (n_seeds if seeded else 1)
    return total


def _stage(progress, done: int, total: int):
    """Progress of evaluation ``done`` (0-based) of ``total``, its own fraction mapped into its share."""
    if progress is None:
        return None
    return lambda frac, desc: progress((done + frac) / total, desc)


def _plan_dict(plan: DropPlan) -> dict:
    return {k: list(getattr(plan, k)) for k in ("attn", "mlp", "block") if getattr(plan, k)}


# version 2: the curve records its held-out windows (``heldout``) for the caption
_CURVES = ResultCache("layers-curve", version=2, maxsize=16, load=lambda d: from_dict(DropCurve, d))


def compare(
    req: ScanRequest,
    methods: Sequence[str],
    settings: dict[str, Any] | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> DropCurve:
    """The family's comparison: the drop curve of ``methods`` (:func:`curve_choices` labels) on the scan and
    held-out text of ``req``, with :data:`CURVE` settings (``max_n``, ``step``, ``seeds``).

    Cached by input fingerprint (scan input, held-out windows, entries, settings) in memory and on disk. It
    is measured on the same held-out windows as Apply (:func:`engine.layers.pipeline.eval_windows`); a curve
    of more than a few evaluations runs in a heavy slot.
    """
    if not methods:
        raise InputError("pick at least one strategy to compare")
    methods = list(methods)
    choices = curve_choices()
    bad = [m for m in methods if m not in choices]
    if bad:
        raise InputError(f"unknown strategies {bad}; choose from {list(choices)}")
    s = CURVE.validate(settings)
    loaded, corpus, scan = run_scan(req, progress=progress)
    if not s["step"] <= s["max_n"] <= scan.n_layers:
        raise InputError(f"need 1 <= step <= max dropped <= {scan.n_layers}")
    heldout = eval_windows(loaded, corpus, req)
    counts = list(range(0, s["max_n"] + 1, s["step"]))
    seeds = [_FIRST_SEED + i for i in range(s["seeds"])]
    key = (scan.provenance.input_fingerprint, loaded.name, heldout.numpy(), methods, counts, seeds)

    def compute() -> DropCurve:
        n, t = heldout.shape
        total = evaluations(methods, counts, len(seeds))
        what = f"a drop curve of {loaded.name} ({total} perplexity passes over {n} x {t} tokens)"
        with admitted(
            what, loaded, tokens=total * n * t, nbytes=perplexity_bytes(loaded, n, t), progress=progress
        ):
            return drop_curve(
                loaded, scan, heldout, strategies=methods, counts=counts, seeds=seeds,
                heldout_source=heldout_source(corpus), progress=progress,
            )  # fmt: skip

    return _CURVES.get_or_compute(key, compute)
