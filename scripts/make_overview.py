"""Render the Overview tab's headline pictures (assets/overview/<tab>.png) from the app's own default views.

Run: ``.venv/bin/python scripts/make_overview.py`` (launches the app on a free port; ``--url`` uses a running
one). Each picture is the first figure that the tab's default action returns, through gradio_client exactly as
a visitor's click would compute it, rendered by kaleido (Debian's chromium) at 720 x 460. Writes CARD.md with
where each picture came from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "assets" / "overview"

# tab id -> (endpoint, inputs beyond the defaults, which figure of its outputs)
VIEWS = {
    "layers": ("/layers_scan", {}, 0),
    "tokens": ("/tokens_prune", {}, 0),
    "flow": ("/flow_apply", {}, 1),
    "superposition": ("/superposition_toy", {}, 0),
    "graphs": ("/graph_summarize", {}, 0),
    "splats": ("/splats_pareto", {}, 0),
}


def _figures(outputs) -> list:
    """Plotly figures and image files among an endpoint's outputs, in order."""
    import plotly.io as pio

    found = []
    for out in outputs if isinstance(outputs, list | tuple) else [outputs]:
        if isinstance(out, dict) and out.get("type") == "plotly":
            found.append(("plotly", pio.from_json(out["plot"], skip_invalid=True)))
        elif isinstance(out, str) and out.lower().endswith((".png", ".webp", ".jpg", ".jpeg")):
            found.append(("image", out))
        elif isinstance(out, dict) and str(out.get("path", "")).lower().endswith((".png", ".webp", ".jpg")):
            found.append(("image", out["path"]))
    return found


def render(client, tab: str) -> tuple[bytes, str]:
    from bench.soak import _defaults
    from visualizers.style import figure_png

    api, extra, index = VIEWS[tab]
    kwargs = {**_defaults(client, api), **extra}
    figs = _figures(client.predict(**kwargs, api_name=api))
    if not figs:
        raise RuntimeError(f"{api} returned no figure")
    kind, fig = figs[min(index, len(figs) - 1)]
    if kind == "image":
        from PIL import Image

        im = Image.open(fig).convert("RGB")
        im.thumbnail((720, 460))
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=True)
        return buf.getvalue(), f"{api} image output"
    fig.update_layout(width=720, height=460, autosize=False)
    return figure_png(fig), f"{api} figure {index}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url")
    ap.add_argument("--port", type=int, default=7933)
    ap.add_argument("--only", nargs="*", default=list(VIEWS))
    args = ap.parse_args(argv)
    from gradio_client import Client

    from bench.soak import launch

    proc = None
    url = args.url
    if url is None:
        proc = launch(args.port, Path("/tmp/redex-overview-server.log"))
        url = f"http://127.0.0.1:{args.port}/"
    OUT.mkdir(parents=True, exist_ok=True)
    made = {}
    try:
        client = Client(url, verbose=False)
        for tab in args.only:
            try:
                png, source = render(client, tab)
            except Exception as e:  # noqa: BLE001 - one failing view leaves the others
                print(f"{tab}: failed: {e}", file=sys.stderr)
                continue
            (OUT / f"{tab}.png").write_bytes(png)
            made[tab] = source
            print(f"{tab}: {len(png) // 1024} KB from {source}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    lines = ["# Overview pictures", "",
             "Headline pictures of the Overview tab: each tab's default view, computed by the app itself (its",
             "endpoint called with the tab's default inputs through gradio_client) and rendered with kaleido by",
             "`scripts/make_overview.py`. Regenerate them with that script after a tab's default view changes.", "",
             f"Made {dt.datetime.now(dt.UTC):%Y-%m-%d} on {shutil.which('chromium') and 'CPU (Debian chromium)'}.", "",
             "| picture | source |", "|---|---|"]  # fmt: skip
    old = {}
    card = OUT / "CARD.md"
    if card.exists():
        for row in card.read_text().splitlines():
            if row.startswith("| `"):
                name = row.split("`")[1].removesuffix(".png")
                old[name] = row.split("|")[2].strip()
    for tab in VIEWS:
        src = made.get(tab, old.get(tab))
        if src and (OUT / f"{tab}.png").exists():
            lines.append(f"| `{tab}.png` | {src} |")
    card.write_text("\n".join(lines) + "\n")
    print(json.dumps(made))


if __name__ == "__main__":
    main()
