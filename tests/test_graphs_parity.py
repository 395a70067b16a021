"""One serialiser: `redex graph --json` and the Graph Summaries tab's downloads hold the same numbers for the same
input, and the engine's comparison holds each method's own numbers, also after a restart (disk cache)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("gradio")


def _no_progress(*args, **kwargs):
    return None


def test_cli_json_and_tab_download_hold_the_same_numbers(tmp_path, capsys):
    from app.cli import main
    from app.tabs.graphs import SOURCES, summarize_handler
    from engine.graphs.summary import ROW_KEYS

    save = tmp_path / "cli_summary.json"
    argv = ["graph", "--builtin", "les_miserables", "--method", "saa-gs", "--budget", "0.3", "--error", "l1"]
    assert main([*argv, "--seed", "2", "--save", str(save), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)

    _, _, table, _, files = summarize_handler(
        SOURCES[0],
        "les_miserables",
        "rmat",
        2000,
        0,
        None,
        "saa-gs",
        0.3,
        "l1",
        20,
        10,
        2,
        progress=_no_progress,
    )
    paths = {Path(f).suffix: Path(f) for f in files}
    download = json.loads(paths[".json"].read_text())
    for key in ROW_KEYS:
        assert download["metrics"][key] == cli[key], key
    assert download["method"] == cli["method"] == "saa-gs" and download["graph"] == cli["graph"]
    assert (
        len(download["supernodes"]) == cli["supernodes"] and len(download["superedges"]) == cli["superedges"]
    )
    # `--save` writes the same object the tab downloads (wall times and the clock aside)
    saved = json.loads(save.read_text())
    params = [d.pop("provenance")["params"] for d in (saved, download)]
    assert params[0] == params[1] == cli["provenance"]["params"]
    for d in (saved, download):
        d["metrics"].pop("seconds")
    assert saved == download
    with paths[".csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == cli["nodes"] and len({r["supernode"] for r in rows}) == cli["supernodes"]
    row = table[0]
    assert row[0] == "saa-gs" and row[2:4] == [cli["supernodes"], cli["superedges"]]
    assert row[5] == f"{cli['l1_error']:.3e}" and row[6] == f"{cli['l2_error']:.3e}"


def test_compare_rows_are_each_methods_numbers_and_survive_a_restart(tmp_path, monkeypatch):
    from engine.graphs import compare as C
    from engine.graphs.io import builtin
    from engine.registry import InputError

    monkeypatch.setenv("REDEX_CACHE_DIR", str(tmp_path))
    g = builtin("karate")
    settings = {"budgets": (0.3, 0.5), "error": "l2", "seed": 1}
    res = C.compare(g, None, settings)
    assert res.methods == list(C.graph_methods()) and len(res.rows) == 2 * len(res.methods)
    for row in res.rows:
        r = C.summarize(g, row["method"], seed=1, budget=row["budget"], error="l2")
        assert {k: row[k] for k in ("supernodes", "superedges", "size_bits", "l1_error", "l2_error")} == {
            "supernodes": r.supernodes,
            "superedges": r.superedges,
            "size_bits": r.size_bits,
            "l1_error": r.l1_error,
            "l2_error": r.l2_error,
        }
    assert res.budgets == [0.3, 0.5] and res.error == "l2" and res.seed == 1
    C._comparisons.clear()  # a restarted server: memory empty, the disk copy answers
    again = C.compare(g, None, settings)
    assert again is not res and again.rows == res.rows and again.input_bits == res.input_bits
    with pytest.raises(InputError, match="budget"):
        C.compare(g, None, {"budgets": (0.0,)})
    with pytest.raises(InputError, match="unknown method"):
        C.compare(g, ["nope"], settings)
