"""Superposition benchmarks -> bench/results/superposition.json.

    .venv/bin/python -m bench.superposition                 # CPU: SAE 10k x 576, toy sweep, UMAP, layer scan
    .venv/bin/python -m bench.superposition --quick         # smaller, for a smoke run

GPU (the device machine has no copy of SmolLM2's weights, so activations travel):

    .venv/bin/python -m bench.superposition --gpu-inputs .cache/sae_gpu        # capture here, fp16 safetensors
    python3 -m bench.superposition --device-job .cache/sae_gpu --out $OUT     # there: time the SAE, run the scan
    .venv/bin/python -m bench.superposition --import-gpu DIR             # here: merge into the JSON + cache

The tab's default views are shipped precomputed (engine/superposition/shipped.py, assets/superposition/):

    .venv/bin/python -m bench.superposition --defaults-inputs .cache/sae_defaults    # capture here (fp32)
    python3 -m bench.superposition --defaults-job .cache/sae_defaults --out $OUT    # there: train the SAEs
    .venv/bin/python -m bench.superposition --import-defaults DIR [--inputs .cache/sae_defaults]  # write assets

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


def _default_specs():
    """(spec, validated params, shipped key) of every shipped default measurement."""
    from engine.registry import get
    from engine.superposition import shipped

    out = []
    for spec in shipped.SPECS:
        params = get("sae-feature-count").validate(dict(shipped.DEFAULT_SAE))
        parts = (spec["model"], spec["layer"], spec["site"], "", 128, params, (), None, 0)
        out.append((spec, params, shipped.key(parts)))
    return out


def capture_default_inputs(folder: Path) -> None:
    """The default views' activations, captured exactly as the engine's measurement captures them (fp32)."""
    import safetensors.torch

    from engine.models import load_model
    from engine.superposition.activations import collect_activations

    folder.mkdir(parents=True, exist_ok=True)
    lm = load_model("smollm2")
    meta = []
    for spec, params, key in _default_specs():
        t0 = time.perf_counter()
        a = collect_activations(lm, [spec["layer"]], site=spec["site"], max_activations=params["max_activations"],
                                seq_len=128)  # fmt: skip
        layer = spec["layer"]
        safetensors.torch.save_file(
            {
                "acts": a.acts[layer].contiguous(),
                "rows": a.rows[layer].contiguous(),
                "token_ids": a.token_ids,
            },
            str(folder / f"L{layer}.safetensors"),
        )
        meta.append(
            {"layer": layer, "key": key, "dropped": a.dropped[layer], "capture_s": time.perf_counter() - t0}
        )
        print(f"layer {layer}: {tuple(a.acts[layer].shape)} in {meta[-1]['capture_s']:.1f} s", flush=True)
    (folder / "meta.json").write_text(json.dumps(meta))


def default_job(folder: Path, out: Path, dev: str | None = None) -> None:
    """Train each default SAE with the engine's own measure_activations (on a GPU when there is one)."""
    import safetensors.torch

    from engine.registry import _REGISTRY  # not get(): that imports every family, and their dependencies
    from engine.superposition.measure import _sae_config, measure_activations

    dev = dev or ("cuda" if torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    from engine.superposition import shipped

    res = {"host": _host(), "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else "none", "runs": []}
    for m in json.loads((folder / "meta.json").read_text()):
        params = _REGISTRY["sae-feature-count"].validate(dict(shipped.DEFAULT_SAE))
        acts = safetensors.torch.load_file(str(folder / f"L{m['layer']}.safetensors"))["acts"]
        t0 = time.perf_counter()
        metrics, tr, sae = measure_activations(acts, config=_sae_config(**params), seed=0, device=dev)
        sec = time.perf_counter() - t0
        safetensors.torch.save_file(
            {"weight": sae.weight.detach().cpu().contiguous(), "b_enc": sae.b_enc.detach().cpu().contiguous(),
             "scale": torch.tensor([sae.scale])},
            str(out / f"sae_L{m['layer']}.safetensors"),
        )  # fmt: skip
        keep = (
            "epochs",
            "best_epoch",
            "converged",
            "sae_seconds",
            "losses",
            "l0",
            "explained_variance",
            "psi",
        )
        res["runs"].append({"layer": m["layer"], "seconds": sec, **{k: metrics[k] for k in keep}})
        print(f"layer {m['layer']}: {tr.epochs} epochs, converged {tr.stopped_early}, L0 {metrics['l0']:.1f}, "
              f"psi {metrics['psi']:.3f}, {sec:.1f} s", flush=True)  # fmt: skip
    (out / "defaults_job.json").write_text(json.dumps(res))


def import_defaults(job: Path, inputs: Path) -> None:
    """Assemble the shipped measurements (statistics recomputed here on the device's SAE weights) and the
    default feature map, and write them with their index into assets/superposition/."""
    import safetensors.torch

    from engine.models import load_model
    from engine.superposition import shipped
    from engine.superposition.activations import ActivationSet
    from engine.superposition.feature_map import feature_map
    from engine.superposition.measure import assemble, measure_activations
    from engine.superposition.sae import SparseAutoencoder

    res = json.loads((job / "defaults_job.json").read_text())
    runs = {r["layer"]: r for r in res["runs"]}
    meta = {m["layer"]: m for m in json.loads((inputs / "meta.json").read_text())}
    tok = load_model("smollm2").tokenizer
    entries = []
    for spec, params, key in _default_specs():
        layer, run = spec["layer"], runs[spec["layer"]]
        t = safetensors.torch.load_file(str(inputs / f"L{layer}.safetensors"))
        w = safetensors.torch.load_file(str(job / f"sae_L{layer}.safetensors"))
        sae = SparseAutoencoder(w["weight"].shape[1], w["weight"].shape[0], tied=True)
        with torch.no_grad():
            sae.weight.copy_(w["weight"])
            sae.b_enc.copy_(w["b_enc"])
        sae.scale = float(w["scale"][0])
        sae.eval()
        aset = ActivationSet(acts={layer: t["acts"]}, token_ids=t["token_ids"], rows={layer: t["rows"]},
                             site=spec["site"], model_name="smollm2", width=int(t["acts"].shape[1]),
                             dropped={layer: meta[layer]["dropped"]})  # fmt: skip
        metrics, _, _ = measure_activations(t["acts"], sae=sae)
        metrics.update({k: run[k] for k in ("epochs", "best_epoch", "converged", "sae_seconds", "losses")})
        cap_s = meta[layer]["capture_s"]
        timings = {"capture": cap_s, "sae": run["seconds"], "total": cap_s + run["seconds"]}
        m = assemble(spec["model"], layer, spec["site"], None, 128, None, params, 0, aset, metrics, sae, tok,
                     timings, "cuda" if res["gpu"] != "none" else "cpu")  # fmt: skip
        m.precomputed = (f"precomputed by bench/superposition.py (SAE trained on {res['gpu']}, "
                         f"{time.strftime('%Y-%m-%d', time.gmtime())})")  # fmt: skip
        m.shipped_key = key
        fm = feature_map(m) if spec["feature_map"] else None
        if fm is not None:
            fm.precomputed = m.precomputed.removeprefix("precomputed ")
        entries.append((key, m, fm))
        print(f"layer {layer}: F {m.effective_features:.1f}, psi {m.psi:.3f}, L0 {m.l0:.1f}, "
              f"converged {m.converged}", flush=True)  # fmt: skip
    shipped.write(entries)
    print(f"wrote {shipped.ASSETS}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["sae", "toy", "umap", "scan"], nargs="*", default=None)
    ap.add_argument("--gpu-inputs", type=Path)
    ap.add_argument("--device-job", type=Path)
    ap.add_argument("--no-scan", action="store_true", help="with --gpu-inputs: only the 10k SAE activations")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")))
    ap.add_argument("--import-gpu", type=Path)
    ap.add_argument("--defaults-inputs", type=Path, help="capture the shipped defaults' activations here")
    ap.add_argument("--defaults-job", type=Path, help="train the shipped defaults' SAEs (GPU machine)")
    ap.add_argument("--import-defaults", type=Path, help="the --defaults-job output folder: write the assets")
    ap.add_argument(
        "--inputs", type=Path, default=Path(".cache/sae_defaults"), help="--defaults-inputs folder"
    )
    ap.add_argument("--sae-max-epochs", type=int, default=300, help="epoch cap of the 10k SAE bench")
    args = ap.parse_args(argv)
    if args.gpu_inputs:
        return capture_gpu_inputs(args.gpu_inputs, scan=not args.no_scan)
    if args.device_job:
        return device_job(args.device_job, args.out)
    if args.import_gpu:
        return import_gpu(args.import_gpu)
    if args.defaults_inputs:
        return capture_default_inputs(args.defaults_inputs)
    if args.defaults_job:
        return default_job(args.defaults_job, args.out)
    if args.import_defaults:
        return import_defaults(args.import_defaults, args.inputs)
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
