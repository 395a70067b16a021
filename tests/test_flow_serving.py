"""Serving the flow family on a shared server: the size estimate before a run, the memory refusal, one heavy slot
per request (a comparison's graphs share it), progress that moves through the forward pass and the max-flow, a
Stop that ends a max-flow within a second and leaves the caches usable, and concurrent requests on the one shared
model whose progress hooks never cross threads."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from engine.admission import Stopped, TooMuchMemory
from engine.flow import run
from engine.flow.compare import compare
from engine.flow.run import estimate, flow_for_image, method_params


def _img(i: int) -> np.ndarray:
    from engine.vision import scenes

    return scenes.make_batch("val", 700 + i, 1).image_uint8(0)


def test_estimate_knows_the_shape_before_the_forward_pass():
    img = _img(0)
    cost = estimate(img, model="scene-vit", methods=("attention-rollout",))
    assert (cost.n_layers, cost.n_heads, cost.n_tokens) == (8, 3, 197)
    assert cost.attention_bytes == 8 * 3 * 197 * 197 * 4 and cost.peak_bytes > cost.attention_bytes
    assert not cost.heavy  # the scene models with the defaults run at once, without a slot
    exact = estimate(img, methods=("attention-flow",), params={"top_k": 4096})
    assert exact.heavy and exact.graph_s > 5  # exact max-flow: 197 max-flows on the full layered graph
    assert "8 layers x 3 heads x 197 tokens" in exact.describe()
    vlm = estimate(img, model="scene-vlm", methods=("attention-rollout",))
    assert vlm.n_tokens == 207 and vlm.n_layers == 8


def test_memory_refusal_names_the_estimate(monkeypatch):
    import engine.admission as adm

    monkeypatch.setattr(adm, "available_bytes", lambda: 1_000_000)
    with pytest.raises(TooMuchMemory, match=r"8 layers x 3 heads x 197 tokens.*MB of attentions"):
        flow_for_image(_img(1))
    with pytest.raises(TooMuchMemory):
        compare(_img(1), ["attention-rollout", "attention-flow"])
    monkeypatch.undo()
    assert flow_for_image(_img(1)).n_tokens == 197  # nothing half-done was cached


def test_one_heavy_slot_per_request(monkeypatch):
    taken = []

    @contextmanager
    def slot(what, *, expect_s=60.0, progress=None, wait_s=None):
        taken.append(what)
        yield

    monkeypatch.setattr(run, "heavy_slot", slot)
    monkeypatch.setattr(run, "HEAVY_S", 0.0)  # everything counts as heavy here
    compare(_img(2), ["attention-rollout", "attention-flow"], {"top_k": 4})
    assert taken == ["flow: attention-rollout, attention-flow on scene-vit"]  # the nested graphs took none
    assert not getattr(run._ADMITTED, "held", False)
    compare(_img(2), ["attention-rollout", "attention-flow"], {"top_k": 4})
    assert len(taken) == 1  # a cached comparison takes no slot


def test_progress_moves_and_stop_ends_max_flow():
    img = _img(3)
    seen = []
    flow_for_image(img, method="attention-flow", params=method_params("attention-flow", {"top_k": 4}),
                   progress=lambda f, d: seen.append((f, d)))  # fmt: skip
    fracs = [f for f, _ in seen]
    assert fracs == sorted(fracs) and fracs[-1] >= 0.95
    assert any("layer 8 of 8" in d for _, d in seen)  # the forward pass reports each layer
    assert any(d == "attention-flow" for _, d in seen)

    def stop(frac, desc):
        if desc.startswith("max-flow"):
            raise Stopped("Stopped: the request was cancelled.")

    params = method_params("attention-flow", {"top_k": 4096})  # exact: ~10 s of max-flow on this CPU
    t = time.perf_counter()
    with pytest.raises(Stopped):
        flow_for_image(img, method="attention-flow", params=params, progress=stop)
    assert time.perf_counter() - t < 5.0
    assert not getattr(run._ADMITTED, "held", False)
    small = method_params("attention-flow", {"top_k": 2})
    assert np.isfinite(flow_for_image(img, method="attention-flow", params=small).importance).all()


def test_concurrent_requests_on_the_shared_model():
    imgs = [_img(10 + i) for i in range(4)]
    methods = ["attention-rollout", "attention-flow"] * 2
    out, calls, errors = {}, {i: set() for i in range(4)}, []
    flow_for_image(_img(9))  # the model is loaded once, before the threads start

    def work(i):
        try:
            out[i] = flow_for_image(
                imgs[i], method=methods[i], params=method_params(methods[i], {"top_k": 4}),
                progress=lambda f, d: calls[i].add(threading.get_ident()),
            )  # fmt: skip
            calls[i].discard(threading.get_ident())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors and len(out) == 4
    assert all(not c for c in calls.values())  # every progress call came from its own request's thread
    run.clear_caches()
    for i in range(4):  # the same numbers as one at a time
        alone = flow_for_image(imgs[i], method=methods[i], params=method_params(methods[i], {"top_k": 4}))
        np.testing.assert_array_equal(alone.importance, out[i].importance)
