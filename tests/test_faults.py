"""Faults (issue 14): a writer killed mid-write never leaves a readable half entry, and an app killed with
SIGTERM or SIGKILL in the middle of a computation serves a correct result after a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from app.inputs import TEXT_SOURCES
from tests.conftest import ROOT, _free_port

WRITER = textwrap.dedent("""
    import sys
    from engine.cache import disk_put
    print("ready", flush=True)
    i = 0
    while True:
        disk_put("fault", "entry", {"i": i, "payload": [i] * 400_000})  # ~2.4 MB per write
        i += 1
""")


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_sigkill_during_cache_writes_never_leaves_a_partial_entry(tmp_path, delay):
    env = dict(os.environ, REDEX_CACHE_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    os.environ["REDEX_CACHE_DIR"], old = str(tmp_path), os.environ.get("REDEX_CACHE_DIR")
    try:
        from engine.cache import disk_get

        entry = disk_get("fault", "entry")
    finally:
        if old is None:
            del os.environ["REDEX_CACHE_DIR"]
        else:
            os.environ["REDEX_CACHE_DIR"] = old
    if entry is not None:  # either no entry yet, or a whole one: never a half-written one
        assert entry["payload"] == [entry["i"]] * 400_000


def _launch(cache: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               REDEX_CACHE_DIR=str(cache))  # fmt: skip
    fh = open(log, "a")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port), "--no-warmup"], cwd=ROOT, env=env,
                            stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    import urllib.request

    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(log.read_text()[-3000:])


SCAN = dict(model="smollm2", allow_net=False, source=TEXT_SOURCES[0], text="", upload=None, samples=16, seq_len=256,
            head_layer=-1, api_name="/layers_scan")  # fmt: skip


def _scan_json(outputs) -> dict:
    for out in outputs:
        for f in out if isinstance(out, list) else [out]:
            path = f.get("value", f.get("path")) if isinstance(f, dict) else f
            if isinstance(path, str) and path.endswith("layer_scan.json"):
                return json.loads(Path(path).read_text())
    raise AssertionError(f"no layer_scan.json in {outputs!r}")


@pytest.mark.slow
def test_app_killed_mid_computation_serves_a_correct_result_after_restart(tmp_path):
    from gradio_client import Client

    from engine.config import cache_dir

    cache = tmp_path / "cache"
    cache.mkdir()
    shared_models = cache_dir() / "models"
    if (shared_models / "smollm2" / "model.safetensors").exists():
        (cache / "models").symlink_to(shared_models)  # reuse the converted weights, not the results
    log = tmp_path / "server.log"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc, url = _launch(cache, log)
        job = Client(url, verbose=False).submit(**SCAN)
        deadline = time.time() + 120
        while time.time() < deadline and job.status().code.name not in ("PROCESSING", "PROGRESS", "FINISHED"):
            time.sleep(0.1)
        time.sleep(2.0)  # inside the scan: the model is loaded and layers are being compared
        assert not job.done(), "the scan finished before the kill: nothing was interrupted"
        proc.send_signal(sig)
        proc.wait(30)
    proc, url = _launch(cache, log)
    try:
        client = Client(url, verbose=False)
        first = _scan_json(client.predict(**SCAN))
        again = _scan_json(client.predict(**SCAN))  # served from the cache entry the restart wrote
    finally:
        proc.terminate()
        proc.wait(30)
    from engine.layers.pipeline import ScanRequest, run_scan

    _, _, reference = run_scan(ScanRequest(samples=16, seq_len=256))
    ref = reference.to_dict()
    numeric = [k for k, v in ref.items() if k.endswith("similarity") and isinstance(v, list)]
    assert numeric, sorted(ref)
    for k in numeric:
        assert first[k] == again[k]
        assert np.allclose(np.asarray(first[k], float), np.asarray(ref[k], float), atol=1e-4), k
    entries = list((cache / "results").rglob("*.json"))
    assert entries and not list((cache / "results").rglob("*.tmp"))
