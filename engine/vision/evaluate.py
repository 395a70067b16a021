"""Evaluation of the scene ViT and the scene VLM on the validation split of generated scenes.

Run by the training script after training (on weights rounded to float16 exactly as they ship) and by
``bench/vision.py`` on the shipped weights:

- :func:`evaluate_vit`: count accuracy, per-label presence accuracy and patch accuracy;
- :func:`evaluate_vlm`: answer accuracy per question type against the majority-answer baseline of that type, and
  the same with random image-token pruning before the LM (3 seeds), with the share of objects that keep at
  least one patch;
- :func:`latency`: median batch-1 wall time of a ViT forward and a VLM prefill.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import torch

from engine.vision import scenes
from engine.vision.vit import SceneViT, vit_targets
from engine.vision.vlm import SceneVLM

__all__ = ["evaluate_vit", "evaluate_vlm", "latency"]


@torch.no_grad()
def evaluate_vit(vit: SceneViT, *, n: int, dev: str, batch: int = 256) -> dict:
    vit.eval()
    tot = Counter()
    for s in range(0, n, batch):
        b = scenes.make_batch("val", s, min(batch, n - s), device=dev)
        tgt = vit_targets(b, dev)
        lg = vit.head_logits(vit(b.images).last_hidden_state)
        pres = (lg["presence"] > 0).float()
        tot["n"] += len(b)
        tot["count"] += (lg["count"].argmax(-1) == tgt["count"]).sum().item()
        tot["presence_labels"] += (pres == tgt["presence"]).float().mean(1).sum().item()
        tot["presence_exact"] += (pres == tgt["presence"]).all(1).sum().item()
        tot["patch"] += (lg["patch"].argmax(-1) == tgt["patch"]).float().mean(1).sum().item()
        tot["patch_bg"] += (tgt["patch"] == 0).float().mean(1).sum().item()
    n_ = tot.pop("n")
    return {k: v / n_ for k, v in tot.items()} | {"n_scenes": n_}


@torch.no_grad()
def evaluate_vlm(vlm: SceneVLM, *, n: int, dev: str, keeps=(1.0, 0.5, 0.25, 0.11), seeds=(0, 1, 2),
                 batch: int = 128, keep_positions: bool = False) -> dict:  # fmt: skip
    """Answer accuracy per question type with all image tokens and with random pruning before the LM
    (kept tokens in raster order; compacted positions, or their original ones with ``keep_positions``)."""
    vlm.eval()
    N = vlm.n_image_tokens
    Q = len(scenes.QTYPES)
    answers, qtypes, preds, touched = [], [], {}, {}
    for s in range(0, n, batch):
        b = scenes.make_batch("val", s, min(batch, n - s), device=dev)
        B = len(b)
        q = torch.as_tensor(b.questions, device=dev).flatten(0, 1)
        emb = vlm.image_embeds(b.images).repeat_interleave(Q, 0)
        answers.append(b.answers.reshape(-1))
        qtypes.append(b.qtypes.reshape(-1))
        cov = b.coverage.to(dev)  # [B, K, N]
        seen = cov.sum(2) > 0
        for keep in keeps:
            for seed in seeds if keep < 1 else (0,):
                key = (keep, seed)
                kk = None
                if keep < 1:
                    k = max(1, round(keep * N))
                    g = torch.Generator().manual_seed(seed * 1_000_003 + s)
                    idx = torch.rand(B, N, generator=g).argsort(1)[:, :k].to(dev)
                    mask = torch.zeros(B, N, dtype=torch.bool, device=dev).scatter_(1, idx, True)
                    hit = ((cov > 0) & mask[:, None]).any(2)
                    touched.setdefault(key, []).append(((hit & seen).sum() / seen.sum()).item())
                    kk = idx.repeat_interleave(Q, 0)
                p = vlm(None, q, img_embeds=emb, keep=kk, keep_positions=keep_positions, logits_to_keep=1)
                p = p.logits[:, -1].argmax(-1)
                preds.setdefault(key, []).append(p.cpu().numpy())
    ans, qt = np.concatenate(answers), np.concatenate(qtypes)

    def per_type(pred):
        out = {}
        for t, name in enumerate(scenes.QTYPES):
            m = qt == t
            out[name] = float((pred[m] == ans[m]).mean()) if m.any() else None
        out["overall"] = float((pred == ans).mean())  # not "all": that is a question type
        return out

    res = {"n_scenes": n, "n_questions": int(len(ans)), "keep_positions": keep_positions, "counts": {},
           "majority": {}}  # fmt: skip
    for t, name in enumerate(scenes.QTYPES):
        m = qt == t
        c = Counter(ans[m].tolist())
        res["counts"][name] = int(m.sum())
        res["majority"][name] = max(c.values()) / m.sum() if m.any() else None
    res["majority"]["overall"] = float(np.mean([res["majority"][k] for k in scenes.QTYPES]))
    res["accuracy"] = per_type(np.concatenate(preds[(1.0, 0)]))
    res["random_pruning"] = {}
    for keep in keeps:
        if keep >= 1:
            continue
        runs = [per_type(np.concatenate(preds[(keep, s)])) for s in seeds]
        res["random_pruning"][str(keep)] = {
            "kept_tokens": max(1, round(keep * N)),
            "accuracy_mean": {k: float(np.mean([r[k] for r in runs])) for k in runs[0]},
            "accuracy_std": {k: float(np.std([r[k] for r in runs])) for k in runs[0]},
            "loss_points": 100 * (res["accuracy"]["overall"] - float(np.mean([r["overall"] for r in runs]))),
            "objects_touched": float(np.mean([np.mean(touched[(keep, s)]) for s in seeds])),
        }
    return res


@torch.no_grad()
def latency(vlm: SceneVLM, *, dev: str, repeats: int = 30) -> dict:  # noqa: D401
    """Median wall time (ms) of one ViT forward and one VLM prefill (ViT + projector + LM), batch 1."""
    b = scenes.make_batch("val", 0, 1, device=dev)
    q = torch.as_tensor(b.questions[:, 0], device=dev)
    out = {}
    for name, fn in {
        "vit_forward_ms": lambda: vlm.vit(b.images),
        "vlm_prefill_ms": lambda: vlm(b.images, q),
    }.items():
        for _ in range(5):
            fn()
        ts = []
        for _ in range(repeats):
            if dev == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if dev == "cuda":
                torch.cuda.synchronize()
            ts.append((time.perf_counter() - t) * 1e3)
        out[name] = float(np.median(ts))
    return out
