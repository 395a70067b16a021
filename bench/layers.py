"""bench/layers: the batched hook scan vs the official layer-by-layer procedure (LLM-Drop), and model loading.

    python -m bench.layers                       # CPU: 64 x 512 tokens, writes bench/results/layers_cpu.json
    python -m bench.layers --device cuda --samples 256 --seq-len 2048 --dtype bfloat16 --out $OUT/layers_gpu.json

Each procedure runs in its own subprocess so that its peak memory (RSS on CPU, max allocated on CUDA) is its
own. Both score the same windows; the JSON holds the time of each, their ratio, and the largest difference
between their similarities (goal: 1e-4). The default corpus holds ~50k calibration tokens; when a run needs
more (the paper's 256 x 2048), the calibration text is repeated, which changes nothing about the cost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
from pathlib import Path


def _windows(loaded, samples: int, seq_len: int):
    from engine.corpus import default_corpus, token_windows

    text = default_corpus().calibration
    need_chars = samples * seq_len * 6
    if len(text) < need_chars:
        text = "\n\n".join([text] * (need_chars // len(text) + 1))
    return token_windows(loaded.tokenizer, text, samples, seq_len)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _random_smollm2(dtype: str):
    """SmolLM2-135M's exact architecture (bench/smollm2_config.json) with seeded random weights.

    For the GPU run only: the 94 MiB GGUF does not fit the 64 MiB a device call carries, and the cost of a scan
    does not depend on the weights. Parity on the real weights is measured on the CPU run.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.models import LoadedModel, device

    cfg = LlamaConfig(**{k: v for k, v in json.loads(Path(__file__).with_name("smollm2_config.json").read_text()).items()
                         if not k.startswith("_") and k != "transformers_version"})  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype))
    model.set_attn_implementation("eager")
    model.to(device()).eval()
    return LoadedModel(
        model, None, "smollm2-random-init", "causal", 30, 576, 9, 3, 64, device(), "random", 0.0
    )


def _child(mode: str, args: dict, queue) -> None:
    import torch

    from engine.layers.reference import reference_scan
    from engine.layers.scan import scan_layers
    from engine.models import load_model

    if args.get("random_weights"):
        loaded = _random_smollm2(args["dtype"])
        g = torch.Generator().manual_seed(0)
        windows = torch.randint(0, 49152, (args["samples"], args["seq_len"]), generator=g)
    else:
        loaded = load_model("smollm2", dtype=args["dtype"])
        windows = _windows(loaded, args["samples"], args["seq_len"])
    if args["attn"] != "eager":
        loaded.model.set_attn_implementation(args["attn"])
    cuda = loaded.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # warm-up on a small slice (kernel selection, allocator) so that the timing is of the steady state
    if mode.startswith("ours"):
        scan_layers(loaded, windows[:2], head_layer=None, batch_tokens=args["batch_tokens"])
    else:
        reference_scan(loaded, windows[:2])
    _sync(loaded.device)
    t0 = time.perf_counter()
    if mode.startswith("ours"):
        # "ours": the same outputs as the reference; "ours+hidden": plus the layer x layer hidden-state matrix
        s = scan_layers(
            loaded, windows, head_layer=None, batch_tokens=args["batch_tokens"], hidden=mode == "ours+hidden"
        )
        sims = {
            "attn": s.attn_similarity.tolist(),
            "mlp": s.mlp_similarity.tolist(),
            "block": s.block_similarity.tolist(),
        }
    else:
        r = reference_scan(loaded, windows)
        sims = {k: v.tolist() for k, v in r.items()}
    _sync(loaded.device)
    seconds = time.perf_counter() - t0
    out = {
        "seconds": seconds,
        "tokens": int(windows.numel()),
        "tokens_per_s": windows.numel() / seconds,
        "similarities": sims,
        "backend": loaded.device,
    }
    if cuda:
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["rss_after_load_mb"] = base_rss
    queue.put(out)


def _load_child(cache: str, queue) -> None:
    os.environ["REDEX_CACHE_DIR"] = cache
    import transformers  # noqa: F401 - import time is not load time

    from engine.models import load_model

    t0 = time.perf_counter()
    m = load_model("smollm2")
    queue.put({"seconds": time.perf_counter() - t0, "path": m.load_path})


def _run(target, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    import queue as _queue

    while True:  # a child that dies (import error, OOM) must not leave the parent waiting forever
        try:
            out = q.get(timeout=5)
            break
        except _queue.Empty:
            if not p.is_alive():
                raise RuntimeError(
                    f"{getattr(target, '__name__', target)} child exited with code {p.exitcode}"
                ) from None
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--random-weights", action="store_true", help="SmolLM2's architecture, random weights")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    batch_tokens = a.batch_tokens or (1024 if a.device == "cpu" else 32768)
    args = {
        "samples": a.samples,
        "seq_len": a.seq_len,
        "dtype": a.dtype,
        "attn": a.attn,
        "batch_tokens": batch_tokens,
        "random_weights": a.random_weights,
    }
    result: dict = {"bench": "layers", "config": args, "host": platform.node(), "cpus": os.cpu_count()}
    if not a.skip_load:
        with tempfile.TemporaryDirectory() as cache:
            result["load_cold"] = _run(_load_child, cache)  # GGUF dequantise + safetensors copy + load
            result["load_warm"] = _run(_load_child, cache)  # from the safetensors copy
    result["ours"] = _run(_child, "ours", args)
    print(f"ours: {result['ours']['seconds']:.2f} s", flush=True)
    result["ours_with_hidden_matrix"] = _run(_child, "ours+hidden", args)
    print(f"ours + hidden-state matrix: {result['ours_with_hidden_matrix']['seconds']:.2f} s", flush=True)
    if not a.skip_reference:
        result["reference"] = _run(_child, "reference", args)
        print(f"reference: {result['reference']['seconds']:.2f} s", flush=True)
        ours, ref = result["ours"]["similarities"], result["reference"]["similarities"]
        result["max_abs_diff"] = max(abs(x - y) for k in ours for x, y in zip(ours[k], ref[k]))
        result["speedup_vs_reference"] = result["reference"]["seconds"] / result["ours"]["seconds"]
    out = Path(a.out or f"bench/results/layers_{a.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in result.items() if k not in ("ours", "ours_with_hidden_matrix", "reference")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
