"""The export bundle of one view: a zip that holds everything needed to put it on a slide and to reproduce it.

``<stem>_bundle.zip`` holds each figure as PNG (2x, kaleido through Debian's chromium) and SVG, the result's
JSON and CSV tables (the files :func:`app.export.export` writes), ``config.json`` (the ``redex`` command line
that recomputes the numbers, the methods and parameters, the input and its fingerprint, the seed, package
versions and the backend) and ``CITATION.bib`` (one BibTeX entry per paper whose method is in the view, from the
registry's :class:`~engine.registry.Paper` entries). ``redex reproduce BUNDLE --json`` reruns the command line and
compares the numbers with the bundle's JSON.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import platform
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["View", "config_dict", "citations", "write_bundle", "VERSIONED_PACKAGES"]

log = logging.getLogger("redex.app")

VERSIONED_PACKAGES = ("redundancy-explorer", "torch", "transformers", "numpy", "scipy", "networkx", "gradio",
                      "plotly", "umap-learn", "gsplat", "open3d-cpu")  # fmt: skip


@dataclass(frozen=True)
class View:
    """What a view shows and how to recompute it: the ``redex`` command and its arguments.

    ``argv`` is what follows ``redex <command>``; ``--json`` is added by ``redex reproduce``. ``input`` names
    the input (``{"kind": "builtin", "name": "karate"}``; an upload is named with its fingerprint and marked
    ``"reproducible": False`` unless it is small enough to travel inside the bundle as ``inputs``).
    """

    family: str
    command: str
    argv: tuple[str, ...]
    methods: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, bytes] = field(default_factory=dict)  # small input files carried in the bundle


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in VERSIONED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _backend() -> str:
    try:
        import torch

        return f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001
        return "cpu"


def config_dict(view: View, *, result_file: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of a view."""
    return {
        "redex_config": 1,
        "family": view.family,
        "command": view.command,
        "argv": list(view.argv),
        "cli": " ".join(["redex", view.command, *view.argv, "--json"]),
        "methods": list(view.methods),
        "params": dict(view.params),
        "seed": view.seed,
        "input": dict(view.input),
        "inputs": sorted(view.inputs),
        "result_file": result_file,
        "versions": _versions(),
        "backend": _backend(),
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def citations(family: str, methods: Iterable[str]) -> str:
    """BibTeX for every paper behind ``methods`` (each paper once, in the order the methods are given)."""
    from engine.registry import get

    seen, entries = set(), []
    for name in methods:
        try:
            paper = get(name, family=family).paper
        except Exception:  # noqa: BLE001 - a label that is not a method (a control) has no paper
            continue
        if paper is not None and paper.key not in seen:
            seen.add(paper.key)
            entries.append(paper.bibtex())
    return "\n".join(entries)


def _write_figure(z: zipfile.ZipFile, base: str, fig: Any) -> None:
    """``<base>.png`` (2x) and ``<base>.svg`` of a figure into the zip; a render failure leaves the data."""
    from visualizers.style import figure_png, figure_svg

    for ext, render in (("png", lambda f: figure_png(f, scale=2.0)), ("svg", figure_svg)):
        try:
            z.writestr(f"{base}.{ext}", render(fig))
        except Exception as e:  # noqa: BLE001 - figures need chromium; the data still goes in
            log.warning("%s export of %s failed: %s", ext.upper(), base, e)


def write_bundle(folder: Path, stem: str, view: View, files: Iterable[str], figures: Mapping[str, Any],
                 *, result_file: str | None = None) -> Path:  # fmt: skip
    """Write ``<stem>_bundle.zip`` in ``folder`` from the files already exported and the figures."""

    path = folder / f"{stem}_bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, fig in figures.items():
            if fig is None:
                continue
            base = name.removesuffix(".png")
            _write_figure(z, base, fig)
        for f in files:
            p = Path(f)
            if p.suffix.lower() != ".png" and p.exists():  # the 1x PNGs are replaced by the 2x ones above
                z.write(p, p.name)
        for name, content in view.inputs.items():
            z.writestr(f"inputs/{name}", content)
        z.writestr("config.json", json.dumps(config_dict(view, result_file=result_file), indent=2) + "\n")
        z.writestr("CITATION.bib", citations(view.family, view.methods))
    return path


# ---- the "Download bundle" control every tab gets (app/main.py adds it; no tab wires it by hand) ----


def _tab_components(demo, tab):
    """(plots, files) of a tab: every gr.Plot, and every gr.File that an event writes to (not an upload)."""
    import gradio as gr

    from app.links import _walk

    outputs = {b._id for fn in demo.fns.values() for b in fn.outputs}
    inputs = {b._id for fn in demo.fns.values() for b in fn.inputs}
    blocks = _walk(tab)
    plots = [b for b in blocks if isinstance(b, gr.Plot)]
    files = [b for b in blocks if isinstance(b, gr.File) and b._id in outputs and b._id not in inputs]
    return plots, files


def add_bundle_row(tab) -> None:
    """Inside a tab's context: the bundle button and the file it writes."""
    import gradio as gr

    with gr.Row(equal_height=True):
        btn = gr.Button("Download bundle (figures as PNG + SVG, data, config.json, CITATION.bib)", size="sm",
                        scale=0, min_width=240)  # fmt: skip
        out = gr.File(label="Bundle", scale=4, height=60)
    tab._redex_bundle_row = (btn, out)


def _paths(value) -> list[Path]:
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for v in items:
        p = v if isinstance(v, str) else getattr(v, "path", None) or getattr(v, "name", None)
        if isinstance(v, dict):
            p = v.get("path") or v.get("name")
        try:
            if p and len(str(p)) < 4096 and Path(p).is_file():
                out.append(Path(p))
        except OSError:
            continue
    return out


def tab_bundle(tab_id: str, carried: Mapping[str, Any], values: list[Any], figures: list[Any],
               files: list[Path], *, action: str | None) -> Path:  # fmt: skip
    """Write the bundle of a tab's current view; return the zip's path."""
    import plotly.io as pio

    from app.export import outdir
    from app.figures import fixed
    from app.links import _encode
    from engine.registry import names

    inputs = {k: _encode(v) for (k, _), v in zip(carried.items(), values, strict=True) if v is not None}
    known = set(names(tab_id)) if tab_id in _families() else set()
    methods: list[str] = []
    for v in values:
        for item in v if isinstance(v, list | tuple) else [v]:
            if isinstance(item, str) and item in known and item not in methods:
                methods.append(item)
    folder = outdir(f"{tab_id}-bundle")
    path = folder / f"{tab_id}_bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i, value in enumerate(figures):
            raw = getattr(value, "plot", None)
            if raw is None:
                continue
            fig = fixed(pio.from_json(raw, skip_invalid=True))
            title = (fig.layout.title.text or f"figure {i}") if fig.layout.title else f"figure {i}"
            base = f"{i:02d}-" + "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")[:50]
            _write_figure(z, base, fig)
        for f in files:
            if f.suffix.lower() != ".zip":
                z.write(f, f.name)
        from urllib.parse import urlencode

        config = {
            "redex_config": 2,
            "tab": tab_id,
            "family": tab_id,
            "action": action,
            "inputs": inputs,
            "link": "?" + urlencode({"tab": tab_id, **inputs}),
            "methods": methods,
            "result_files": sorted(f.name for f in files if f.suffix.lower() == ".json"),
            "versions": _versions(),
            "backend": _backend(),
            "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        z.writestr("config.json", json.dumps(config, indent=2) + "\n")
        z.writestr("CITATION.bib", citations(tab_id, methods) if tab_id in _families() else "")
    return path


def _families() -> tuple[str, ...]:
    from engine.registry import FAMILIES

    return FAMILIES


def wire_bundles(demo, tabs: Mapping[str, Any]) -> None:
    for tab_id, tab in tabs.items():
        row = getattr(tab, "_redex_bundle_row", None)
        if row is None:
            continue
        btn, out = row
        carried, _ = tab._redex_link_inputs
        plots, files = _tab_components(demo, tab)
        files = [f for f in files if f is not out]
        action = _primary_label(tab)
        n_c, n_p = len(carried), len(plots)

        def make(*values, tab_id=tab_id, carried=carried, n_c=n_c, n_p=n_p, action=action):
            figs = list(values[n_c : n_c + n_p])
            paths = [p for v in values[n_c + n_p :] for p in _paths(v)]
            return str(tab_bundle(tab_id, carried, list(values[:n_c]), figs, paths, action=action))

        btn.click(make, [*carried.values(), *plots, *files], [out], api_name=f"{tab_id}_bundle",
                  concurrency_limit=2, concurrency_id="bundles")  # fmt: skip


def _primary_label(tab) -> str | None:
    import gradio as gr

    from app.links import _walk

    return next((b.value for b in _walk(tab) if isinstance(b, gr.Button) and b.variant == "primary"), None)
