"""Benchmark of visual token pruning on this machine: scoring overhead per method, prefill latency and FLOPs at
kept fractions 1 / 0.5 / 0.25 / 0.11 (measured speed-up against FLOPs reduction), and the overlay time (warm).

    python -m bench.tokens            # writes bench/results/tokens.json

Batch 1, one question, fp32, median of ``--repeats`` runs after a warm-up run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results" / "tokens.json"
KEEPS = (1.0, 0.5, 0.25, 0.11)
METHODS = (("random-keep", {}), ("cls-attention", {"layer": -1}), ("turbo", {}), ("llavolta", {}),
           ("flowcut", {}), ("pyramiddrop", {}), ("fastv", {}))  # fmt: skip


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--gpu",
        action="store_true",
        help="on a CUDA machine: only the prefill latency against kept fraction (part 2)",
    )
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    from engine.registry import get
    from engine.tokens import core
    from engine.vision import scenes
    from engine.vision.loading import load_vlm

    vlm = load_vlm("scene-vlm")
    b = scenes.make_batch("val", 0, 1)
    px = vlm.encoder.to_pixels(b.images)
    q = b.questions[:, :1]
    res: dict = {"device": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                 "backend": "cpu", "gpu": "not measured (no GPU available to this session)",
                 "repeats": a.repeats}  # fmt: skip
    if a.gpu:
        res |= {"backend": "cuda", "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
        res["note"] = (
            "the model's own forward (SceneVLM: ViT, projector, decoder with the kept image tokens at "
            "their positions), since the pruning runner (engine/tokens/core.py) runs on the CPU"
        )
        for bs in (1, 64):
            res[f"prefill_vs_kept_batch{bs}"] = _gpu_prefill_vs_kept(vlm, bs, a.repeats)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return res

    # 1. scoring overhead: seconds inside the policy / seconds of the rest of the prefill it rides on
    over = {}
    for name, params in METHODS:
        m = get(name)
        p = m.validate(dict(params, keep=0.25))
        score, total = [], []
        for i in range(a.repeats + 1):
            out = core.run_vlm(vlm, px, q, m(vlm, **p))
            if i:
                score.append(out.score_s)
                total.append(out.forward_s)
        s, t = float(np.median(score)), float(np.median(total))
        over[name] = {"score_ms": 1e3 * s, "prefill_ms": 1e3 * t, "overhead_fraction": s / max(t - s, 1e-9),
                      "place": out.stages[0]["place"] if out.stages else "-"}  # fmt: skip
    res["scoring_overhead_keep_0.25"] = over

    res["prefill_vs_kept"] = _prefill_vs_kept(vlm, px, q, a.repeats)

    # 3. overlay, warm: one image, one method (cached result -> picture), and the picture alone
    from app.tabs import tokens as tab
    from visualizers.tokens import overlay_image

    args = ("Generated scene", 0, None, None, "scene-vlm", "flowcut", 0.25, -1, -1, "how many objects ?", 3)
    tab.prune(*args)
    res["overlay_handler_warm_ms"] = 1e3 * _median(lambda: tab.prune(*args), a.repeats)
    image = b.image_uint8(0)
    kept = np.arange(0, 196, 4)
    res["overlay_image_ms"] = 1e3 * _median(lambda: overlay_image(image, (14, 14), kept), a.repeats)
    res["uncached_prune_one_image_ms"] = {}
    from engine.tokens.run import PRUNE_CACHE, prune_image

    for name, _ in METHODS:

        def once(name=name):
            PRUNE_CACHE.clear()
            prune_image(image, method=name, keep=0.25)

        res["uncached_prune_one_image_ms"][name] = 1e3 * _median(once, max(3, a.repeats // 3))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return res


def _gpu_prefill_vs_kept(vlm, batch: int, repeats: int, dev: str = "cuda") -> list[dict]:
    """Prefill (ViT + projector + decoder) and decoder-only latency on the GPU against kept fraction."""
    from engine.tokens import core
    from engine.vision import scenes

    m = vlm.extra["module"].to(dev).eval()
    b = scenes.make_batch("val", 0, batch, device=dev)
    q = torch.as_tensor(b.questions[:, 0], device=dev)
    emb = m.image_embeds(b.images)
    rows = []
    for keep in KEEPS:
        k = core.keep_count(keep, 196)
        kk = None if keep >= 1 else core.random_keep(batch, 196, k, 0).to(dev)
        t_all = _median(lambda kk=kk: m(b.images, q, keep=kk, keep_positions=True, logits_to_keep=1), repeats)
        t_lm = _median(lambda kk=kk: m(None, q, img_embeds=emb, keep=kk, keep_positions=True, logits_to_keep=1),
                       repeats)  # fmt: skip
        T = 1 + k + q.shape[1]
        lm_f = core.lm_flops(m.lm.config, [T] * m.lm.config.num_hidden_layers)
        rows.append({"keep": keep, "tokens": k, "batch": batch, "prefill_ms": 1e3 * t_all, "lm_ms": 1e3 * t_lm,
                     "lm_flops_per_image": lm_f})  # fmt: skip
    for r in rows:
        r["lm_flops_reduction"] = rows[0]["lm_flops_per_image"] / r["lm_flops_per_image"]
        r["lm_speedup"] = rows[0]["lm_ms"] / r["lm_ms"]
        r["prefill_speedup"] = rows[0]["prefill_ms"] / r["prefill_ms"]
        r["lm_speedup_over_flops_reduction"] = r["lm_speedup"] / r["lm_flops_reduction"]
    return rows


def _prefill_vs_kept(vlm, px, q, repeats: int) -> list[dict]:
    """Prefill latency and FLOPs against kept fraction (random keep before the LM: pure token reduction)."""
    from engine.registry import get
    from engine.tokens import core

    enc_out = core.run_vit(vlm.encoder, px, None, 7)
    feats = enc_out[0]
    img = core._project(vlm, feats, enc_out[1])
    base, head = core.language_model(vlm)
    qt = torch.as_tensor(q).reshape(len(px), -1).to(img.device)
    rows = []
    for keep in KEEPS:
        k = core.keep_count(keep, 196)
        pol = None if keep >= 1 else get("random-keep")(vlm, keep=keep)
        out = core.run_vlm(vlm, px, q, pol)
        cost = core.run_cost(vlm, out)
        t_prefill = _median(lambda pol=pol, keep=keep: core.run_vlm(
            vlm, px, q, None if keep >= 1 else get("random-keep")(vlm, keep=keep)), repeats)  # fmt: skip
        sub = img[:, :k]
        t_lm = _median(lambda sub=sub: core._lm_shared_prefix(vlm, base, head, sub, qt, 1), repeats)
        rows.append({"keep": keep, "tokens": k, "prefill_ms": 1e3 * t_prefill, "lm_ms": 1e3 * t_lm,
                     "flops": cost["flops"], "lm_flops": cost["lm_flops"], "vit_flops": cost["vit_flops"]})  # fmt: skip
    f0, t0, l0, lf0 = rows[0]["flops"], rows[0]["prefill_ms"], rows[0]["lm_ms"], rows[0]["lm_flops"]
    for r in rows:
        r["flops_reduction"] = f0 / r["flops"]
        r["speedup"] = t0 / r["prefill_ms"]
        r["speedup_over_flops_reduction"] = r["speedup"] / r["flops_reduction"]
        r["lm_flops_reduction"] = lf0 / r["lm_flops"]
        r["lm_speedup"] = l0 / r["lm_ms"]
        r["lm_speedup_over_flops_reduction"] = r["lm_speedup"] / r["lm_flops_reduction"]
    return rows


if __name__ == "__main__":
    main()
