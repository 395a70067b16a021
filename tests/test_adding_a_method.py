"""Adding a method = one function + one registration (docs/architecture.md, worked example).

A toy drop rule registered here, in the test file, with no other edit, appears in the Layer Redundancy tab's
ranking dropdown, in `redex layers --drop`, in `redex methods --json` and in the drop-curve choices, and runs
through the same engine call the tab and the CLI make.
"""

from __future__ import annotations

import json

import pytest

from engine.layers.drop import DropPlan
from engine.registry import Param, by_family, register, unregister

TOY = "last-attn-drop"


@pytest.fixture
def toy_method():
    by_family("layers")  # the family first, so the toy registers after the real methods (display order)

    @register(TOY, family="layers", paper=None, role="drop", acts_at="attn", facts={"label": "last-attn"},
              summary="Drop the attention sublayers of the last n layers (a toy rule for this test).",
              params=[Param("n", 2, low=0, high=64, label="Sublayers to drop")])  # fmt: skip
    def last_attn_drop(loaded, windows, *, n=2, scan=None, progress=None):
        return DropPlan(attn=tuple(range(loaded.n_layers - n, loaded.n_layers)), strategy=TOY)

    yield last_attn_drop
    unregister(TOY)


def _dropdowns(blocks):
    import gradio as gr

    return [b for b in blocks.blocks.values() if isinstance(b, gr.Dropdown)]


def test_a_registered_method_appears_in_the_tab_the_cli_and_the_method_list(toy_method, capsys):
    import gradio as gr

    from app.cli import build_parser, main
    from app.tabs import layers as tab
    from engine.layers.curve import curve_choices

    with gr.Blocks() as blocks:
        tab.build_tab()
    ranking = [d for d in _dropdowns(blocks) if d.label == "Ranking"]
    assert ranking and TOY in [c[0] for c in ranking[0].choices]

    sub = build_parser()._subparsers._group_actions[0].choices["layers"]
    drop = next(a for a in sub._actions if "--drop" in a.option_strings)
    assert TOY in drop.choices

    assert main(["methods", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)["methods"]}
    assert listed[TOY]["family"] == "layers" and listed[TOY]["role"] == "drop"
    assert listed[TOY]["parameters"][0]["high"] == 64

    assert curve_choices()["last-attn"] == (TOY, {})


@pytest.mark.slow
def test_the_new_method_runs_through_the_engine_call_the_tab_makes(toy_method):
    from engine.layers.pipeline import ScanRequest, drop_plan

    req = ScanRequest(samples=2, seq_len=32)
    plan = drop_plan(
        req, TOY, {"n": 3, "iterative": False, "seed": 7}
    )  # controls it does not take are dropped
    assert plan.attn == (27, 28, 29) and not plan.mlp and not plan.block
    with pytest.raises(Exception, match="must be <= 64"):
        drop_plan(req, TOY, {"n": 65})
