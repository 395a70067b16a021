"""`redex reproduce`: recompute a view from its export bundle (or its config.json) and compare the numbers.

Examples::

    redex reproduce graph_summary_bundle.zip --json
    redex reproduce config.json --json

The config's command line (``redex <command> <argv> --json``) runs in this process; with a bundle, every number
of the bundle's result JSON is compared with the recomputed one: integers exactly, floats to ``--tolerance``
(default 1e-6, relative to the larger of 1 and the value). Keys that describe the run rather than the result
(times, memory, versions, backend, file paths, provenance) are not compared; how many were skipped is printed.
Input files carried in the bundle (``inputs/``) are unpacked and named in ``argv`` as ``{inputs}/<name>``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

NAME = "reproduce"
HELP = "recompute a view from its export bundle (zip) or config.json and compare the numbers"

VOLATILE = re.compile(r"(second|time|wall|elapsed|created|provenance|rss|memory|latency|_s$|_ms$|fps|per_s|"
                      r"throughput|device|backend|version|path|file|url|host|platform)", re.IGNORECASE)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", metavar="BUNDLE_OR_CONFIG", help="a *_bundle.zip from an export, or its config.json"
    )
    p.add_argument("--tolerance", type=float, default=1e-6, help="float tolerance (relative, floor 1)")


def _load(source: Path, workdir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not source.exists():
        raise FileNotFoundError(f"no such bundle or config: {source}")
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise ValueError(f"{source.name} holds no config.json: not an export bundle")
            config = json.loads(z.read("config.json"))
            if "tab" in config:  # a tab's bundle: every result JSON it holds, by file name
                original = {n: json.loads(z.read(n)) for n in config.get("result_files", []) if n in names}
            elif config.get("result_file") in names:
                original = json.loads(z.read(config["result_file"]))
            else:
                original = None
            for n in names:
                if n.startswith("inputs/") and not n.endswith("/") and ".." not in n:
                    target = workdir / "inputs" / Path(n).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(n))
        return config, original
    config = json.loads(source.read_text())
    if "tab" not in config and ("command" not in config or "argv" not in config):
        raise ValueError(f"{source.name} is not a redex config (no command/argv)")
    return config, None


def compare(want: Any, got: Any, tol: float, path: str = "") -> tuple[int, int, list[str]]:
    """(numbers compared, keys skipped, mismatches) between two JSON values."""
    if isinstance(want, dict) and isinstance(got, dict):
        n = skipped = 0
        bad: list[str] = []
        for k, v in want.items():
            if VOLATILE.search(str(k)):
                skipped += 1
                continue
            if k not in got:
                bad.append(f"{path}/{k}: missing")
                continue
            a, b, c = compare(v, got[k], tol, f"{path}/{k}")
            n, skipped, bad = n + a, skipped + b, bad + c
        return n, skipped, bad
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return 0, 0, [f"{path}: length {len(want)} vs {len(got)}"]
        n = skipped = 0
        bad = []
        for i, (v, w) in enumerate(zip(want, got, strict=True)):
            a, b, c = compare(v, w, tol, f"{path}[{i}]")
            n, skipped, bad = n + a, skipped + b, bad + c
        return n, skipped, bad
    if isinstance(want, bool) or isinstance(got, bool) or not isinstance(want, int | float):
        return (0, 0, []) if want == got else (0, 0, [f"{path}: {want!r} vs {got!r}"])
    if not isinstance(got, int | float):
        return 1, 0, [f"{path}: {want!r} vs {got!r}"]
    if isinstance(want, int) and isinstance(got, int):
        return 1, 0, [] if want == got else [f"{path}: {want} vs {got}"]
    if math.isnan(want) and math.isnan(got):
        return 1, 0, []
    ok = abs(want - got) <= tol * max(1.0, abs(want), abs(got))
    return 1, 0, [] if ok else [f"{path}: {want!r} vs {got!r}"]


def _rerun_tab(config: dict[str, Any]) -> dict[str, Any]:
    """Recompute a tab's view as its Examples/link machinery does: set the inputs, run the button's handler;
    return {file name: JSON} of the result files the handler writes."""
    from app.examples import find_action
    from app.links import restore
    from app.main import build_app

    demo = build_app()
    tabs = {b.id: b for b in demo.blocks.values() if hasattr(b, "_redex_link_inputs")}
    if config["tab"] not in tabs:
        raise ValueError(f"this app has no tab {config['tab']!r}")
    inputs = {t: tab._redex_link_inputs for t, tab in tabs.items()}
    tab_id, values, note = restore({"tab": config["tab"], **config.get("inputs", {})}, inputs)
    if note:
        raise ValueError(f"the config's inputs do not fit this app: {note}")
    action = find_action(demo, tabs[tab_id], config.get("action"))
    result = action.fn(*[values.get(c, c.value) for c in action.inputs])
    outs = list(result) if isinstance(result, tuple | list) and len(action.outputs) > 1 else [result]
    import gradio as gr

    from app.bundle import _paths

    found = {}
    for comp, value in zip(action.outputs, outs, strict=False):
        if isinstance(comp, gr.File) and value:
            for p in _paths(value):
                if p.suffix.lower() == ".json":
                    found[p.name] = json.loads(p.read_text())
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.cli import build_parser
    from engine.results import Result, to_jsonable

    with tempfile.TemporaryDirectory(prefix="redex-reproduce-") as tmp:
        config, original = _load(Path(args.source), Path(tmp))
        if "tab" in config:
            got_files = _rerun_tab(config)
            report = {"tab": config["tab"], "link": config.get("link"), "config_versions": config.get("versions"),
                      "config_backend": config.get("backend")}  # fmt: skip
            if not original:
                report.update(match=None, note="nothing to compare with", result=got_files)
                return report
            n = skipped = 0
            bad: list[str] = []
            for name, want in original.items():
                if name not in got_files:
                    bad.append(f"{name}: not written by the recomputation")
                    continue
                a, b, c = compare(want, got_files[name], args.tolerance, name)
                n, skipped, bad = n + a, skipped + b, bad + c
            report.update(match=not bad and n > 0, numbers_compared=n, keys_skipped=skipped,
                          files_compared=sorted(original), mismatches=bad[:20])  # fmt: skip
            return report
        argv = [a.replace("{inputs}", str(Path(tmp) / "inputs")) for a in config["argv"]]
        ns = build_parser().parse_args([config["command"], *argv, "--json"])
        if ns._module is None or ns._module.NAME == NAME:
            raise ValueError(f"cannot reproduce command {config['command']!r}")
        out = ns._module.run(ns)
        got = to_jsonable(out.to_dict() if isinstance(out, Result) else out)
    report: dict[str, Any] = {"command": config.get("cli"), "config_versions": config.get("versions"),
                              "config_backend": config.get("backend")}  # fmt: skip
    if original is None:
        report.update(match=None, note="a config alone: recomputed, nothing to compare with", result=got)
        return report
    n, skipped, bad = compare(original, got, args.tolerance)
    report.update(match=not bad and n > 0, numbers_compared=n, keys_skipped=skipped, mismatches=bad[:20],
                  result=got)  # fmt: skip
    return report
