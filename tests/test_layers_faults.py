"""Faults in the middle of a layer drop, on the shared cached model (issue 14, "Faults").

A Stop (the progress callback raising ``Stopped``) partway through a drop must leave the cached SmolLM2 exactly
as it was (same module objects, same weights, same outputs, no hooks left) and its lock released, so the
next request, from any thread, drops and evaluates normally. A concurrent request never sees a half-dropped
model: it waits for the lock. Heavy or oversized work is admitted by size.
"""

from __future__ import annotations

import threading

import pytest
import torch

from engine.admission import Stopped, TooMuchMemory
from engine.corpus import default_corpus, token_windows
from engine.layers.arch import decoder_layers
from engine.layers.curve import drop_curve, evaluations
from engine.layers.drop import DropPlan, dropped, evaluate_drop, perplexity, plan_drop
from engine.layers.guard import model_lock
from engine.layers.scan import scan_layers
from engine.models import load_model

PLAN = DropPlan(attn=(3, 4), mlp=(5,), block=(10,), strategy="manual")


@pytest.fixture(scope="module")
def smol():
    return load_model("smollm2")  # the same object every request of the app uses


@pytest.fixture(scope="module")
def held(smol):
    return token_windows(smol.tokenizer, default_corpus().heldout, 2, 32)


@pytest.fixture(scope="module")
def reference(smol, held):
    """Module identities, weights and perplexity of the intact model."""
    modules = {name: id(m) for name, m in smol.model.named_modules()}
    weights = {k: v.detach().clone() for k, v in smol.model.state_dict().items()}
    return modules, weights, perplexity(smol, held)


def _is_dropped(loaded) -> bool:
    return type(decoder_layers(loaded.model)[10]).__name__ == "_SkipBlock"


class StopWhileDropped:
    """A progress callback that raises ``Stopped`` on its ``after``-th call made while PLAN is in place."""

    def __init__(self, loaded, after: int = 3) -> None:
        self.loaded, self.after, self.calls, self.raised_dropped = loaded, after, 0, False

    def __call__(self, frac: float, desc: str) -> None:
        if _is_dropped(self.loaded):
            self.calls += 1
            if self.calls >= self.after:
                self.raised_dropped = True
                raise Stopped("Stopped: the request was cancelled.")


def _lock_free_elsewhere(model) -> bool:
    """True when another thread can take the model's lock (the failing thread's re-entrant hold would hide
    a leaked lock from itself)."""
    got = []

    def take():
        lock = model_lock(model)
        ok = lock.acquire(timeout=5)
        got.append(ok)
        if ok:
            lock.release()

    t = threading.Thread(target=take)
    t.start()
    t.join(10)
    return got == [True]


def _transformers_own(hook) -> bool:
    """transformers installs output-capturing hooks of its own, once, the first time a model runs with
    output_attentions / output_hidden_states (a scan does), and keeps them; they are not ours to remove."""
    return (
        getattr(hook, "__module__", "").startswith("transformers.")
        and "output_capturing" in hook.__qualname__
    )


def _assert_intact(smol, held, reference) -> None:
    modules, weights, ppl = reference
    assert {name: id(m) for name, m in smol.model.named_modules()} == modules
    now = smol.model.state_dict()
    assert now.keys() == weights.keys()
    assert all(torch.equal(now[k], weights[k]) for k in weights)
    assert not [h for m in smol.model.modules() for h in (*m._forward_pre_hooks.values(), *m._forward_hooks.values())
                if not _transformers_own(h)]  # fmt: skip
    assert "feed_forward_chunk" not in vars(decoder_layers(smol.model)[5])
    assert perplexity(smol, held) == ppl  # bit for bit: same modules, same weights, same batch
    assert _lock_free_elsewhere(smol.model)


def test_stop_mid_drop_evaluation_restores_model_and_releases_lock(smol, held, reference):
    stop = StopWhileDropped(smol)
    with pytest.raises(Stopped):
        evaluate_drop(smol, PLAN, held, max_new_tokens=2, progress=stop)
    assert stop.raised_dropped  # it really failed partway, with the plan in place
    _assert_intact(smol, held, reference)
    ev = evaluate_drop(smol, PLAN, held, max_new_tokens=2)  # the next drop works, with the same numbers
    assert ev.full["perplexity"] == reference[2] and ev.pruned["perplexity"] > ev.full["perplexity"]
    assert ev.heldout == {"windows": 2, "tokens_per_window": 32, "tokens": 64, "source": ""}
    _assert_intact(smol, held, reference)


def test_exception_inside_the_drop_context_restores(smol, held, reference):
    with pytest.raises(RuntimeError, match="boom"), dropped(smol.model, PLAN):
        assert _is_dropped(smol)
        raise RuntimeError("boom")
    _assert_intact(smol, held, reference)


def test_stop_mid_curve_and_mid_iterative_rescan_restore(smol, held, reference):
    windows = token_windows(smol.tokenizer, default_corpus().calibration, 2, 32)
    scan = scan_layers(smol, windows)
    with pytest.raises(Stopped):  # the curve stops inside its third evaluation
        calls = []

        def stop_third(frac, desc):
            calls.append(desc)
            if "evaluation 3" in desc:
                raise Stopped("stop")

        drop_curve(smol, scan, held, strategies=["attn", "mlp"], counts=[0, 1, 2], progress=stop_third)
    assert any("evaluation 2" in d for d in calls)
    _assert_intact(smol, held, reference)

    seen = []

    def stop_in_rescan(frac, desc):  # the re-scan runs with round 1's drop in place and its hooks installed
        if desc.startswith("scanning") and decoder_layers(smol.model)[0]._forward_hooks:
            seen.append(desc)
            raise Stopped("stop")

    with pytest.raises(Stopped):
        plan_drop(smol, windows, strategy="attn", n=3, iterative=True, scan=scan, progress=stop_in_rescan)
    assert seen
    _assert_intact(smol, held, reference)


def test_concurrent_request_waits_for_the_drop_to_be_restored(smol, held, reference):
    inside, release, results = threading.Event(), threading.Event(), {}

    def dropper():
        with dropped(smol.model, PLAN):
            inside.set()
            release.wait(30)

    def reader():
        results["ppl"] = perplexity(smol, held)

    a = threading.Thread(target=dropper)
    a.start()
    assert inside.wait(30)
    b = threading.Thread(target=reader)
    b.start()
    b.join(1.0)
    assert b.is_alive() and "ppl" not in results  # it waits instead of reading a half-dropped model
    release.set()
    a.join(30)
    b.join(60)
    assert results["ppl"] == reference[2]
    _assert_intact(smol, held, reference)


def test_waiting_for_the_model_can_be_stopped(smol, held, reference):
    inside, release = threading.Event(), threading.Event()

    def holder():
        with dropped(smol.model, PLAN):
            inside.set()
            release.wait(30)

    a = threading.Thread(target=holder)
    a.start()
    assert inside.wait(30)

    def stop_while_waiting(frac, desc):
        assert "waiting" in desc
        raise Stopped("stop")

    try:
        with pytest.raises(Stopped):
            perplexity(smol, held, progress=stop_while_waiting)
    finally:
        release.set()
        a.join(30)
    _assert_intact(smol, held, reference)


def test_admission_by_size(smol, monkeypatch):
    from engine.layers import cost, pipeline

    assert cost.model_scale(smol) == pytest.approx(1.0, abs=0.05)
    assert evaluations(["attn", "mlp", "block", "random-attn"], [0, 2, 4, 6, 8], 1) == 17
    assert evaluations(["attn", "random-attn"], [0, 2], 3) == 1 + 1 + 3
    with cost.admitted("small", smol, tokens=8 * 256, nbytes=0) as heavy:
        assert not heavy  # the default scan's size runs at once
    with cost.admitted("curve", smol, tokens=17 * 4 * 256, nbytes=0) as heavy:
        assert heavy
    # a scan that would need more memory than the server gives is refused before it runs, with the estimate
    monkeypatch.setattr("engine.admission.available_bytes", lambda: 1_000_000)
    text = "\n\n".join(f"Paragraph {i} about memory estimates and refusals. " * 6 for i in range(60))
    req = pipeline.ScanRequest(text=text, samples=2, seq_len=64)
    with pytest.raises(TooMuchMemory, match=r"layer scan of smollm2 \(2 x 64 tokens\) would need about"):
        pipeline.run_scan(req)
    assert cost.scan_bytes(smol, 2, 64) > 1_000_000
