"""Download files for every tab, written from the result's own serialiser (``Result.to_json`` / ``tables``).

One function, :func:`export`, so every tab's downloads hold exactly what ``redex <command> --json`` prints for
the same input: the JSON is ``result.to_dict()``, each CSV is one of ``result.tables()``, and figures become
PNG (best effort: PNG export needs Debian's chromium through kaleido; the data files are written regardless).
Gradio serves files from the system temp directory, so each call writes into a fresh folder there.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.bundle import View
from engine.results import Result

__all__ = ["export", "outdir", "sweep_old_downloads"]

log = logging.getLogger("redex.app")


DOWNLOAD_TTL_S = 3600.0  # a download folder older than this is deleted (Gradio serves its own copy)
_last_sweep = [0.0]


def outdir(prefix: str) -> Path:
    """A fresh folder under the temp directory (one per request, so two users never share a file).

    Each call also removes this app's download folders older than an hour (at most once a minute), so a
    public Space's temp directory stays bounded however many requests it serves."""
    sweep_old_downloads()
    return Path(tempfile.mkdtemp(prefix=f"redex-{prefix}-"))


def sweep_old_downloads(max_age_s: float = DOWNLOAD_TTL_S, *, force: bool = False) -> int:
    """Delete ``redex-*`` folders in the temp directory older than ``max_age_s``; return how many went."""
    now = time.time()
    if not force and now - _last_sweep[0] < 60:
        return 0
    _last_sweep[0] = now
    removed = 0
    for d in Path(tempfile.gettempdir()).glob("redex-*"):
        try:
            if d.is_dir() and not d.is_symlink() and now - d.stat().st_mtime > max_age_s:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def export(
    result: Result | None,
    stem: str,
    *,
    json_name: str | None = None,
    csv: Mapping[str, str] | None = None,
    figures: Mapping[str, Any] | None = None,
    extra: Mapping[str, bytes | str] | None = None,
    prefix: str | None = None,
    view: View | None = None,
) -> list[str]:
    """Write a result's JSON and CSV tables, and PNGs of ``figures``; return the paths (PNGs first).

    Parameters
    ----------
    result : the engine result; its ``to_json()`` and ``table_csv(name)`` are the only serialisers used.
    stem : base of the file names: ``<stem>.json`` and ``<stem>_<table>.csv``.
    json_name : file name of the JSON instead of ``<stem>.json``.
    csv : table name -> file name, for the tables to write (default: every table, as ``<stem>_<table>.csv``).
    figures : file name (``.png`` added if missing) -> plotly figure.
    extra : file name -> bytes or text written as is (a PLY, a rendered image).
    view : what the view shows and the ``redex`` command that recomputes it; when given, ``<stem>_bundle.zip``
        is added last (figures as 2x PNG and SVG, the data files, config.json, CITATION.bib; app/bundle.py).
    """
    out = outdir(prefix or stem)
    pngs: list[str] = []
    data: list[str] = []
    for name, fig in (figures or {}).items():
        if fig is None:
            continue
        from visualizers.style import figure_png

        path = out / (name if name.endswith(".png") else f"{name}.png")
        try:
            path.write_bytes(figure_png(fig))
            pngs.append(str(path))
        except Exception as e:  # noqa: BLE001 - PNG export needs chromium; the data files still download
            log.warning("PNG export of %s failed: %s", name, e)
    if result is not None:
        path = out / (json_name or f"{stem}.json")
        path.write_text(result.to_json())
        data.append(str(path))
        tables = result.tables()
        wanted = dict(csv) if csv is not None else {t: f"{stem}_{t}.csv" for t in tables}
        for table, fname in wanted.items():
            if table not in tables:
                raise KeyError(f"{type(result).__name__} has no table {table!r}; it has {list(tables)}")
            text = result.table_csv(table)
            if text:
                (out / fname).write_text(text)
                data.append(str(out / fname))
    for name, content in (extra or {}).items():
        path = out / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        data.append(str(path))
    files = pngs + data
    if view is not None:
        from app.bundle import write_bundle

        json_file = (json_name or f"{stem}.json") if result is not None else None
        files.append(str(write_bundle(out, stem, view, files, figures or {}, result_file=json_file)))
    return files
