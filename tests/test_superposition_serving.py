"""The superposition family on a shared server: the shipped defaults, stopping long loops, concurrency."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from engine.admission import Stopped


def _acts(seed, n=600, k=24, d=8):
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1)
    return ((torch.rand(n, k, generator=g) < 0.1).float() * torch.rand(n, k, generator=g)) @ dirs


def test_shipped_default_is_converged_and_sparse():
    """The one-layer view's defaults answer from the shipped measurement: converged, sparse, with its map."""
    from engine.superposition import shipped
    from engine.superposition.feature_map import feature_map
    from engine.superposition.measure import measure_layer

    m = measure_layer(shipped.DEFAULT_MODEL, shipped.DEFAULT_LAYER, **shipped.DEFAULT_SAE)
    assert m.precomputed and m.converged and m.sae_source == "trained"
    assert m.l0 < 0.1 * m.d_sae and m.dense_fraction < 0.1 and m.explained_variance > 0.95
    assert m.warnings() == []
    assert m.epochs < shipped.DEFAULT_SAE["max_epochs"]
    fm = feature_map(m)
    assert len(fm.features) == sum(f > 0 for f in m.freq) and not fm.warning
    for layer in shipped.COMPARE_LAYERS:  # the comparison's defaults too
        c = measure_layer(shipped.DEFAULT_MODEL, layer, **shipped.DEFAULT_SAE)
        assert c.precomputed and c.converged and c.l0 < 0.1 * c.d_sae


def test_unconverged_dense_measurement_says_so():
    from engine.superposition.measure import measure_activations
    from engine.superposition.sae import SAEConfig
    from tests.test_superposition_parity import _tiny_measurement
    from visualizers.superposition import caption_layer, plot_training

    m = _tiny_measurement()  # 3 epochs: stopped by the cap
    assert not m.converged
    assert any("NOT CONVERGED" in w for w in m.warnings())
    cap = caption_layer(m)
    assert cap.startswith("⚠ **SAE NOT CONVERGED**")
    fig = plot_training(m.losses, warning="; ".join(m.warnings()))
    assert any("NOT CONVERGED" in a.text for a in fig.layout.annotations)
    metrics, _, _ = measure_activations(_acts(0), config=SAEConfig(max_epochs=2, l1=0.0), device="cpu")
    assert metrics["l0"] > 0


def test_scan_stops_when_the_progress_callback_raises():
    """The 'Across layers' loop calls its progress callback within every epoch, so a Stop ends it."""
    from engine.superposition.measure import scan_activations
    from engine.superposition.sae import SAEConfig

    calls = []

    def progress(frac, desc):
        calls.append((frac, desc))
        if len(calls) >= 3:
            raise Stopped("Stopped: the request was cancelled.")

    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    with pytest.raises(Stopped):
        scan_activations(
            {0: _acts(0), 1: _acts(1)}, SAEConfig(max_epochs=500, patience=500), progress=progress
        )
    assert time.perf_counter() - t0 < 30
    assert any("epoch" in d for _, d in calls)
    assert torch.get_num_threads() == threads  # shared state restored on the way out


def test_training_progress_moves_within_an_epoch(monkeypatch):
    from engine.superposition import sae as sae_mod

    monkeypatch.setattr(sae_mod, "TICK_S", 0.0)  # tick at every batch
    seen = []
    sae_mod.train_sae(_acts(2), sae_mod.SAEConfig(max_epochs=1), progress=lambda ep, loss: seen.append(ep))
    fractional = [e for e in seen if not isinstance(e, int)]
    assert len(fractional) >= 3 and fractional == sorted(fractional) and all(0 <= e < 1 for e in fractional)


def test_torch_threads_restored_when_blocks_overlap():
    from engine.superposition.sae import torch_threads

    before = torch.get_num_threads()
    inside, release = threading.Event(), threading.Event()

    def other():
        with torch_threads(1):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=other)
    with torch_threads(1):
        t.start()
        inside.wait(5)
    release.set()  # the first block left before the second: the count must still come back
    t.join()
    assert torch.get_num_threads() == before


def test_hooks_ignore_other_threads():
    """A capture's hooks record and cut only their own thread's forward passes through the shared model."""
    from engine.superposition.activations import _forward, record

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(3)])
            self.ran = []

        def forward(self, input_ids, attention_mask=None):
            x = input_ids.float()
            for i, layer in enumerate(self.layers):
                x = layer(x)
                self.ran.append((threading.get_ident(), i))
            return x

    model = Tiny()
    ids = torch.ones(2, 4, dtype=torch.long)
    with record({"0": model.layers[0]}, stop_after="0") as store:
        t = threading.Thread(target=lambda: model(input_ids=ids))  # another request's full pass
        t.start()
        t.join()
        _forward(model, ids)
    assert len(store["0"]) == 1  # only this thread's pass was recorded
    other = [i for tid, i in model.ran if tid != threading.get_ident()]
    assert other == [0, 1, 2]  # and the other thread's pass was not cut short
