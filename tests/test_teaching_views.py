"""Examples, links and presentation mode without a browser (issue 13): every example names inputs its tab
has and a button that runs a handler; a link of each tab's default view restores exactly those values; the
presentation layout is 16:9 with large type and colour-blind palettes, and is undone exactly."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from app import links, presentation
from app.examples import EXAMPLES, find_action, values_for
from visualizers.presentation import PRESENT_HEIGHT, PRESENT_WIDTH, plain
from visualizers.presentation import presentation as present
from visualizers.style import OKABE_ITO, base_layout


@pytest.fixture(scope="module")
def built():
    from app.main import build_app

    demo = build_app()
    tabs = {b.id: b for b in demo.blocks.values() if hasattr(b, "_redex_link_inputs")}
    return demo, tabs


def test_every_tab_has_three_examples_that_its_inputs_accept(built):
    demo, tabs = built
    for tab_id, tab in tabs.items():
        found = [e for e in EXAMPLES if e.tab == tab_id]
        assert tab_id == "overview" or len(found) >= 3, tab_id
        for ex in found:
            carried, _ = tab._redex_link_inputs
            assert len(values_for(ex, carried)) == len(ex.inputs)
            assert find_action(demo, tab, ex.action).fn is not None


def test_a_link_restores_each_tabs_values_and_names_what_it_cannot_carry(built):
    demo, tabs = built
    inputs = {t: tab._redex_link_inputs for t, tab in tabs.items()}
    for tab_id, (carried, uncarried) in inputs.items():
        values = [c.value for c in carried.values()] + ["/tmp/upload.txt" for _ in uncarried]
        url = links.link_for("http://x", tab_id, carried, uncarried, values)
        from urllib.parse import parse_qsl, urlparse

        params = dict(parse_qsl(urlparse(url).query))
        tab, restored, note = links.restore(params, inputs)
        assert tab == tab_id
        for key, comp in carried.items():
            if comp.value is not None and not (
                hasattr(comp, "lines") and len(str(comp.value)) > links.MAX_TEXT
            ):
                assert restored[comp] == comp.value, (tab_id, key)
        if uncarried:
            assert "cannot carry" in note and all((c.label or k) in note for k, c in uncarried.items())
    tab, restored, note = links.restore(
        {"tab": "graphs", "budget": "7", "method": "rm -rf", "x": "1"}, inputs
    )
    assert tab == "graphs" and restored == {} and "budget=7" in note and "method=rm -rf" in note
    assert links.restore({"tab": "../etc"}, inputs) == (None, {}, "")


def _figure():
    fig = go.Figure([go.Scatter(y=[1, 2, 3], mode="lines+markers", line={"width": 2}, name="a"),
                     go.Heatmap(z=[[0, 1], [1, 0]], colorscale="Jet")])  # fmt: skip
    fig.add_annotation(text="note", x=1, y=1, font={"size": 10})
    return base_layout(fig, title="t", width=500, height=400)


def test_presentation_layout_is_16_9_large_and_colour_blind_safe():
    fig = present(_figure(), "**ssumm** on `karate`: iterations_run=4 " + "words " * 60)
    assert (fig.layout.width, fig.layout.height) == (PRESENT_WIDTH, PRESENT_HEIGHT)
    assert abs(PRESENT_WIDTH / PRESENT_HEIGHT - 16 / 9) < 1e-9
    assert fig.layout.font.size >= 18 and fig.layout.xaxis.tickfont.size >= 18
    assert all(a.font.size >= 18 for a in fig.layout.annotations)
    assert fig.data[0].line.width >= 4 and fig.data[0].marker.size >= 10
    assert fig.data[1].colorscale[0][1].lower() != "rgb(0,0,131)"  # the rainbow became cividis
    assert set(fig.layout.colorway) == set(OKABE_ITO)
    caption = [a for a in fig.layout.annotations if a.name == "redex-caption"][0].text
    assert (
        "iterations_run=4" in caption and "**" not in caption and max(map(len, caption.split("<br>"))) <= 98
    )
    assert plain("[paper](http://x) **b**") == "paper b"


def test_presentation_is_undone_exactly():
    original = _figure()
    back = presentation.to_normal(presentation.to_presentation(go.Figure(original), "caption"))
    assert back.to_plotly_json() == original.to_plotly_json()


def test_a_tabs_bundle_reproduces_its_numbers(built, capsys):
    """The Download bundle of the graphs tab's default view: figures as PNG + SVG, the data, config.json and
    CITATION.bib; `redex reproduce` reruns the view from the config and gets the same numbers."""
    import json
    import zipfile

    import gradio as gr

    from app.cli import main

    demo, tabs = built
    tab = tabs["graphs"]
    action = find_action(demo, tab, None)
    by_id = dict(
        zip([c._id for c in action.outputs], action.fn(*[c.value for c in action.inputs]), strict=True)
    )
    btn, _ = tab._redex_bundle_row
    dep = next(fn for fn in demo.fns.values() if any(t[0] == btn._id for t in fn.targets))
    values = []
    for c in dep.inputs:
        v = by_id.get(c._id, c.value)
        values.append(c.postprocess(v) if isinstance(c, gr.Plot) and v is not None else v)
    z = zipfile.ZipFile(dep.fn(*values))
    names = z.namelist()
    assert sum(n.endswith(".png") for n in names) == 2 and sum(n.endswith(".svg") for n in names) == 2
    assert {"config.json", "CITATION.bib"} <= set(names) and any(n.endswith("_summary.json") for n in names)
    config = json.loads(z.read("config.json"))
    assert config["tab"] == "graphs" and config["methods"] == ["ssumm"] and config["action"] == "Apply"
    assert "SSumM" in z.read("CITATION.bib").decode()
    assert main(["reproduce", z.filename, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["match"] is True and out["numbers_compared"] > 20, out
