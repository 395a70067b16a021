"""Perplexity against the number of sublayers dropped, for several drop strategies on the same data.

The comparison behind the paper's headline (He et al., 2024, arXiv:2406.15786, Fig. 1/Table 2): dropping the
most redundant attention layers hurts far less than dropping the same number of MLPs or whole blocks, and
far less than dropping attention layers at random. All strategies share one similarity scan (one-shot) and the
same held-out windows, so the curves are directly comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from engine.layers.drop import DropPlan, dropped, perplexity, plan_drop
from engine.layers.scan import LayerScan
from engine.models import LoadedModel
from engine.registry import InputError
from engine.results import Provenance, Result, Stopwatch, fingerprint

__all__ = ["DropCurve", "drop_curve", "STRATEGIES"]

STRATEGIES = ("attn", "mlp", "block", "joint", "random-attn", "random-mlp", "random-block")


@dataclass
class DropCurve(Result):
    model: str = ""
    counts: list[int] = field(default_factory=list)
    perplexity: dict[str, list[float]] = field(default_factory=dict)  # strategy -> [len(counts)]
    dropped: dict[str, list[dict]] = field(default_factory=dict)  # strategy -> plan per count
    full_perplexity: float = 0.0
    seeds: list[int] = field(default_factory=list)

    def tables(self) -> dict[str, list[dict]]:
        rows = []
        for s, values in self.perplexity.items():
            for n, p, d in zip(self.counts, values, self.dropped[s]):
                rows.append({"strategy": s, "dropped": n, "perplexity": p, "layers": d})
        return {"curve": rows}


def drop_curve(
    loaded: LoadedModel,
    scan: LayerScan,
    heldout: torch.Tensor,
    *,
    strategies: Sequence[str] = ("attn", "mlp", "block", "random-attn"),
    counts: Sequence[int] = (0, 2, 4, 6, 8),
    seeds: Sequence[int] = (42,),
    progress: Callable[[float, str], None] | None = None,
) -> DropCurve:
    """Held-out perplexity after dropping ``n`` sublayers, for each strategy and each ``n`` in ``counts``.

    Random strategies are averaged over ``seeds`` (perplexity of each seed is kept in ``dropped``).
    """
    if loaded.kind != "causal":
        raise InputError("the perplexity curve needs a causal language model (this one is an encoder)")
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad:
        raise InputError(f"unknown strategies {bad}; choose from {list(STRATEGIES)}")
    counts = sorted(set(int(c) for c in counts))
    if counts and (counts[0] < 0 or counts[-1] > scan.n_layers):
        raise InputError(f"layer counts must be within 0..{scan.n_layers}")
    sw = Stopwatch()
    with sw("full"):
        full = perplexity(loaded, heldout)
    out: dict[str, list[float]] = {}
    plans: dict[str, list[dict]] = {}
    total = len(strategies) * len(counts)
    done = 0
    for s in strategies:
        out[s], plans[s] = [], []
        for n in counts:
            if n == 0:
                out[s].append(full)
                plans[s].append({})
            else:
                ps = []
                if s.startswith("random-"):
                    kind = s.split("-", 1)[1]
                    cands = [
                        plan_drop(loaded, None, strategy="random", n=n, random_kind=kind, seed=sd)
                        for sd in seeds
                    ]
                else:
                    cands = [plan_drop(loaded, None, strategy=s, n=n, scan=scan)]
                for plan in cands:
                    with sw(s), dropped(loaded.model, plan):
                        ps.append(perplexity(loaded, heldout))
                out[s].append(float(sum(ps) / len(ps)))
                plans[s].append(_plan_dict(cands[0]) | ({"per_seed": ps} if len(ps) > 1 else {}))
            done += 1
            if progress is not None:
                progress(done / total, f"{s}: {n} dropped")
    prov = Provenance(
        method="drop-curve",
        params={"strategies": list(strategies), "counts": counts, "seeds": list(seeds)},
        input_fingerprint=fingerprint(loaded.name, heldout.numpy(), scan.provenance.input_fingerprint),
        seed=seeds[0] if seeds else None,
        backend=loaded.device,
        timings=sw.timings,
    )
    return DropCurve(
        provenance=prov,
        model=loaded.name,
        counts=counts,
        perplexity=out,
        dropped=plans,
        full_perplexity=full,
        seeds=list(seeds),
    )


def _plan_dict(plan: DropPlan) -> dict:
    return {k: list(getattr(plan, k)) for k in ("attn", "mlp", "block") if getattr(plan, k)}
