"""How many bytes a scene takes, and lossy ways to take fewer: fp16, SH degree reduction, sub-vector k-means.

``fp32``  the INRIA PLY as written (header + 4 bytes per property per Gaussian).
``fp16``  every attribute in half precision (2 bytes each).
``sh``    higher SH bands dropped to a chosen degree (degree 3 -> 0 removes 45 of 59 attribute floats).
``svq``   OMG-style sub-vector quantisation (Lee et al., 2025): each attribute vector is cut into short
          sub-vectors (scale: 3, rotation: 2 + 2, DC colour: 3, each higher SH coefficient: its RGB triple),
          each sub-vector group gets its own k-means codebook of 2^bits entries, and a Gaussian stores one
          index per sub-vector; positions and opacity stay in fp16. Bytes = indices + fp16 codebooks. (OMG also
          replaces view-dependent colour with a small MLP on positions; that part is not reproduced here.)

:func:`compress` returns the decoded (lossy) scene, so its render quality can be measured, and the byte count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.registry import Param
from engine.splats.ply import GaussianScene

__all__ = ["Compressed", "ply_size", "compress", "kmeans", "STORAGE", "STORAGE_PARAM", "store"]

_FORMATS = {  # the storage choices a user picks from, and the compress() options each stands for
    "fp32": {},
    "fp16": {"half": True},
    "SH degree 1": {"sh_degree": 1},
    "SH degree 0": {"sh_degree": 0},
    "SVQ 8-bit": {"svq": True, "bits": 8},
    "SH0 + SVQ 8-bit": {"sh_degree": 0, "svq": True, "bits": 8},
}
STORAGE = tuple(_FORMATS)
STORAGE_PARAM = Param("storage", "fp32", choices=STORAGE, label="Storage of the pruned scene",
                      help="how the pruned scene is stored; lossy choices are decoded before rendering")  # fmt: skip


@dataclass
class Compressed:
    scene: GaussianScene  # decoded scene
    bytes: int
    breakdown: dict[str, int]  # part -> bytes
    label: str


def ply_size(scene: GaussianScene) -> int:
    """Exact byte size of :func:`engine.splats.ply.ply_bytes` without building it."""
    names = scene.property_names()
    header = len("ply\nformat binary_little_endian 1.0\nend_header\n") + len(f"element vertex {len(scene)}\n")
    per = 0
    for n in names:
        dt = scene.extra[n].dtype if n in scene.extra else np.dtype("<f4")
        per += dt.itemsize
        ptype = {1: "uchar", 2: "half", 8: "double"}.get(dt.itemsize, "float")
        if dt.kind == "i" and dt.itemsize == 4:
            ptype = "int"
        elif dt.kind == "u" and dt.itemsize == 4:
            ptype = "uint"
        elif dt.kind == "i" and dt.itemsize == 1:
            ptype = "char"
        elif dt.kind in "iu" and dt.itemsize == 2:
            ptype = "short" if dt.kind == "i" else "ushort"
        header += len(f"property {ptype} {n}\n")
    return header + per * len(scene)


def kmeans(x: torch.Tensor, k: int, *, iters: int = 10, sample: int = 20_000, seed: int = 0):
    """Lloyd's k-means, fitted on a random sample of at most ``sample`` rows; returns (codebook, labels)."""
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    k = min(k, n)
    fit = x[torch.randperm(n, generator=g)[:sample]] if n > sample else x
    cb = fit[torch.randperm(fit.shape[0], generator=g)[:k]].clone()
    for _ in range(iters):
        lab = torch.cdist(fit, cb).argmin(1)
        sums = torch.zeros_like(cb).index_add_(0, lab, fit)
        cnt = torch.bincount(lab, minlength=k).float()
        empty = cnt == 0
        cb = torch.where(empty[:, None], cb, sums / cnt.clamp(min=1)[:, None])
    labels = torch.cat([torch.cdist(x[s : s + 65536], cb).argmin(1) for s in range(0, n, 65536)])
    return cb, labels


def compress(
    scene: GaussianScene,
    *,
    half: bool = False,
    sh_degree: int | None = None,
    svq: bool = False,
    bits: int = 8,
    seed: int = 0,
) -> Compressed:
    """Apply the chosen reductions in order: SH degree, then fp16 or SVQ; report bytes."""
    s = scene if sh_degree is None or sh_degree >= scene.sh_degree else scene.with_sh_degree(sh_degree)
    n, k = len(s), s.sh.shape[1]
    n_float = 3 + 4 + 3 + 1 + 3 * k  # means, quats, scales, opacity, SH
    label = f"SH{s.sh_degree}"
    if not (half or svq):
        return Compressed(s, ply_size(s), {"attributes fp32": n * n_float * 4}, label + " fp32")
    if not svq:

        def h(a):  # noqa: E306 - a round trip through fp16
            return a.astype(np.float16).astype(np.float32)

        out = GaussianScene(h(s.means), h(s.quats), h(s.log_scales), h(s.opacity_logits), h(s.sh))
        return Compressed(out, n * n_float * 2, {"attributes fp16": n * n_float * 2}, label + " fp16")
    q = s.quats / np.linalg.norm(s.quats, axis=1, keepdims=True)
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # q and -q are the same rotation
    groups = {"scale": s.log_scales, "rot_a": q[:, :2], "rot_b": q[:, 2:], "sh_dc": s.sh[:, 0]}
    for j in range(1, k):
        groups[f"sh_{j}"] = s.sh[:, j]
    ncode = 2**bits
    decoded, breakdown = {}, {}
    for i, (name, arr) in enumerate(groups.items()):
        x = torch.from_numpy(np.ascontiguousarray(arr, np.float32))
        cb, lab = kmeans(x, ncode, seed=seed + i)
        decoded[name] = cb[lab].numpy()
        breakdown[f"{name} codebook"] = cb.numel() * 2
        breakdown[f"{name} indices"] = math.ceil(n * bits / 8)
    breakdown["positions fp16"] = n * 3 * 2
    breakdown["opacity fp16"] = n * 2
    sh = np.stack([decoded["sh_dc"]] + [decoded[f"sh_{j}"] for j in range(1, k)], axis=1)
    out = GaussianScene(
        s.means.astype(np.float16).astype(np.float32),
        np.concatenate([decoded["rot_a"], decoded["rot_b"]], axis=1),
        decoded["scale"],
        s.opacity_logits.astype(np.float16).astype(np.float32),
        sh.astype(np.float32),
    )
    return Compressed(out, int(sum(breakdown.values())), breakdown, label + f" SVQ {bits}-bit")


def store(scene: GaussianScene, storage: str = "fp32") -> Compressed:
    """``scene`` stored as one of :data:`STORAGE` (checked by :data:`STORAGE_PARAM`), decoded back."""
    return compress(scene, **_FORMATS[STORAGE_PARAM.check(storage)])
