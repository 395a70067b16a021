"""Benchmark of the shipped scene models and the flow graph; writes bench/results/vision.json.

    python -m bench.vision [--n 300]

- Answer accuracy of the scene VLM per question type on the first ``n`` validation scenes (this machine), with
  the majority-answer baseline, and with random pruning of image tokens before the LM at 25% kept.
- The GPU training runs (wall time, steps, GPU, accuracy on 2000 validation scenes, GPU latency) copied from
  assets/vision/metrics_run*.json, which the training script wrote on the device.
- CPU latency of the ViT forward and the VLM prefill (batch 1, median), and the time of one flow graph (forward
  with attentions + rollout + entropy + edges) for a new image with the model loaded ("warm").
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results" / "vision.json"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="validation scenes evaluated on this machine")
    ap.add_argument(
        "--gpu", type=Path, default=None, help="on a CUDA machine: only the latencies, to this JSON"
    )
    a = ap.parse_args(argv)
    if a.gpu:
        return _gpu_latency(a.gpu)
    from engine.flow.run import flow_for_image
    from engine.vision import scenes
    from engine.vision.evaluate import evaluate_vlm, latency
    from engine.vision.loading import ASSETS, load_vision

    torch.set_grad_enabled(False)
    out = {"machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    t = time.perf_counter()
    vlm = load_vision("scene-vlm")
    out["load_seconds"] = time.perf_counter() - t
    module = vlm.extra["module"]
    t = time.perf_counter()
    out["cpu_eval"] = evaluate_vlm(module, n=a.n, dev="cpu", keeps=(1.0, 0.25), seeds=(0,), batch=50)
    out["cpu_eval"]["seconds"] = time.perf_counter() - t
    print(json.dumps(out["cpu_eval"]["accuracy"]), flush=True)
    t = time.perf_counter()
    kp = evaluate_vlm(module, n=a.n, dev="cpu", keeps=(1.0, 0.25), seeds=(0,), batch=50, keep_positions=True)
    out["cpu_eval_keep_positions"] = {
        "random_pruning": kp["random_pruning"],
        "seconds": time.perf_counter() - t,
    }
    print(json.dumps(kp["random_pruning"]), flush=True)
    out["cpu_latency_ms"] = latency(module, dev="cpu", repeats=10)
    times = {}
    for model in ("scene-vit", "scene-vlm"):
        for method in ("attention-rollout", "attention-flow"):
            flow_for_image(_scene(0), model=model, method=method)  # warm: model loaded, code paths run once
            ts = []
            for i in range(1, 4):
                t = time.perf_counter()
                res = flow_for_image(_scene(i), model=model, method=method)
                ts.append(time.perf_counter() - t)
            times[f"{model}/{method}"] = {
                "median_s": float(np.median(ts)),
                "stages_s": res.provenance.timings,
            }
    out["flow_graph_warm"] = times
    out["gpu_runs"] = []
    for p in sorted(ASSETS.glob("metrics_run*.json")):
        run = json.loads(p.read_text())
        if "vit" in run:
            out["gpu_runs"].append(run)
        else:  # a chain of device calls (run 4): one record per step
            out["gpu_runs"] += [dict(v, step=k) for k, v in run.items() if isinstance(v, dict) and "vit" in v]
    for run in out["gpu_runs"]:
        for part in ("vit", "vlm"):
            for h in ("history",):
                run[part]["train"].pop(h, None)
    out["n_scenes_cpu"] = a.n
    out["qtypes"] = list(scenes.QTYPES)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("cpu_latency_ms", "flow_graph_warm")}, indent=1))
    return out


def _gpu_latency(path: Path) -> dict:
    """Batch-1 median latency (ms) of the ViT forward and the VLM prefill on the GPU, fp32 and bf16."""
    from engine.vision.evaluate import latency
    from engine.vision.loading import load_vision

    torch.set_grad_enabled(False)
    module = load_vision("scene-vlm").extra["module"].cuda()
    out = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "fp32": latency(module, dev="cuda"),
    }
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out["bf16_autocast"] = latency(module, dev="cuda")
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out), flush=True)
    return out


def _scene(i: int) -> np.ndarray:
    from engine.vision import scenes

    return scenes.make_batch("val", 500 + i, 1).image_uint8(0)


if __name__ == "__main__":
    main()
