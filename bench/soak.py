"""Soak benchmark: many gradio_client sessions against a launched app, cheap and heavy actions mixed.

Run: ``.venv/bin/python -m bench.soak`` (16 clients, 5 minutes; ``--clients 8 --seconds 60`` for a short run).
Writes ``bench/results/soak.json``. The app is launched in a subprocess on 127.0.0.1 (or ``--url`` uses a
running one; then no RSS is reported). Each client loops over the action mix below, in its own order, until the
time is up; every request has a timeout, so the run stops by itself.

What it reports (issue 14's goals): requests done per endpoint; errors (goal 0), with deliberate busy refusals
("The server is busy", "Queue is full") counted apart; latency p50/p95/max of the cheap actions that ran while a
heavy one was in flight (goal: p95 under 2 s on the 2-core CPU); the app's RSS at start, after the warm-up, at
its peak and at the end (goal: end within 10% of the post-warm-up value).

Heavy actions vary their input per request (seed, sizes), so they are cache misses and really compute; cheap
actions use the tab defaults, which after the warm-up are served from the result caches or are small inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "soak.json"
BUSY_WORDS = ("server is busy", "queue is full")


@dataclass(frozen=True)
class Action:
    """One tab action: the endpoint, its cost class, and the inputs of request ``i`` (keyword arguments)."""

    name: str
    api_name: str
    cost: str  # "cheap" or "heavy"
    inputs: Callable[[int], dict[str, Any]] = field(default=lambda i: {})
    timeout_s: float = 300.0


def _text_source() -> str:
    from app.inputs import TEXT_SOURCES

    return TEXT_SOURCES[0]


def actions() -> list[Action]:
    """The mix: every tab's default action, plus heavy actions whose inputs change per request."""
    src = _text_source()
    scan = dict(model="smollm2", allow_net=False, source=src, text="", upload=None, head_layer=-1)
    return [
        Action("graph karate", "/graph_summarize", "cheap"),
        Action("tokens default", "/tokens_prune", "cheap"),
        Action("flow default", "/flow_apply", "cheap"),
        Action("superposition default (shipped)", "/superposition_measure", "cheap"),
        Action("layer scan default", "/layers_scan", "cheap", lambda i: dict(scan, samples=8, seq_len=256)),
        Action(
            "layer scan (new sizes)",
            "/layers_scan",
            "heavy",
            lambda i: dict(scan, samples=4 + i % 13, seq_len=(64, 128, 192)[i % 3]),
        ),  # fmt: skip
        Action(
            "graph SBM 60k edges (new seed)",
            "/graph_summarize",
            "heavy",
            lambda i: dict(source="Generator", generator="sbm", gen_edges=60_000, gen_seed=1 + i),
        ),  # fmt: skip
        Action(
            "splats (new keep fraction)",
            "/splats_apply",
            "heavy",
            lambda i: dict(keep=round(0.2 + (i % 11) * 0.05, 2)),
        ),  # fmt: skip
        Action(
            "toy superposition (new size)",
            "/superposition_toy",
            "heavy",
            lambda i: dict(n_hidden=3 + i % 5, steps=1000 + 10 * (i % 50)),
        ),  # fmt: skip
    ]


def _defaults(client, api_name: str) -> dict[str, Any]:
    """The endpoint's inputs as the tab shows them before a click (its components' default values)."""
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]
    out = {}
    for p in info["parameters"]:
        if p.get("parameter_has_default"):
            out[p["parameter_name"]] = p.get("parameter_default")
        else:
            kind = (p.get("python_type") or {}).get("type", "")
            out[p["parameter_name"]] = "" if kind == "str" else None
    return out


@dataclass
class Record:
    action: str
    cost: str
    start: float
    end: float
    outcome: str  # "ok", "busy", "error"
    message: str = ""


def _call(client, action: Action, i: int, defaults: dict[str, Any]) -> Record:
    kwargs = dict(defaults)
    kwargs.update(action.inputs(i))
    t0 = time.monotonic()
    try:
        client.submit(**kwargs, api_name=action.api_name).result(timeout=action.timeout_s)
        return Record(action.name, action.cost, t0, time.monotonic(), "ok")
    except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
        msg = f"{type(e).__name__}: {e}"[:300]
        outcome = "busy" if any(w in msg.lower() for w in BUSY_WORDS) else "error"
        return Record(action.name, action.cost, t0, time.monotonic(), outcome, msg)


class _RssSampler(threading.Thread):
    def __init__(self, pid: int | None) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def rss(self) -> int | None:
        if self.pid is None:
            return None
        import psutil

        try:
            p = psutil.Process(self.pid)
            return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
        except psutil.Error:
            return None

    def run(self) -> None:
        while not self.stop.wait(0.5):
            r = self.rss()
            if r is not None:
                self.samples.append(r)


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return round(xs[k], 3)


def launch(port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port), "--no-warmup"], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)  # fmt: skip
    import urllib.request

    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start")


def soak(url: str, *, clients: int, seconds: float, pid: int | None = None, mix: list[Action] | None = None,
         seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Run the soak against ``url``; return the report (see the module docstring)."""
    from gradio_client import Client

    mix = mix or actions()
    sampler = _RssSampler(pid)
    rss_start = sampler.rss()
    warm_client = Client(url, verbose=False)
    defaults = {a.api_name: _defaults(warm_client, a.api_name) for a in mix}
    warm = [_call(warm_client, a, 0, defaults[a.api_name]) for a in mix]  # loads every model once
    rss_warm = sampler.rss()
    sampler.start()
    records: list[Record] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(k: int) -> None:
        client = Client(url, verbose=False)
        rng = random.Random(seed * 1000 + k)
        i = k
        while time.monotonic() < stop_at:
            action = rng.choice(mix)
            rec = _call(client, action, i, defaults[action.api_name])
            i += clients
            with lock:
                records.append(rec)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 600)
    wall = time.monotonic() - t0
    time.sleep(2.0)
    sampler.stop.set()
    rss_end = sampler.rss()
    return report(records, warm, wall=wall, clients=clients, seconds=seconds,
                  rss={"start": rss_start, "after_warmup": rss_warm, "end": rss_end,
                       "peak": max(sampler.samples, default=None)})  # fmt: skip


def report(records: list[Record], warm: list[Record], *, wall: float, clients: int, seconds: float,
           rss: dict[str, int | None]) -> dict[str, Any]:  # fmt: skip
    heavy = [(r.start, r.end) for r in records if r.cost == "heavy" and r.outcome == "ok"]
    by_action: dict[str, dict[str, Any]] = {}
    for r in records:
        a = by_action.setdefault(r.action, {"cost": r.cost, "ok": 0, "busy": 0, "errors": 0, "latency": []})
        a["ok" if r.outcome == "ok" else "busy" if r.outcome == "busy" else "errors"] += 1
        if r.outcome == "ok":
            a["latency"].append(r.end - r.start)
    for a in by_action.values():
        lat = a.pop("latency")
        a.update(
            p50_s=_percentile(lat, 50), p95_s=_percentile(lat, 95), max_s=round(max(lat), 3) if lat else None
        )
    overlapped = [r.end - r.start for r in records if r.cost == "cheap" and r.outcome == "ok"
                  and any(s < r.end and r.start < e for s, e in heavy)]  # fmt: skip
    errors = [r for r in records if r.outcome == "error"]
    cheap_p95 = _percentile(overlapped, 95)
    end_vs_warm = (
        (rss["end"] / rss["after_warmup"] - 1) if rss.get("end") and rss.get("after_warmup") else None
    )
    return {
        "bench": "soak",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "backend": "cpu" if not _cuda() else "cuda",
        "reference": "issue 14 goals: 0 errors, cheap p95 < 2 s while heavy run, end RSS within 10% of warm",
        "clients": clients,
        "seconds": seconds,
        "wall_s": round(wall, 1),
        "requests": len(records),
        "warmup": [
            {"action": r.action, "outcome": r.outcome, "s": round(r.end - r.start, 2), "message": r.message}
            for r in warm
        ],  # fmt: skip
        "by_action": by_action,
        "errors": len(errors),
        "busy_refusals": sum(r.outcome == "busy" for r in records),
        "error_messages": sorted({r.message for r in errors})[:20],
        "cheap_while_heavy": {
            "n": len(overlapped),
            "p50_s": _percentile(overlapped, 50),
            "p95_s": cheap_p95,
            "max_s": round(max(overlapped), 3) if overlapped else None,
        },  # fmt: skip
        "heavy_done": len(heavy),
        "rss_bytes": rss,
        "rss_end_vs_warm": None if end_vs_warm is None else round(end_vs_warm, 4),
        "goals": {
            "zero_errors": not errors,
            "cheap_p95_under_2s": cheap_p95 is not None and cheap_p95 < 2.0,
            "rss_end_within_10pct": end_vs_warm is not None and end_vs_warm <= 0.10,
        },
    }


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--url", help="a running app (default: launch one)")
    ap.add_argument("--port", type=int, default=7931)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    proc = None
    if args.url is None:
        proc = launch(args.port, Path("/tmp/redex-soak-server.log"))
        url = f"http://127.0.0.1:{args.port}/"
    else:
        url = args.url
    try:
        res = soak(url, clients=args.clients, seconds=args.seconds, pid=proc.pid if proc else None)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(
        json.dumps({k: res[k] for k in ("requests", "errors", "busy_refusals", "cheap_while_heavy", "goals")})
    )


if __name__ == "__main__":
    main()
