"""Graph input: parsing, cleaning notices, generators, and every bad input the issue lists, plus the CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.config import Limits
from engine.graphs import io
from engine.registry import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_parse_whitespace_csv_tsv_and_gzip_agree():
    text = "# comment\n1 2\n2 3\n3 1\n3 4\n"
    g1 = io.parse_edge_list(text)
    g2 = io.parse_edge_list(text.replace(" ", ","))
    g3 = io.parse_edge_list(text.replace(" ", "\t"))
    g4 = io.parse_edge_list(gzip.compress(text.encode()), name="x.gz")
    for g in (g2, g3, g4):
        np.testing.assert_array_equal(g.edges, g1.edges)
    assert (g1.n, g1.m) == (4, 4)


def test_cleaning_notices():
    g = io.parse_edge_list("0 1 5\n1 0 2\n2 2 1\n1 2 1\n2 3 1\n% matrix market comment\n")
    assert (g.n, g.m) == (4, 3)
    text = " ".join(g.notices)
    assert "weights" in text and "self-loop" in text and "duplicate" in text


def test_string_and_negative_ids_are_mapped():
    g = io.parse_edge_list("alice bob\nbob carol\ncarol alice\n")
    assert (g.n, g.m) == (3, 3)
    assert sorted(g.labels.tolist()) == ["alice", "bob", "carol"]
    assert any("mapped" in n for n in g.notices)
    g = io.parse_edge_list("-1 2\n2 3\n3 -1\n")
    assert (g.n, g.m) == (3, 3) and "-1" in g.labels.tolist()
    g = io.parse_edge_list("1.5 2\n2 3\n3 4\n")
    assert "1.5" in g.labels.tolist()


def test_header_line_skipped():
    g = io.parse_edge_list("source,target\n0,1\n1,2\n")
    assert g.m == 2 and any("header" in n for n in g.notices)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"# only a comment\n", "no edges"),
        (bytes(range(256)) * 50, "binary"),
        (b"\x1f\x8b\x08garbage", "gzipped"),
        (b"1 2\n", "at least"),
        (b"1 1\n2 2\n", "at least"),
        (b"1\n2\n3\n", "two node ids"),
        (b"0 1 0 1\n1 0 1 0\n0 1 0 1\n1 0 1 0\n", "adjacency matrix"),
        (b"1 2 3 4 5\n2 3 4 5 6\n", "2 or 3 columns"),
    ],
)
def test_bad_uploads(data, match):
    with pytest.raises(InputError, match=match):
        io.parse_edge_list(data, name="upload.txt")


def test_size_cap(monkeypatch):
    monkeypatch.setattr(io, "LIMITS", Limits(max_graph_edges=5))
    with pytest.raises(InputError, match="cap"):
        io.parse_edge_list("\n".join(f"{i} {i + 1}" for i in range(10)))
    with pytest.raises(InputError, match="10 to 5"):
        io.generate("rmat", 100)
    monkeypatch.setattr(io, "LIMITS", Limits(max_upload_bytes=10))
    with pytest.raises(InputError, match="upload cap"):
        io.parse_edge_list("0 1\n1 2\n2 3\n")


def test_missing_file():
    with pytest.raises(InputError, match="no such file"):
        io.load_edge_list("/nonexistent/graph.txt")


@pytest.mark.parametrize("name", sorted(io.BUILTINS))
def test_builtins(name):
    g = io.builtin(name)
    assert g.n >= 10 and g.m >= 15
    assert np.all(g.edges[:, 0] < g.edges[:, 1])
    assert g.adjacency.sum() == 2 * g.m


@pytest.mark.parametrize("name", ["rmat", "sbm", "barabasi_albert", "lfr"])
def test_generators(name):
    g = io.generate(name, 600, seed=3)
    assert 300 <= g.m <= 700
    g2 = io.generate(name, 600, seed=3)
    np.testing.assert_array_equal(g.edges, g2.edges)
    assert np.all(g.edges[:, 0] < g.edges[:, 1]) and np.unique(g.edges, axis=0).shape[0] == g.m


def test_rmat_exact_size_and_skew():
    g = io.rmat(20_000, seed=0)
    assert g.m == 20_000
    deg = g.degrees()
    assert deg.max() > 20 * np.median(deg)  # R-MAT's skewed degrees


def test_bad_generator_args():
    with pytest.raises(InputError, match="unknown generator"):
        io.generate("erdos", 100)
    with pytest.raises(InputError, match="unknown built-in"):
        io.builtin("nope")


# ------------------------------------------------------------------------------------------------ CLI


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "graph", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_json(tmp_path):
    edges = tmp_path / "g.csv"
    edges.write_text("\n".join(f"{u},{v}" for u, v in io.builtin("les_miserables").edges))
    save = tmp_path / "summary.json"
    p = _cli(
        "--input",
        str(edges),
        "--method",
        "ssumm",
        "--budget",
        "0.3",
        "--error",
        "l1",
        "--json",
        "--save",
        str(save),
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in (
        "nodes",
        "edges",
        "supernodes",
        "superedges",
        "input_bits",
        "size_bits",
        "l1_error",
        "l2_error",
    ):
        assert key in out
    assert (out["nodes"], out["edges"]) == (77, 254)
    assert out["size_bits"] <= 0.3 * out["input_bits"] and out["seconds"] > 0
    assert out["input_bits"] == pytest.approx(2 * 254 * np.log2(77))
    summary = json.loads(save.read_text())
    assert sum(s["size"] for s in summary["supernodes"]) == 77
    assert len(summary["superedges"]) == out["superedges"]


def test_cli_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    p = _cli("--input", str(empty), "--json")
    assert p.returncode == 2 and "empty" in p.stderr
    p = _cli("--builtin", "karate", "--budget", "2")
    assert p.returncode == 2 and "budget" in p.stderr
    p = _cli("--builtin", "karate", "--method", "nope")
    assert p.returncode == 2 and "unknown method" in p.stderr


def test_cli_in_process_human_output(capsys):
    from app.cli import main

    assert main(["graph", "--builtin", "karate", "--method", "random-merge", "--budget", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "random-merge on karate" in out and "L1 error" in out
