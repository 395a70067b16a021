"""What `redex layers` prints: the scan's per-layer similarities and, when a drop method is given, what the
drop costs (LLM-Drop, He et al., 2024, arXiv:2406.15786).

:class:`LayersReport` wraps the two engine results (the :class:`~engine.layers.scan.LayerScan` and the
:class:`~engine.layers.drop.DropEval`) that the tab's downloads are written from, so the command's JSON and
the tab's files hold the same numbers; :func:`layers_report` runs the workflow of :mod:`engine.layers.pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.layers.drop import DropEval, DropPlan
from engine.layers.pipeline import ScanRequest, drop_plan, evaluate_plan, run_scan
from engine.layers.scan import LayerScan
from engine.results import Result, to_jsonable

__all__ = ["LayersReport", "layers_report", "SCAN_COLUMNS", "CLI_NEW_TOKENS"]

SCAN_COLUMNS = ("index", "attn_similarity", "mlp_similarity", "block_similarity")
CLI_NEW_TOKENS = 16  # the command measures generation speed on a short sample


@dataclass
class LayersReport(Result):
    scan: LayerScan | None = None
    plan: DropPlan | None = None
    evaluation: DropEval | None = None  # only when a drop method was given

    def to_dict(self) -> dict[str, Any]:
        s = self.scan
        out: dict[str, Any] = {
            "model": s.model,
            "layout": s.layout,
            "samples": s.samples,
            "seq_len": s.seq_len,
            "tokens": s.tokens,
            "text_source": s.text_source,
            "layers": [{k: r[k] for k in SCAN_COLUMNS} for r in s.tables()["layers"]],
            "provenance": s.provenance,
        }
        ev, plan = self.evaluation, self.plan
        if ev is not None and plan is not None:
            out["dropped"] = sorted(set(plan.attn) | set(plan.mlp) | set(plan.block))
            out["dropped_by_kind"] = ev.dropped
            out["strategy"] = plan.strategy
            out[ev.metric] = {"full": ev.full[ev.metric], "dropped": ev.pruned[ev.metric]}
            out["tokens_per_s"] = {
                "full": ev.full.get("tokens_per_s"),
                "dropped": ev.pruned.get("tokens_per_s"),
            }
            out["params_removed"] = ev.params_removed
            out["kv_saving"] = ev.kv_saving
        return to_jsonable(out)

    def tables(self) -> dict[str, list[dict]]:
        tables = {"layers": self.scan.tables()["layers"]}
        if self.evaluation is not None:
            tables.update(self.evaluation.tables())
        return tables


def layers_report(
    req: ScanRequest,
    method: str | None = None,
    values: dict | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> LayersReport:
    """The scan of ``req`` and, with ``method`` (a registered drop method), its plan and evaluation."""
    _, _, scan = run_scan(req, progress=progress)
    if method is None:
        return LayersReport(provenance=scan.provenance, scan=scan)
    plan = drop_plan(req, method, values)
    ev = evaluate_plan(req, plan, {"max_new_tokens": CLI_NEW_TOKENS})
    return LayersReport(provenance=scan.provenance, scan=scan, plan=plan, evaluation=ev)
