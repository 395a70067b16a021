"""Superposition benchmarks -> bench/results/superposition.json.

    .venv/bin/python -m bench.superposition                 # CPU: SAE 10k x 576, toy sweep, UMAP, layer scan
    .venv/bin/python -m bench.superposition --quick         # smaller, for a smoke run

GPU (the device machine has no copy of SmolLM2's weights, so activations travel):

    .venv/bin/python -m bench.superposition --gpu-inputs .cache/sae_gpu        # capture here, fp16 safetensors
    python3 -m bench.superposition --device-job .cache/sae_gpu --out $OUT     # there: time the SAE, run the scan
    .venv/bin/python -m bench.superposition --import-gpu DIR             # here: merge into the JSON + cache

Targets (issue 5): SAE training on 10,000 activations of width 576 at expansion 4 under 30 s on this CPU to the
convergence criterion; the toy sweep (>= 8 levels) under 60 s; warm UMAP under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
OUT_JSON = RESULTS / "superposition.json"
SAE_LAYER = 15  # a middle layer of SmolLM2's 30


def _load() -> dict:
    if OUT_JSON.exists():
        try:
            return json.loads(OUT_JSON.read_text())
        except json.JSONDecodeError:
            pass
    return {}


def _save(data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(data, indent=2))
    print(f"wrote {OUT_JSON}")


def _host() -> dict:
    return {
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def bench_sae(acts: torch.Tensor, device: str, **cfg_kw) -> dict:
    from engine.superposition.measure import measure_activations
    from engine.superposition.sae import SAEConfig

    cfg = SAEConfig(**cfg_kw)
    t0 = time.perf_counter()
    m, tr, _ = measure_activations(acts, config=cfg, seed=0, device=device)
    total = time.perf_counter() - t0
    return {
        "device": device,
        "n_activations": int(min(acts.shape[0], cfg.max_activations)),
        "width": int(acts.shape[1]),
        "d_sae": m["d_sae"],
        "config": cfg.__dict__,
        "train_seconds": tr.seconds,
        "total_seconds": total,
        "epochs": tr.epochs,
        "best_epoch": tr.best_epoch,
        "converged": tr.stopped_early,
        "seconds_per_epoch": tr.seconds / max(tr.epochs, 1),
        "effective_features": m["effective_features"],
        "psi": m["psi"],
        "explained_variance": m["explained_variance"],
        "l0": m["l0"],
        "dead_fraction": m["dead_fraction"],
        "dense_fraction": m["dense_fraction"],
        "final_loss": tr.losses[-1],
        "goal_seconds": 30.0 if device == "cpu" else None,
    }


def bench_toy(quick: bool) -> dict:
    from engine.superposition.toy import DEFAULT_SPARSITIES, toy_sweep

    out = {}
    # the default (x8, lambda 2) over four seeds, then the paper's SAE setting and the earlier default, seed 0
    runs = [(8.0, 2.0, s) for s in ((0,) if quick else (0, 1, 2, 3))] + (
        [] if quick else [(4.0, 0.1, 0), (4.0, 1.0, 0)]
    )
    for ex, lam, seed in runs:
        r = toy_sweep(DEFAULT_SPARSITIES, sae_expansion=ex, sae_l1=lam, seed=seed)
        out[f"x{ex:g} l1={lam:g} seed={seed}"] = {
            "seconds": r.provenance.timings["total"],
            "timings": r.provenance.timings,
            "levels": len(r.sparsities),
            "pearson_r": r.pearson_r,
            "rows": r.tables()["toy_sweep"],
            "goal_seconds": 60.0,
        }
        print(
            f"toy sweep x{ex:g} lambda={lam} seed {seed}: r={r.pearson_r:.3f} in {r.provenance.timings['total']:.1f} s"
        )
    return out


def bench_umap(quick: bool) -> dict:
    from engine.superposition.feature_map import feature_map, warm_umap
    from engine.superposition.measure import measure_layer

    cold = warm_umap()
    m = measure_layer(
        "smollm2", SAE_LAYER, max_activations=1024 if quick else 2048, max_epochs=3 if quick else 20
    )
    from engine.models import load_model

    tok = load_model("smollm2").tokenizer
    t0 = time.perf_counter()
    fm = feature_map(m, tokenizer=tok)
    warm = time.perf_counter() - t0
    return {
        "warmup_seconds": cold,
        "map_seconds": warm,
        "umap_seconds": fm.provenance.timings.get("umap"),
        "top_tokens_seconds": fm.provenance.timings.get("top_tokens"),
        "points": len(fm.features),
        "dead": fm.n_dead,
        "goal_seconds": 10.0,
    }


def bench_scan(quick: bool) -> dict:
    """The tab's default 'Across layers' scan of SmolLM2 (all 30 layers, sensitivity sweep); fills the cache."""
    from engine.superposition.measure import scan_layers

    t0 = time.perf_counter()
    layers = [0, 15, 29] if quick else None
    scan = scan_layers(
        "smollm2", layers, use_disk_cache=not quick, progress=lambda f, m: print(f"{f:.2f} {m}", flush=True)
    )
    return {
        "backend": scan.provenance.backend,
        "seconds": time.perf_counter() - t0,
        "rows_per_layer": scan.n_activations,
        "params": scan.provenance.params,
        "table": scan.tables()["layers"],
        "sweep": scan.sweep,
    }


def capture_gpu_inputs(folder: Path, scan: bool = True) -> None:
    """Activations for the device job: layer SAE_LAYER x 10k, and every layer x the scan's default count."""
    import safetensors.torch

    from engine.models import load_model
    from engine.registry import get
    from engine.superposition.activations import collect_activations

    folder.mkdir(parents=True, exist_ok=True)
    lm = load_model("smollm2")
    a = collect_activations(lm, [SAE_LAYER], max_activations=10_000)
    safetensors.torch.save_file({"acts": a.acts[SAE_LAYER].half()}, str(folder / "sae10k.safetensors"))
    if not scan:
        print(f"wrote {folder} (no scan inputs)")
        return
    n = get("sae-layer-scan").defaults()["max_activations"]
    s = collect_activations(lm, list(range(lm.n_layers)), max_activations=n)
    m = min(v.shape[0] for v in s.acts.values())
    safetensors.torch.save_file(
        {str(k): v[:m].half() for k, v in s.acts.items()}, str(folder / "scan.safetensors")
    )
    (folder / "meta.json").write_text(
        json.dumps({"layers": list(range(lm.n_layers)), "dropped": s.dropped, "rows": m})
    )
    print(f"wrote {folder}")


def device_job(folder: Path, out: Path, dev: str = "cuda") -> None:
    """On the GPU machine: time the 10k SAE (CPU-identical code, CUDA backend) and run the full layer scan."""
    import safetensors.torch

    from engine.registry import _REGISTRY  # not get(): that imports every family, and their dependencies
    from engine.superposition.measure import _sae_config, scan_activations

    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"host": _host(), "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else "none"}
    x = safetensors.torch.load_file(str(folder / "sae10k.safetensors"))["acts"].float()
    bench_sae(x[:2048], dev, max_epochs=2)  # warm-up (CUDA context, kernels)
    res["sae_10k"] = bench_sae(x, dev)
    (out / "superposition_gpu.json").write_text(json.dumps(res))  # kept if the next run is cut short
    res["sae_10k_paper_rule"] = bench_sae(x, dev, min_delta=0.0)
    print(json.dumps(res["sae_10k"], indent=1))
    if not (folder / "scan.safetensors").exists():
        (out / "superposition_gpu.json").write_text(json.dumps(res))
        return
    t = safetensors.torch.load_file(str(folder / "scan.safetensors"))
    acts = {int(k): v.float() for k, v in t.items()}
    params = _REGISTRY["sae-layer-scan"].validate({})
    do_sweep = bool(params.pop("sweep"))
    t0 = time.perf_counter()
    cols = scan_activations(acts, _sae_config(**params), do_sweep=do_sweep, seed=0, device=dev)
    res["scan"] = {"seconds": time.perf_counter() - t0, "params": params, "sweep": do_sweep, "columns": cols}
    (out / "superposition_gpu.json").write_text(json.dumps(res))
    print("scan seconds", res["scan"]["seconds"])


def import_gpu(folder: Path) -> None:
    """Merge the device job's numbers into the JSON, and put its layer scan into the engine's disk cache."""
    from engine.results import Provenance
    from engine.superposition.measure import LayerScan, remember_scan, scan_key

    res = json.loads((folder / "superposition_gpu.json").read_text())
    meta = (
        json.loads((Path(".cache/sae_gpu") / "meta.json").read_text())
        if Path(".cache/sae_gpu/meta.json").exists()
        else {}
    )
    sc = res["scan"]
    params = dict(sc["params"])
    layers = sc["columns"]["layers"]
    key = scan_key("smollm2", layers, "resid", None, 128, {**params}, sc["sweep"], 0)
    prov = Provenance(
        method="sae-layer-scan",
        params={
            **params,
            "sweep": sc["sweep"],
            "model": "smollm2",
            "layers": layers,
            "site": "resid",
            "seq_len": 128,
        },
        input_fingerprint=key,
        seed=0,
        backend="cuda",
        timings={"sae": sc["seconds"], "total": sc["seconds"]},
    )
    scan = LayerScan(
        provenance=prov, model="smollm2", site="resid", n_activations=meta.get("rows", 0), **sc["columns"]
    )
    remember_scan(scan, key)  # the tab's default scan then answers from the cache
    data = _load()
    data["gpu"] = {k: v for k, v in res.items() if k != "scan"}
    data["gpu"]["scan_seconds"] = sc["seconds"]
    data["layer_scan_smollm2"] = {
        "backend": "cuda",
        "rows_per_layer": meta.get("rows"),
        "params": params,
        "table": scan.tables()["layers"],
        "sweep": sc["columns"]["sweep"],
    }
    _save(data)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["sae", "toy", "umap", "scan"], nargs="*", default=None)
    ap.add_argument("--gpu-inputs", type=Path)
    ap.add_argument("--device-job", type=Path)
    ap.add_argument("--no-scan", action="store_true", help="with --gpu-inputs: only the 10k SAE activations")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")))
    ap.add_argument("--import-gpu", type=Path)
    ap.add_argument("--sae-max-epochs", type=int, default=300, help="epoch cap of the 10k SAE bench")
    args = ap.parse_args(argv)
    if args.gpu_inputs:
        return capture_gpu_inputs(args.gpu_inputs, scan=not args.no_scan)
    if args.device_job:
        return device_job(args.device_job, args.out)
    if args.import_gpu:
        return import_gpu(args.import_gpu)
    parts = args.only or ["toy", "umap", "scan", "sae"]
    data = _load()
    data["host"] = _host()
    data["date"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if "toy" in parts:
        data["toy_sweep"] = bench_toy(args.quick)
        _save(data)
    if "umap" in parts:
        data["umap"] = bench_umap(args.quick)
        print("umap", data["umap"])
        _save(data)
    if "scan" in parts:
        data["layer_scan_smollm2"] = bench_scan(args.quick)
        _save(data)
    if "sae" in parts:
        from engine.models import load_model
        from engine.superposition.activations import collect_activations

        n = 2048 if args.quick else 10_000
        acts = collect_activations(load_model("smollm2"), [SAE_LAYER], max_activations=n).acts[SAE_LAYER]
        data["sae_cpu"] = bench_sae(acts, "cpu", max_epochs=5 if args.quick else args.sae_max_epochs)
        print("sae", data["sae_cpu"])
        _save(data)


if __name__ == "__main__":
    main()
