"""The Graph Summaries tab through gradio_client against the launched app (``client`` fixture)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from gradio_client import handle_file

from engine.graphs.io import builtin

SOURCES = ("Built-in graph", "Generator", "Upload edge list")


def _summarize(client, source=SOURCES[0], name="karate", upload=None, method="ssumm", budget=0.3, error="l2"):
    return client.predict(
        source, name, "rmat", 2000, 0, upload, method, budget, error, 20, 10, 0, api_name="/graph_summarize"
    )


def _rows(df):
    return df["data"] if isinstance(df, dict) else df


def test_summarize_builtin(client):
    fig_g, fig_a, metrics, cap, files = _summarize(client)
    row = _rows(metrics)[0]
    assert row[0] == "ssumm" and float(row[4]) <= 0.3
    assert "karate" in cap and "34 nodes" in cap
    paths = [Path(f if isinstance(f, str) else f["path"]) for f in files]
    summary = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    assert sum(s["size"] for s in summary["supernodes"]) == 34
    with next(p for p in paths if p.suffix == ".csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 34
    assert fig_g is not None and fig_a is not None


def test_summarize_upload_and_baseline(client, tmp_path):
    f = tmp_path / "lesmis.csv"
    f.write_text("source,target\n" + "\n".join(f"{u},{v}" for u, v in builtin("les_miserables").edges))
    _, _, metrics, cap, _ = _summarize(
        client, SOURCES[2], upload=handle_file(str(f)), method="saa-gs", error="l1"
    )
    row = _rows(metrics)[0]
    assert row[0] == "saa-gs" and float(row[4]) <= 0.3
    assert "77 nodes" in cap and "header" in cap


@pytest.mark.parametrize(
    "content, kwargs, match",
    [
        ("", {}, "empty"),
        ("1 2\n", {}, "at least"),
        ("0 1 0 1\n1 0 1 0\n0 1 0 1\n1 0 1 0\n", {}, "adjacency matrix"),
        (None, {"budget": 1.5}, "(?i)budget|maximum value 1"),
    ],
)
def test_bad_input_keeps_serving(client, tmp_path, content, kwargs, match):
    if content is None:
        call = lambda: _summarize(client, **kwargs)  # noqa: E731
    else:
        f = tmp_path / "bad.txt"
        f.write_text(content)
        call = lambda: _summarize(client, SOURCES[2], upload=handle_file(str(f)))  # noqa: E731
    with pytest.raises(Exception, match=match):
        call()
    # the server still answers
    assert _rows(_summarize(client, budget=0.5)[2])[0][0] == "ssumm"


def test_binary_upload(client, tmp_path):
    f = tmp_path / "garbage.txt"  # binary content behind a text extension
    f.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(Exception, match="binary"):
        _summarize(client, SOURCES[2], upload=handle_file(str(f)))
    f = tmp_path / "garbage.bin"  # an extension the upload box does not take
    f.write_bytes(bytes(range(256)))
    with pytest.raises(Exception, match="file type"):
        _summarize(client, SOURCES[2], upload=handle_file(str(f)))


def test_compare(client):
    fig, table, text, files = client.predict(
        SOURCES[1], "karate", "sbm", 3000, 1, None, "l2", 0, api_name="/graph_compare"
    )
    rows = _rows(table)
    assert {r[0] for r in rows} >= {"ssumm", "random-merge", "saa-gs"}
    assert len(rows) == 3 * 4
    assert all(float(r[4]) <= float(r[1]) + 1e-9 for r in rows)  # every size within its budget
    assert "sbm" in text
    # the download holds the comparison's JSON and its table as CSV, the same rows as on screen
    paths = [Path(f if isinstance(f, str) else f["path"]) for f in files]
    with next(p for p in paths if p.name.endswith("_comparison.csv")).open() as fh:
        table_csv = list(csv.DictReader(fh))
    assert [(r["method"], float(r["budget"])) for r in table_csv] == [(r[0], float(r[1])) for r in rows]
    saved = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    assert len(saved["rows"]) == 12 and saved["graph_name"].startswith("sbm")
