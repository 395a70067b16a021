"""Screenshot a tab of a running app with Debian's chromium (never a downloaded browser).

    .venv/bin/python scripts/screenshot.py --url http://127.0.0.1:7860 --tab "Layer Redundancy" \
        --click Compute --wait 20 --out /tmp/layers.png
"""

from __future__ import annotations

import argparse

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-quic",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:7860")
    p.add_argument("--tab", default=None)
    p.add_argument("--click", action="append", default=[], help="button text to click (repeatable, in order)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait after each click")
    p.add_argument("--out", default="/tmp/screenshot.png")
    p.add_argument("--width", type=int, default=1400)
    a = p.parse_args()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": a.width, "height": 1000})
        page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("http://127.0.0.1", "http://localhost", "data:", "blob:"))
                else print("EXTERNAL", r.url)
            ),
        )
        page.goto(a.url, wait_until="load")
        page.wait_for_selector("button[role=tab]", timeout=60000)
        page.wait_for_timeout(1500)  # the page's load events (link restore) settle before we pick a tab
        if a.tab:
            page.get_by_role("tab", name=a.tab).click()
            page.wait_for_timeout(800)
        for label in a.click:  # a visible button, or else a (sub-)tab of that name
            quoted = label.replace('"', '\\"')
            target = page.locator(f'button:visible:text-is("{quoted}")')
            if not target.count():
                target = page.get_by_role("tab", name=label, exact=True)
            target.first.click()
            page.wait_for_timeout(a.wait * 1000)
        page.screenshot(path=a.out, full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
