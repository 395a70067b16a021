"""Export bundles and `redex reproduce` (issue 13, part 2): one zip per view with 2x PNG + SVG, the data,
config.json and CITATION.bib; reproducing it from the zip recomputes the same numbers."""

from __future__ import annotations

import json
import struct
import zipfile

import plotly.graph_objects as go
import pytest

from app.bundle import View, citations
from app.cli import build_parser
from app.commands.reproduce import compare
from app.export import export
from engine.registry import Paper

ARGV = ("--builtin", "karate", "--budget", "0.5", "--seed", "0")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    ns = build_parser().parse_args(["graph", *ARGV, "--json"])
    res = ns._module.run(ns)
    fig = go.Figure(go.Bar(y=[1, 2, 3]))
    fig.update_layout(width=500, height=300)
    view = View("graphs", "graph", ARGV, methods=("ssumm", "saa-gs", "ssumm"), seed=0,
                input={"kind": "builtin", "name": "karate"})  # fmt: skip
    files = export(res, "graph_summary", figures={"bars": fig}, view=view)
    return res, files


def test_bundle_holds_figures_data_config_and_citations(bundle):
    res, files = bundle
    assert files[-1].endswith("graph_summary_bundle.zip")
    z = zipfile.ZipFile(files[-1])
    names = set(z.namelist())
    assert {"bars.png", "bars.svg", "graph_summary.json", "config.json", "CITATION.bib"} <= names
    png = z.read("bars.png")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1000, 600)  # 2x the figure's 500 x 300
    assert z.read("bars.svg").lstrip().startswith(b"<svg")
    assert json.loads(z.read("graph_summary.json")) == json.loads(res.to_json())
    config = json.loads(z.read("config.json"))
    assert config["cli"] == "redex graph " + " ".join(ARGV) + " --json"
    assert config["versions"]["torch"].startswith("2.13.0") and config["backend"] == "cpu"
    bib = z.read("CITATION.bib").decode()
    assert bib.count("@") == 2 and "SSumM" in bib and "GraSS" in bib  # ssumm twice in the view: cited once


def test_reproduce_recomputes_the_same_numbers(bundle, capsys):
    from app.cli import main

    assert main(["reproduce", bundle[1][-1], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["match"] is True and out["numbers_compared"] >= 10 and out["mismatches"] == []


def test_reproduce_reports_a_changed_number(bundle, tmp_path, capsys):
    from app.cli import main

    src = zipfile.ZipFile(bundle[1][-1])
    doctored = tmp_path / "doctored_bundle.zip"
    with zipfile.ZipFile(doctored, "w") as z:
        for n in src.namelist():
            data = src.read(n)
            if n == "graph_summary.json":
                d = json.loads(data)
                d["l1_error"] = d["l1_error"] + 0.01
                data = json.dumps(d).encode()
            z.writestr(n, data)
    main(["reproduce", str(doctored), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["match"] is False and any("l1_error" in m for m in out["mismatches"])
    cfg = tmp_path / "config.json"
    cfg.write_bytes(src.read("config.json"))
    main(["reproduce", str(cfg), "--json"])
    assert json.loads(capsys.readouterr().out)["match"] is None  # a config alone: recomputed, not compared


def test_compare_rules():
    assert compare({"a": 1, "b": [0.5, 2]}, {"a": 1, "b": [0.5 + 1e-9, 2]}, 1e-6)[2] == []
    assert compare({"a": 1}, {"a": 2}, 1e-6)[2] == ["/a: 1 vs 2"]  # integers exactly
    assert compare({"seconds": 1.0, "x": 1.0}, {"seconds": 9.0, "x": 1.0}, 1e-6) == (1, 1, [])
    assert compare([1, 2], [1], 1e-6)[2] == [": length 2 vs 1"]


def test_bibtex_entries():
    p = Paper("Quantifying Attention Flow in Transformers", 2020, "arXiv:2005.00928",
              authors=("Abnar, Samira", "Zuidema, Willem"))  # fmt: skip
    bib = p.bibtex()
    assert bib.startswith("@article{abnar2020quantifying,") and "eprint = {2005.00928}" in bib
    assert "author = {Abnar, Samira and Zuidema, Willem}" in bib
    assert citations("graphs", ["not-a-method"]) == ""
