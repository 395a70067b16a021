"""Train the scene ViT, then the scene VLM, on generated scenes; write weights, configs and metrics.

    python -m engine.vision.train --out DIR [--vit-seconds 100 --vlm-seconds 210]   # GPU
    python -m engine.vision.train --out DIR --quick                                 # CPU smoke test

Both phases run for a wall-clock budget with the learning rate following the elapsed fraction of it (linear
warm-up over the first 3%, then cosine to 10%), so one device call of known length trains both models. Data is
generated on the fly, deterministic by scene index (training scene i of the "train" split is seen once); the
validation split is separate ("val" seed). The VLM keeps the ViT frozen (as LLaVA does) and is trained on the
answer token only, with six questions (one per type) per scene sharing one ViT pass.

Evaluation, on weights rounded to float16 exactly as they ship: ViT count accuracy, per-label presence
accuracy and patch accuracy; VLM answer accuracy per question type against the majority-answer baseline of
that type; and the same with random image-token pruning before the LM at 50%, 25% and 11% kept (3 seeds), with
the share of objects that keep at least one patch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.vision import grounding, scenes
from engine.vision.vit import SceneViT, ViTSpec, vit_config, vit_targets
from engine.vision.vlm import LMSpec, SceneVLM, lm_config

__all__ = ["main", "evaluate_vlm", "evaluate_vit"]


def _lr(frac: float, peak: float) -> float:
    if frac < 0.03:
        return peak * frac / 0.03
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (frac - 0.03) / 0.97))))


def _autocast(dev: str):
    return (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev == "cuda"
        else torch.autocast("cpu", enabled=False)
    )


def train_vit(vit: SceneViT, *, seconds: float, batch: int, dev: str, lr: float, log) -> dict:
    opt = torch.optim.AdamW(vit.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    vit.train()
    t0, step, hist = time.perf_counter(), 0, []
    while (el := time.perf_counter() - t0) < seconds:
        for g in opt.param_groups:
            g["lr"] = _lr(el / seconds, lr)
        b = scenes.make_batch("train", step * batch, batch, device=dev)
        tgt = vit_targets(b, dev)
        with _autocast(dev):
            out = vit(b.images)
            lg = vit.head_logits(out.last_hidden_state)
        loss_p = F.binary_cross_entropy_with_logits(lg["presence"].float(), tgt["presence"])
        loss_c = F.cross_entropy(lg["count"].float(), tgt["count"])
        loss_t = F.cross_entropy(lg["patch"].float().flatten(0, 1), tgt["patch"].flatten())
        loss = loss_p * 4 + loss_c + loss_t
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vit.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            rec = {"step": step, "s": round(el, 1), "loss": round(loss.item(), 4), "presence": round(loss_p.item(), 4),
                   "count": round(loss_c.item(), 4), "patch": round(loss_t.item(), 4)}  # fmt: skip
            hist.append(rec)
            log(f"vit {rec}")
        step += 1
    return {"steps": step, "seconds": time.perf_counter() - t0, "scenes": step * batch, "history": hist}


def position_questions(
    b: scenes.SceneBatch, prob: float, rng: np.random.Generator, one_sided: float = 0.0
) -> None:
    """Training aids for relation questions (a curriculum, not question types of the data set).

    With probability ``prob`` a relation question ``is the A <rel> the B ?`` becomes ``is the A <rel> ?``,
    answered against the image centre (``left`` = the object's centre is left of the middle, by at least 6 px):
    reading one object's position is the first half of a relation. With probability ``one_sided`` a question
    about ``right``/``below`` is asked as its negation with ``left``/``above`` (the objects differ by at least
    5 px, so the answers flip exactly). Why: with all four words equally likely, "yes" is uncorrelated with any
    position (an XOR of word and position), the first-order gradient that would teach the decoder to carry
    positions averages to zero, and runs without this stayed at chance. Changes ``b.questions``/``b.answers``."""
    if prob <= 0 and one_sided <= 0:
        return
    T, L, mid = scenes.TOKEN_ID, scenes.QLEN, scenes.IMAGE_SIZE / 2
    j = scenes.QTYPES.index("relation")
    yes, no = T["yes"], T["no"]
    for i in np.flatnonzero(b.qtypes[:, j] == j):
        q = b.questions[i, j, L - 9 :].copy()  # is the <size> <shape> <rel> the <size> <shape> ?
        rel = scenes.RELATIONS.index(scenes.VOCAB[q[4]])
        flip = rel % 2 == 1 and rng.random() < one_sided
        if flip:
            rel -= 1
            q[4] = T[scenes.RELATIONS[rel]]
        if rng.random() < prob:
            z, s = scenes.SIZES.index(scenes.VOCAB[q[2]]), scenes.SHAPES.index(scenes.VOCAB[q[3]])
            obj = np.flatnonzero(b.present[i] & (b.size[i] == z) & (b.shape[i] == s))[0]
            d = b.center[i, obj, 0 if rel < 2 else 1] - mid
            if abs(d) >= 6:
                truth = d < 0 if rel % 2 == 0 else d > 0
                b.questions[i, j] = T["<pad>"]
                b.questions[i, j, L - 6 :] = [T["is"], T["the"], q[2], q[3], q[4], T["?"]]
                b.answers[i, j] = yes if truth else no
                continue
        if flip:
            b.questions[i, j, L - 9 :] = q
            b.answers[i, j] = no if b.answers[i, j] == yes else yes


def drop_tokens(
    b: scenes.SceneBatch, n: int, prob: float, gen: torch.Generator, dev: str
) -> torch.Tensor | None:
    """Training aid that makes the VLM robust to image-token pruning (the tiny model otherwise treats any pruned
    sequence as out of distribution, and every method, random included, loses alike): with probability ``prob``
    keep a fraction U(0.08, 0.75) of the image tokens, at their original positions, chosen at random (half the
    batches) or biased towards object patches (the other half, as attention-based methods choose). Returns the
    kept patch indices [B, k] or None."""
    if prob <= 0 or torch.rand((), generator=gen).item() >= prob:
        return None
    B = len(b)
    k = max(1, round(n * (0.08 + 0.67 * torch.rand((), generator=gen).item())))
    score = torch.rand(B, n, generator=gen)
    if torch.rand((), generator=gen).item() < 0.5:
        score = score + (b.coverage.cpu().amax(1) > 0.25).float() * torch.rand(B, 1, generator=gen) * 2
    return score.argsort(1, descending=True)[:, :k].to(dev)


def train_vlm(
    vlm: SceneVLM, *, seconds: float, batch: int, dev: str, lr: float, log, relation_weight: float = 1.0,
    position_aux: float = 0.0, one_sided: float = 0.0, token_drop: float = 0.0, start: int = 10_000_000, seed: int = 0,
    ground_weight: float = 0.0, ground_layer: int = 2, position_weight: float = 0.0,
) -> dict:  # fmt: skip
    vlm.vit.requires_grad_(False).eval()
    ground = None
    if ground_weight > 0 or position_weight > 0:
        ground = grounding.AttentionGrounding(vlm.lm, ground_layer)
    params = list(vlm.projector.parameters()) + list(vlm.lm.parameters())
    params += list(ground.probe.parameters()) if ground is not None else []
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    vlm.projector.train()
    vlm.lm.train()
    Q = len(scenes.QTYPES)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    t0, step, hist = time.perf_counter(), 0, []
    while (el := time.perf_counter() - t0) < seconds:
        for g in opt.param_groups:
            g["lr"] = _lr(el / seconds, lr)
        b = scenes.make_batch("train", start + step * batch, batch, device=dev)
        frac = el / seconds  # both aids fade out: the aux questions over the run, one-sidedness by 70% of it
        position_questions(b, position_aux * max(0.0, 1 - frac), rng, one_sided * max(0.0, 1 - frac / 0.7))
        kept = drop_tokens(b, vlm.n_image_tokens, token_drop, gen, dev)
        q = torch.as_tensor(b.questions, device=dev).flatten(0, 1)  # [B*Q, QLEN]
        a = torch.as_tensor(b.answers, device=dev).flatten()
        with _autocast(dev):
            with torch.no_grad():
                feats = vlm.image_features(b.images)
            emb = vlm.projector(feats).repeat_interleave(Q, 0)
            kk = kept.repeat_interleave(Q, 0) if kept is not None else None
            out = vlm(None, q, img_embeds=emb, keep=kk, keep_positions=True, logits_to_keep=1)
            logits = out.logits[:, -1]
        w = torch.ones(len(a), device=dev)
        w[torch.as_tensor(b.qtypes, device=dev).flatten() == scenes.QTYPES.index("relation")] = (
            relation_weight
        )
        loss = (F.cross_entropy(logits.float(), a, reduction="none") * w).sum() / w.sum()
        loss_g = loss_p = torch.zeros((), device=dev)
        if ground is not None:
            rows, sa, sb = grounding.object_targets(b)
            if len(rows):
                rows_t = torch.as_tensor(rows, device=dev)
                if ground_weight > 0:
                    ma, mb = grounding.patch_masks(b, rows, sa, sb, kept, dev)
                    n_img = vlm.n_image_tokens if kept is None else kept.shape[1]
                    loss_g = ground.loss(rows_t, ma, mb, (1, 1 + n_img))
                if position_weight > 0:
                    loss_p = ground.position_loss(rows_t, *grounding.position_targets(b, rows, sa, sb, dev))
                loss = loss + ground_weight * loss_g + position_weight * loss_p
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0:
            acc = (logits.argmax(-1) == a).float().mean().item()
            rel = torch.as_tensor(b.qtypes, device=dev).flatten() == scenes.QTYPES.index("relation")
            rel_acc = (logits.argmax(-1) == a)[rel].float().mean().item() if rel.any() else float("nan")
            rec = {"step": step, "s": round(el, 1), "loss": round(loss.item(), 4), "acc": round(acc, 4),
                   "relation_acc": round(rel_acc, 4), "ground": round(loss_g.item(), 4),
                   "position": round(loss_p.item(), 4), "grad_norm": round(gnorm.item(), 3)}  # fmt: skip
            hist.append(rec)
            log(f"vlm {rec}")
        step += 1
    if ground is not None:
        ground.close()
    return {"steps": step, "seconds": time.perf_counter() - t0, "scenes": step * batch,
            "questions": step * batch * Q, "history": hist}  # fmt: skip


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


def _round_fp16(module: torch.nn.Module) -> None:
    for p in module.parameters():
        p.data = p.data.half().float()


def _save(vlm: SceneVLM, out: Path) -> None:
    from safetensors.torch import save_file

    vit_sd = {k: v.detach().half().contiguous().cpu() for k, v in vlm.vit.state_dict().items()}
    save_file(vit_sd, str(out / "vit.safetensors"), metadata={"format": "pt", "model": "scene-vit"})
    sd = {f"projector.{k}": v for k, v in vlm.projector.state_dict().items()}
    sd |= {
        f"lm.{k}": v for k, v in vlm.lm.state_dict().items() if k != "lm_head.weight"
    }  # tied to embeddings
    sd = {k: v.detach().half().contiguous().cpu() for k, v in sd.items()}
    save_file(sd, str(out / "vlm.safetensors"), metadata={"format": "pt", "model": "scene-vlm"})
    (out / "vit_config.json").write_text(vlm.vit.config.to_json_string())
    (out / "lm_config.json").write_text(vlm.lm.config.to_json_string())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for weights, configs and metrics.json")
    ap.add_argument("--quick", action="store_true", help="tiny CPU run (seconds) for tests")
    ap.add_argument("--vit-seconds", type=float, default=100.0)
    ap.add_argument("--vlm-seconds", type=float, default=210.0)
    ap.add_argument("--vit-batch", type=int, default=256)
    ap.add_argument("--vlm-batch", type=int, default=128, help="scenes per step (x6 questions)")
    ap.add_argument("--vit-lr", type=float, default=1e-3)
    ap.add_argument("--vlm-lr", type=float, default=1e-3)
    ap.add_argument("--val-n", type=int, default=2000, help="validation scenes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--relation-weight", type=float, default=1.0, help="loss weight of relation questions")
    ap.add_argument(
        "--position-aux",
        type=float,
        default=0.0,
        help="share of relation questions asked against the image centre at the start (fades to 0)",
    )
    ap.add_argument(
        "--one-sided",
        type=float,
        default=0.0,
        help="share of right/below questions asked as negated left/above at the start (fades to 0)",
    )
    ap.add_argument(
        "--token-drop",
        type=float,
        default=0.0,
        help="share of batches trained with a random subset of the image tokens",
    )
    ap.add_argument(
        "--ground-weight",
        type=float,
        default=0.0,
        help="weight of the attention-grounding aid for relation questions (engine/vision/grounding.py)",
    )
    ap.add_argument(
        "--position-weight",
        type=float,
        default=0.0,
        help="weight of the position-read aid (object centres regressed from the grounded heads)",
    )
    ap.add_argument("--ground-layer", type=int, default=2, help="decoder layer whose heads 0/1 are grounded")
    ap.add_argument("--vlm-start", type=int, default=10_000_000, help="first training scene index of the VLM")
    ap.add_argument(
        "--pos-init",
        type=float,
        default=0.0,
        help="add this many times a unit 2-D sine-cosine code to projector.pos before training",
    )
    ap.add_argument("--fresh-vlm", action="store_true", help="with --init-from: take only the ViT")
    ap.add_argument("--init-from", default="", help="folder with vit/vlm safetensors to continue from")
    a = ap.parse_args(argv)
    if a.quick:  # tiny models and budgets: exercises every step of the script in seconds
        a.vit_seconds, a.vlm_seconds, a.vit_batch, a.vlm_batch, a.val_n = 1, 1, 4, 2, 4
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(a.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    log = lambda m: print(m, flush=True)  # noqa: E731
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else "none (CPU)"
    log(f"device {dev} {gpu}; torch {torch.__version__}")
    vspec = (
        ViTSpec(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        if a.quick
        else ViTSpec()
    )
    lspec = LMSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=2) if a.quick else LMSpec()  # fmt: skip
    vcfg = vit_config(vspec)
    vcfg._attn_implementation = "sdpa"
    vit = SceneViT(vcfg).to(dev)
    lcfg = lm_config(lspec)
    lcfg._attn_implementation = "sdpa"
    vlm = SceneVLM(vit, lcfg).to(dev)
    if a.init_from:
        from safetensors.torch import load_file

        src = Path(a.init_from)
        vit.load_state_dict({k: v.float() for k, v in load_file(str(src / "vit.safetensors")).items()})
        sd = {} if a.fresh_vlm else {k: v.float() for k, v in load_file(str(src / "vlm.safetensors")).items()}
        missing, unexpected = vlm.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (a.fresh_vlm and k.startswith(("lm.", "projector.")))]
        missing = [
            k for k in missing if not k.startswith("vit.") and k not in ("lm.lm_head.weight", "projector.pos")
        ]
        if missing or unexpected:
            raise SystemExit(f"--init-from: missing {missing}, unexpected {unexpected}")
        vlm.lm.tie_weights()
        log(f"continued from {src}")
    if a.pos_init:
        from engine.vision.vlm import sincos_2d

        with torch.no_grad():  # image tokens have norm ~80: a position code must be of that order to be seen
            vlm.projector.pos += sincos_2d(scenes.GRID, lcfg.hidden_size).to(dev) * a.pos_init
        log(f"projector.pos += {a.pos_init} x sincos_2d")
    t_all = time.perf_counter()
    vit_log = train_vit(vit, seconds=a.vit_seconds, batch=a.vit_batch, dev=dev, lr=a.vit_lr, log=log)
    vlm_log = train_vlm(vlm, seconds=a.vlm_seconds, batch=a.vlm_batch, dev=dev, lr=a.vlm_lr, log=log,
                        relation_weight=a.relation_weight, position_aux=a.position_aux, one_sided=a.one_sided,
                        token_drop=a.token_drop, start=a.vlm_start, seed=a.seed, ground_weight=a.ground_weight,
                        ground_layer=a.ground_layer, position_weight=a.position_weight)  # fmt: skip
    train_s = time.perf_counter() - t_all
    vlm.eval()
    _round_fp16(vlm)
    _save(vlm, out)
    t = time.perf_counter()
    vit_eval = evaluate_vit(vit, n=a.val_n, dev=dev)
    log(f"vit eval {vit_eval}")
    vlm_eval = evaluate_vlm(vlm, n=a.val_n, dev=dev)
    log(f"vlm eval {json.dumps(vlm_eval)}")
    vlm_eval_pos = evaluate_vlm(vlm, n=a.val_n, dev=dev, keep_positions=True)
    log(f"vlm eval keep_positions {json.dumps(vlm_eval_pos['random_pruning'])}")
    metrics = {
        "gpu": gpu,
        "torch": torch.__version__,
        "train_seconds_total": train_s,
        "eval_seconds": time.perf_counter() - t,
        "vit": {"params": sum(p.numel() for p in vit.parameters()), "train": vit_log, "val": vit_eval},
        "vlm": {"params_trained": sum(p.numel() for p in vlm.projector.parameters())
                + sum(p.numel() for p in vlm.lm.parameters()), "train": vlm_log, "val": vlm_eval,
                "val_keep_positions": vlm_eval_pos},
        "args": vars(a),
    }  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    try:
        metrics["latency_fp32"] = latency(vlm, dev=dev, repeats=2 if a.quick else 30)
        log(f"latency {metrics['latency_fp32']}")
    except Exception as e:  # noqa: BLE001 - timing is optional; the weights and metrics are already written
        log(f"latency failed: {e!r}")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
