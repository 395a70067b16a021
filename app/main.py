"""Gradio Blocks app: one tab per family, discovered from :mod:`app.tabs`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import threading
import time
from types import ModuleType

import gradio as gr

import app.tabs
from app.links import HEAD
from app.presentation import CSS as PRESENT_CSS
from engine.config import LIMITS

__all__ = ["tab_modules", "build_app", "main"]

CSS = """
.caption {font-size: 0.95rem;}
footer {visibility: hidden}
"""


def tab_modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.iter_modules(app.tabs.__path__):
        try:
            mod = importlib.import_module(f"app.tabs.{info.name}")
        except Exception:  # a broken tab must not take the other tabs down; the log says why
            logging.getLogger("redex.app").exception("tab module app.tabs.%s failed to import", info.name)
            continue
        if hasattr(mod, "build_tab"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "TAB_ORDER", 100), m.__name__))


def build_app() -> gr.Blocks:
    from app import bundle, examples, links, presentation

    # delete_cache: uploads and generated downloads are removed after an hour (checked every 30 minutes),
    # so a public Space's temp folders stay bounded and old files cannot be fetched for ever.
    with gr.Blocks(title="Redundancy Explorer", delete_cache=(1800, 3600)) as demo:
        with gr.Row(equal_height=True):
            gr.Markdown(
                "# Redundancy Explorer\n"
                "See redundancy in neural networks and data, apply the methods that remove it, compare them."
            )
            present = gr.Checkbox(label="Presentation mode (16:9, large type)", value=False, scale=0,
                                  min_width=260)  # fmt: skip
        notice = gr.Markdown(visible=False, elem_classes="caption")
        tabs: dict[str, gr.Tab] = {}
        with gr.Tabs() as tabs_component:
            for mod in tab_modules():
                tab_id = mod.__name__.rsplit(".", 1)[-1]
                with gr.Tab(mod.TAB_TITLE, id=tab_id, elem_id=f"tab-{tab_id}") as tab:
                    examples.add_examples_row(tab_id, tab)
                    mod.build_tab()
                    links.add_link_row(tab_id, tab)
                    if tab_id != "overview":
                        bundle.add_bundle_row(tab)
                tab.select(None, None, None, js=f"() => ({links.TAB_JS})('{tab_id}')", queue=False)
                tabs[tab_id] = tab
        presentation.wire(demo, present)
        links.wire_restore(demo, tabs_component, tabs, notice)
        examples.wire_examples(demo, tabs)
        bundle.wire_bundles(demo, tabs)
    return demo


def _warmup() -> None:
    for mod in tab_modules():
        fn = getattr(mod, "warmup", None)
        if fn is not None:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - warm-up is best effort
                logging.getLogger("redex.app").warning("warm-up of %s failed: %s", mod.__name__, e)


def _patient_self_check() -> None:
    """Gradio's launch checks that its own page answers (HEAD, 3 s timeout, giving up on the first timeout) and
    exits when it does not. On a loaded 2-core machine the first page can take longer, and the app would quit
    at start; allow up to a minute instead (the check stays: an app that never answers still fails)."""
    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = httpx.head(url, timeout=15, verify=False)
                if r.status_code in (200, 401, 301, 302, 303, 307, 308):
                    return True
            except (httpx.ConnectError, httpx.TimeoutException):
                pass
            time.sleep(0.5)
        return False

    networking.url_ok = url_ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Launch the Redundancy Explorer web app.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--no-warmup", action="store_true", help="skip loading models at start-up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    demo = build_app()
    _patient_self_check()
    if not args.no_warmup:
        threading.Thread(target=_warmup, daemon=True).start()
    # Cheap events run LIMITS.workers at once per event; heavy work inside a handler takes one of
    # LIMITS.heavy_workers slots (engine.admission.heavy_slot), so a long job never blocks a cheap one.
    # max_size bounds the queue: past it a request is refused at once ("queue is full") instead of waiting.
    demo.queue(default_concurrency_limit=LIMITS.workers, max_size=LIMITS.max_queue).launch(
        server_name=args.host, server_port=args.port, show_error=True, css=CSS + PRESENT_CSS, footer_links=[], head=HEAD,
        max_file_size=LIMITS.max_upload_bytes,
    )  # fmt: skip


if __name__ == "__main__":
    main()
