"""`redex layers --json` and the Layer Redundancy tab's downloads hold the same numbers for the same input:
both are written from the same engine results (LayerScan, DropEval) by their own serialisers."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

DEFAULT = "Default corpus (Python stdlib docstrings)"


def _quiet(*args, **kwargs):  # stands in for gr.Progress outside a request
    return None


@pytest.mark.slow
def test_cli_json_and_tab_downloads_hold_the_same_numbers():
    from app.tabs.layers import apply_handler, preselect_handler, scan_handler

    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "layers", "--samples", "2", "--seq-len", "64", "--drop", "attn",
         "--n", "2", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cli = json.loads(proc.stdout)

    out = scan_handler("smollm2", False, DEFAULT, "", None, 2, 64, -1, progress=_quiet)
    files, state = out[8], out[9]
    scan_json = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    with open(next(f for f in files if f.endswith(".csv"))) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(cli["layers"]) == scan_json["n_layers"]
    for kind in ("attn", "mlp", "block"):
        col = f"{kind}_similarity"
        assert [r[col] for r in cli["layers"]] == scan_json[col]
        assert [r[col] for r in cli["layers"]] == pytest.approx([float(r[col]) for r in rows], rel=1e-12)
    assert cli["provenance"]["input_fingerprint"] == scan_json["provenance"]["input_fingerprint"]

    # the same registered method picks the same layers in the tab and on the command line
    attn, mlp, block = preselect_handler(state, "attn-drop", 2, False, 42, progress=_quiet)
    assert {"attn": attn, "mlp": mlp, "block": block} == cli["dropped_by_kind"]

    *_, drop_files = apply_handler(state, attn, mlp, block, "", 16, progress=_quiet)
    ev = json.loads(open(next(f for f in drop_files if f.endswith(".json"))).read())
    assert ev["params_removed"] == cli["params_removed"] and ev["kv_saving"] == cli["kv_saving"]
    # perplexity is recomputed in each process; equal up to float reduction order across thread counts
    assert ev["full"]["perplexity"] == pytest.approx(cli["perplexity"]["full"], rel=1e-5)
    assert ev["pruned"]["perplexity"] == pytest.approx(cli["perplexity"]["dropped"], rel=1e-5)
