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


def write_bundle(folder: Path, stem: str, view: View, files: Iterable[str], figures: Mapping[str, Any],
                 *, result_file: str | None = None) -> Path:  # fmt: skip
    """Write ``<stem>_bundle.zip`` in ``folder`` from the files already exported and the figures."""
    from visualizers.style import figure_png, figure_svg

    path = folder / f"{stem}_bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, fig in figures.items():
            if fig is None:
                continue
            base = name.removesuffix(".png")
            for ext, render in (("png", lambda f: figure_png(f, scale=2.0)), ("svg", figure_svg)):
                try:
                    z.writestr(f"{base}.{ext}", render(fig))
                except Exception as e:  # noqa: BLE001 - figures need chromium; the data still goes in
                    log.warning("%s export of %s failed: %s", ext.upper(), base, e)
        for f in files:
            p = Path(f)
            if p.suffix.lower() != ".png" and p.exists():  # the 1x PNGs are replaced by the 2x ones above
                z.write(p, p.name)
        for name, content in view.inputs.items():
            z.writestr(f"inputs/{name}", content)
        z.writestr("config.json", json.dumps(config_dict(view, result_file=result_file), indent=2) + "\n")
        z.writestr("CITATION.bib", citations(view.family, view.methods))
    return path
