"""A short soak (issue 14): 8 gradio_client sessions for 60 s over every tab's default actions, cheap and heavy
mixed, against the launched app. No request may fail (busy refusals are counted apart), and a cheap request
must not wait behind a heavy one, not even on the same endpoint (a cached layer scan behind a fresh one)."""

from __future__ import annotations

import time

import pytest

from bench.soak import Action, _call, _defaults, actions, soak

pytestmark = pytest.mark.slow


def test_cheap_request_is_not_blocked_behind_a_heavy_one_on_the_same_endpoint(client):
    mix = {a.name: a for a in actions()}
    cheap, heavy = mix["layer scan default"], mix["layer scan (new sizes)"]
    defaults = _defaults(client, cheap.api_name)
    assert _call(client, cheap, 0, defaults).outcome == "ok"  # cached from now on
    big = Action(
        heavy.name, heavy.api_name, "heavy", lambda i: dict(cheap.inputs(0), samples=24, seq_len=320)
    )
    kwargs = dict(defaults, **big.inputs(0))
    t0 = time.monotonic()
    job = client.submit(**kwargs, api_name=big.api_name)
    time.sleep(1.0)  # the heavy scan is running
    rec = _call(client, cheap, 0, defaults)
    job.result(timeout=600)
    heavy_s = time.monotonic() - t0
    assert rec.outcome == "ok", rec.message
    assert rec.end - rec.start < 0.5 * heavy_s, (rec.end - rec.start, heavy_s)


def test_eight_clients_for_a_minute_get_no_errors(app_url):
    res = soak(app_url, clients=8, seconds=60)
    assert all(w["outcome"] == "ok" for w in res["warmup"]), res["warmup"]
    assert res["errors"] == 0, res["error_messages"]
    assert res["requests"] >= 16, res["by_action"]
    assert res["cheap_while_heavy"]["n"] >= 3, res
