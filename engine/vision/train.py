"""Train the scene ViT, then the scene VLM, on generated scenes; write weights, configs and metrics.

    python -m engine.vision.train --out DIR [--vit-seconds 100 --vlm-seconds 210]   # GPU
    python -m engine.vision.train --out DIR --quick                                 # CPU smoke test

Every flag is a field of :class:`TrainConfig` (frozen, passed whole to :func:`train_vit` and :func:`train_vlm`);
``train(TrainConfig(out=DIR, ...))`` runs the same from Python.

Both phases run for a wall-clock budget with the learning rate following the elapsed fraction of it (linear
warm-up over the first 3%, then cosine to 10%), so one device call of known length trains both models. Data is
generated on the fly, deterministic by scene index (training scene i of the "train" split is seen once); the
validation split is separate ("val" seed). The VLM keeps the ViT frozen (as LLaVA does) and is trained on the
answer token only, with six questions (one per type) per scene sharing one ViT pass.

Evaluation (:mod:`engine.vision.evaluate`), on weights rounded to float16 exactly as they ship: ViT count
accuracy, per-label presence accuracy and patch accuracy; VLM answer accuracy per question type against the
majority-answer baseline of that type; and the same with random image-token pruning before the LM at 50%, 25% and 11% kept (3 seeds), with
the share of objects that keep at least one patch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.vision import grounding, scenes
from engine.vision.evaluate import evaluate_vit, evaluate_vlm, latency
from engine.vision.vit import SceneViT, ViTSpec, vit_config, vit_targets
from engine.vision.vlm import LMSpec, SceneVLM, lm_config

__all__ = ["TrainConfig", "train", "main", "train_vit", "train_vlm", "position_questions", "drop_tokens"]


def _flag(help: str, **kw):
    return field(metadata={"help": help}, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run reads, passed whole; ``python -m engine.vision.train`` builds it from its
    flags (one flag per field, ``--vit-seconds`` for ``vit_seconds``), and ``metrics.json`` records it."""

    out: str = _flag(
        "folder for weights, configs and metrics.json", default=""
    )  # required on the command line
    quick: bool = _flag("tiny CPU run (seconds) for tests", default=False)  # tiny models and budgets
    vit_seconds: float = _flag(
        "wall-clock budget of the ViT phase (s)", default=100.0
    )  # LR follows its fraction
    vlm_seconds: float = _flag("wall-clock budget of the VLM phase (s)", default=210.0)
    vit_batch: int = _flag("scenes per ViT step", default=256)
    vlm_batch: int = _flag("scenes per step (x6 questions)", default=128)  # six questions share one ViT pass
    vit_lr: float = _flag("peak learning rate of the ViT", default=1e-3)
    vlm_lr: float = _flag("peak learning rate of the projector and LM", default=1e-3)
    val_n: int = _flag("validation scenes", default=2000)  # for the evaluation after training
    seed: int = _flag("seed of torch and of the training aids", default=0)
    relation_weight: float = _flag("loss weight of relation questions", default=1.0)
    # curriculum aids (train_vlm); each is 0 (off) by default
    position_aux: float = _flag(
        "share of relation questions asked against the image centre at the start (fades to 0)", default=0.0
    )
    one_sided: float = _flag(
        "share of right/below questions asked as negated left/above at the start (fades to 0)", default=0.0
    )
    token_drop: float = _flag(
        "share of batches trained with a random subset of the image tokens", default=0.0
    )
    ground_weight: float = _flag(
        "weight of the attention-grounding aid for relation questions (engine/vision/grounding.py)",
        default=0.0,
    )
    position_weight: float = _flag(
        "weight of the position-read aid (object centres regressed from the grounded heads)", default=0.0
    )
    ground_layer: int = _flag("decoder layer whose heads 0/1 are grounded", default=2)
    vlm_start: int = _flag(
        "first training scene index of the VLM", default=10_000_000
    )  # disjoint from the ViT's
    pos_init: float = _flag(
        "add this many times a unit 2-D sine-cosine code to projector.pos before training", default=0.0
    )
    fresh_vlm: bool = _flag("with --init-from: take only the ViT", default=False)
    init_from: str = _flag(
        "folder with vit/vlm safetensors to continue from", default=""
    )  # "" = from scratch

    def quick_sized(self) -> TrainConfig:
        """With ``quick``: tiny budgets and batches that exercise every step of the script in seconds."""
        if not self.quick:
            return self
        return dataclasses.replace(self, vit_seconds=1, vlm_seconds=1, vit_batch=4, vlm_batch=2, val_n=4)

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        """The command line: one flag per field, with the field's default and help."""
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            if str(f.type) == "bool":
                ap.add_argument(flag, action="store_true", help=f.metadata["help"])
            elif f.name == "out":
                ap.add_argument(flag, required=True, help=f.metadata["help"])
            else:
                kind = {"int": int, "float": float, "str": str}[str(f.type)]
                ap.add_argument(flag, type=kind, default=f.default, help=f.metadata["help"])
        return ap

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> TrainConfig:
        return cls(**vars(cls.parser().parse_args(argv)))


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


def train_vit(vit: SceneViT, cfg: TrainConfig, *, dev: str, log) -> dict:
    seconds, batch, lr = cfg.vit_seconds, cfg.vit_batch, cfg.vit_lr
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


def train_vlm(vlm: SceneVLM, cfg: TrainConfig, *, dev: str, log) -> dict:
    """The projector and the LM on the answer token, the ViT frozen; the curriculum aids as ``cfg`` sets them."""
    seconds, batch, lr, seed, start = cfg.vlm_seconds, cfg.vlm_batch, cfg.vlm_lr, cfg.seed, cfg.vlm_start
    relation_weight, position_aux, one_sided = cfg.relation_weight, cfg.position_aux, cfg.one_sided
    token_drop, ground_weight, ground_layer = cfg.token_drop, cfg.ground_weight, cfg.ground_layer
    position_weight = cfg.position_weight
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


def train(cfg: TrainConfig) -> dict:
    """Train the ViT, then the VLM, as ``cfg`` says; write weights, configs and ``metrics.json`` to ``cfg.out``,
    evaluate (:mod:`engine.vision.evaluate`) and return the metrics."""
    if not cfg.out:
        raise ValueError("TrainConfig.out: the folder to write the weights to is required")
    cfg = cfg.quick_sized()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(cfg.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    log = lambda m: print(m, flush=True)  # noqa: E731
    gpu = torch.cuda.get_device_name(0) if dev == "cuda" else "none (CPU)"
    log(f"device {dev} {gpu}; torch {torch.__version__}")
    vspec = (
        ViTSpec(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        if cfg.quick
        else ViTSpec()
    )
    lspec = LMSpec(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=2) if cfg.quick else LMSpec()  # fmt: skip
    vcfg = vit_config(vspec)
    vcfg._attn_implementation = "sdpa"
    vit = SceneViT(vcfg).to(dev)
    lcfg = lm_config(lspec)
    lcfg._attn_implementation = "sdpa"
    vlm = SceneVLM(vit, lcfg).to(dev)
    if cfg.init_from:
        from safetensors.torch import load_file

        src = Path(cfg.init_from)
        vit.load_state_dict({k: v.float() for k, v in load_file(str(src / "vit.safetensors")).items()})
        sd = (
            {}
            if cfg.fresh_vlm
            else {k: v.float() for k, v in load_file(str(src / "vlm.safetensors")).items()}
        )
        missing, unexpected = vlm.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not (cfg.fresh_vlm and k.startswith(("lm.", "projector.")))]
        missing = [
            k for k in missing if not k.startswith("vit.") and k not in ("lm.lm_head.weight", "projector.pos")
        ]
        if missing or unexpected:
            raise SystemExit(f"--init-from: missing {missing}, unexpected {unexpected}")
        vlm.lm.tie_weights()
        log(f"continued from {src}")
    if cfg.pos_init:
        from engine.vision.vlm import sincos_2d

        with torch.no_grad():  # image tokens have norm ~80: a position code must be of that order to be seen
            vlm.projector.pos += sincos_2d(scenes.GRID, lcfg.hidden_size).to(dev) * cfg.pos_init
        log(f"projector.pos += {cfg.pos_init} x sincos_2d")
    t_all = time.perf_counter()
    vit_log = train_vit(vit, cfg, dev=dev, log=log)
    vlm_log = train_vlm(vlm, cfg, dev=dev, log=log)
    train_s = time.perf_counter() - t_all
    vlm.eval()
    _round_fp16(vlm)
    _save(vlm, out)
    t = time.perf_counter()
    vit_eval = evaluate_vit(vit, n=cfg.val_n, dev=dev)
    log(f"vit eval {vit_eval}")
    vlm_eval = evaluate_vlm(vlm, n=cfg.val_n, dev=dev)
    log(f"vlm eval {json.dumps(vlm_eval)}")
    vlm_eval_pos = evaluate_vlm(vlm, n=cfg.val_n, dev=dev, keep_positions=True)
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
        "args": dataclasses.asdict(cfg),
    }  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    try:
        metrics["latency_fp32"] = latency(vlm, dev=dev, repeats=2 if cfg.quick else 30)
        log(f"latency {metrics['latency_fp32']}")
    except Exception as e:  # noqa: BLE001 - timing is optional; the weights and metrics are already written
        log(f"latency failed: {e!r}")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """``python -m engine.vision.train``: the flags of :class:`TrainConfig`, then :func:`train`."""
    return train(TrainConfig.from_args(argv))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
