"""One real browser session: Debian's chromium driven by Playwright (never a downloaded browser).

Opens the app, runs the default Layer Redundancy computation, checks the heatmap is drawn, and checks that no
request leaves the machine. Later tabs add their own checks below.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-quic",
        "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def record(request):
            host = urlparse(request.url).hostname
            if request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
                return
            external.append(request.url)

        page.on("request", record)
        page.external_requests = external
        page.goto(app_url, wait_until="load")
        page.wait_for_selector("button[role=tab]", timeout=60_000)
        page.wait_for_timeout(1500)  # the page's load events (link restore) answer first
        yield page
        browser.close()


def test_layer_tab_default_computation_draws_heatmap(page):
    page.get_by_role("tab", name="Layer Redundancy").click()
    page.get_by_role("button", name="Compute", exact=True).first.click()
    heat = page.locator(".js-plotly-plot .heatmaplayer").first
    heat.wait_for(state="attached", timeout=240_000)
    assert page.locator(".js-plotly-plot").count() >= 4  # heatmap, bars, hidden-state and head similarity
    text = page.locator(".caption").first.inner_text()
    assert "smollm2" in text and "8 samples × 256" in text
    page.screenshot(path="/tmp/redex-layers-browser.png", full_page=True)


def test_no_request_leaves_the_machine(page):
    assert page.external_requests == [], page.external_requests
