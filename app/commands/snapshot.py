"""`redex snapshot`: every figure of a tab's example view as PNG, plus its downloads, without a browser.

Examples::

    redex snapshot --tab graphs --example "Karate club, SSumM at 30%" --out slides/
    redex snapshot --tab layers --example "SmolLM2: 4 short windows x 64 tokens" --present --out slides/
    redex snapshot --all --out slides/

The app is built (not launched); each example sets its inputs as the tab's example button does and calls the
same handler the button calls, so the figures are the ones a visitor sees. ``--present`` renders them in
presentation layout (16:9, large type, caption under the figure). Each example gets a folder with the PNGs, the
files the tab offers for download (its bundle among them, where the tab writes one) and ``view.json`` (tab,
example, inputs, the link query that restores it, seconds).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

NAME = "snapshot"
HELP = "write every figure of a tab's example (or of every example) as PNG plus its downloads"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tab", help="tab id: layers, tokens, flow, superposition, graphs, splats")
    p.add_argument("--example", help="example name (see the tab's Examples row; default: its first)")
    p.add_argument("--all", action="store_true", help="every example of every tab")
    p.add_argument("--present", action="store_true", help="presentation layout (16:9, large type, caption)")
    p.add_argument("--out", default="snapshots", help="output folder")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _caption(outputs: list, values: list) -> str | None:
    import gradio as gr

    for comp, value in zip(outputs, values, strict=False):
        if (
            isinstance(comp, gr.Markdown)
            and isinstance(value, str)
            and "caption" in (comp.elem_classes or [])
        ):
            return value
    return None


def snapshot_one(demo, tabs, example, out: Path, *, present: bool) -> dict[str, Any]:
    import gradio as gr

    from app.examples import find_action, values_for
    from app.figures import fixed
    from visualizers.presentation import presentation
    from visualizers.style import figure_png

    tab = tabs[example.tab]
    carried, _ = tab._redex_link_inputs
    chosen = values_for(example, carried)
    action = find_action(demo, tab, example.action)
    args = [chosen.get(c, c.value) for c in action.inputs]
    t0 = time.perf_counter()
    result = action.fn(*args)
    seconds = time.perf_counter() - t0
    values = list(result) if isinstance(result, tuple | list) and len(action.outputs) > 1 else [result]
    folder = out / example.tab / _slug(example.name)
    folder.mkdir(parents=True, exist_ok=True)
    caption = _caption(action.outputs, values)
    written = []
    for i, (comp, value) in enumerate(zip(action.outputs, values, strict=False)):
        if isinstance(comp, gr.Plot) and value is not None and hasattr(value, "to_plotly_json"):
            fig = fixed(value)
            if present:
                fig = presentation(fig, caption)
            label = _slug(comp.label or f"figure-{i}") or f"figure-{i}"
            path = folder / f"{i:02d}-{label}.png"
            path.write_bytes(figure_png(fig, scale=2.0 if present else 1.0))
            written.append(path.name)
        elif isinstance(comp, gr.File) and value:
            for f in value if isinstance(value, list) else [value]:
                src = Path(f if isinstance(f, str) else getattr(f, "name", str(f)))
                if src.is_file():
                    shutil.copy2(src, folder / src.name)
                    written.append(src.name)
    view = {"tab": example.tab, "example": example.name, "inputs": example.inputs, "action": example.action,
            "link": "?" + urlencode({"tab": example.tab, **example.inputs}), "present": present,
            "caption": caption, "files": written, "seconds": round(seconds, 2)}  # fmt: skip
    (folder / "view.json").write_text(json.dumps(view, indent=2) + "\n")
    return {"tab": example.tab, "example": example.name, "folder": str(folder), "figures": sum(
        f.endswith(".png") for f in written), "files": len(written), "seconds": round(seconds, 2)}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.examples import EXAMPLES, examples_for
    from app.main import build_app
    from engine.registry import InputError

    if not args.all and not args.tab:
        raise InputError("give --tab (and --example), or --all")
    if args.all:
        chosen = list(EXAMPLES)
    else:
        found = examples_for(args.tab)
        if not found:
            raise InputError(f"tab {args.tab!r} has no examples; tabs: {sorted({e.tab for e in EXAMPLES})}")
        if args.example:
            found = [e for e in found if e.name == args.example]
            if not found:
                raise InputError(f"no example {args.example!r} in tab {args.tab!r}; "
                                 f"examples: {[e.name for e in examples_for(args.tab)]}")  # fmt: skip
        chosen = found[:1] if not args.example else found
    t0 = time.perf_counter()
    demo = build_app()
    tabs = {b.id: b for b in demo.blocks.values() if hasattr(b, "_redex_link_inputs")}
    build_s = time.perf_counter() - t0
    out = Path(args.out)
    done, failed = [], []
    for ex in chosen:
        try:
            done.append(snapshot_one(demo, tabs, ex, out, present=args.present))
        except Exception as e:  # noqa: BLE001 - one failing example leaves the others; the report names it
            failed.append({"tab": ex.tab, "example": ex.name, "error": f"{type(e).__name__}: {e}"[:300]})
    return {"out": str(out), "examples": done, "failed": failed, "build_seconds": round(build_s, 1),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
