"""`redex` through a real subprocess: help lists every subcommand, JSON output, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def redex(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def test_help_lists_every_subcommand():
    import pkgutil

    import app.commands

    out = redex("--help").stdout
    for info in pkgutil.iter_modules(app.commands.__path__):
        mod = __import__(f"app.commands.{info.name}", fromlist=["NAME"])
        assert mod.NAME in out
    assert "methods" in out


def test_methods_lists_registry():
    methods = json.loads(redex("methods", "--json").stdout)["methods"]
    names = {m["name"] for m in methods}
    assert {"layer-similarity", "attn-drop", "random-drop"} <= names
    assert all(m["family"] for m in methods)


@pytest.mark.slow
def test_layers_json_and_drop():
    out = json.loads(
        redex("layers", "--samples", "2", "--seq-len", "64", "--drop", "attn", "--n", "2", "--json").stdout
    )
    assert len(out["layers"]) == 30
    assert set(out["layers"][0]) == {"index", "attn_similarity", "mlp_similarity", "block_similarity"}
    assert out["layers"][5]["index"] == 5
    assert len(out["dropped"]) == 2
    top2 = sorted(range(30), key=lambda i: -out["layers"][i]["attn_similarity"])[:2]
    assert sorted(top2) == out["dropped"]
    assert out["perplexity"]["dropped"] > out["perplexity"]["full"] > 1


def test_layers_bad_input_exit_code():
    proc = redex("layers", "--samples", "0", check=False)
    assert proc.returncode == 2 and "sample count" in proc.stderr
    proc = redex("layers", "--model", "org/model", check=False)
    assert proc.returncode == 2 and "--allow-network" in proc.stderr
