"""Pruning redundant 3D Gaussians: five registered methods and one entry point, :func:`prune`.

Each method's registration carries what its callers need (``engine.registry.Method``): ``role="prune"``;
``needs=("importance",)`` for the three scored by training-view importance (LightGaussian's two forms and
OMG), whose random control is ``random`` (the same cut at random); OMG's ``facts["mass_param"] = "tau"`` names
its score-mass rule, used instead of a kept fraction when a caller asks for it. Registration order (the papers'
methods first, then the baselines) is the order the tab lists them in.

opacity
    Keep the most opaque Gaussians (the pruning rule inside 3DGS densification, used here as a baseline).
random
    Keep a uniformly random subset (seeded).
lightgaussian / lightgaussian-official
    LightGaussian (Fan et al., 2023, arXiv:2311.17245), global significance. Both forms multiply a per-Gaussian
    hit score by the volume term (V_j / V_ref)^beta with V = product of the three scales and beta = 0.1. The
    *paper* form's hit score is the sum over all training-view pixels of the Gaussian's blending weight
    alpha_j T_j; the *official code* form's is what its modified CUDA rasteriser adds: the opacity once per
    pixel the Gaussian is composited into (hits x opacity, no transmittance). V_ref is taken as the official
    ``calculate_v_imp_score`` takes it: volumes sorted in descending order, the element at index int(0.9 N),
    i.e. the volume that 90% of Gaussians exceed (the 10th percentile from below; METHODS.md calls it "the
    90th percentile", the code's variable is ``kth_percent_largest``). The lowest ``1 - keep`` are pruned
    (paper: 66%, then a fine-tune).
omg
    OMG, "Optimized Minimal 3D Gaussian Splatting" (Lee et al., 2025; code maincold2/OMG): score = I x LD^2 with
    I = summed blending weights over the training views and LD, the local distinctiveness, the mean over
    colour channels of |c_prev - c| + |c_next - c| between a Gaussian's colour (DC term) and its neighbours along
    the Morton (Z-order) curve of the positions. The lowest-score Gaussians that together hold at most
    (1 - tau) of the total score mass are dropped (tau = 0.96). Deviation: the official code takes the
    neighbours from an array that is not sorted at that step; we sort by Morton code first, as the paper
    describes. With ``keep > 0`` the tau rule is replaced by keeping the top ``keep`` fraction, so OMG can be
    compared at the same kept fraction as the others.
voxel-merge
    Baseline: Gaussians falling in one voxel (open3d's voxel grid: origin at the minimum bound minus half a
    voxel, index floor((p - origin) / size)) merge into one; the voxel size is found by bisection with open3d's
    ``voxel_down_sample`` so that about ``keep`` x N remain. A merged Gaussian takes the opacity-weighted mean
    position and SH, the largest opacity, an axis-aligned scale sqrt(mean s^2 + variance of positions) per
    axis, and the identity rotation; a voxel holding one Gaussian keeps it unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.registry import InputError, Method, Paper, Param, get, register
from engine.results import Provenance, Result, fingerprint
from engine.splats.importance import Importance
from engine.splats.ply import GaussianScene, sh_to_rgb

__all__ = [
    "KEEP",
    "PruneResult",
    "prune",
    "pruning_method",
    "check_params",
    "volume_term",
    "morton_codes",
    "local_distinctiveness",
    "omg_tau_keep",
]

LIGHTGAUSSIAN = Paper(
    "LightGaussian: Unbounded 3D Gaussian Compression with 15x Reduction and 200+ FPS",
    2023,
    "arXiv:2311.17245",
    "https://github.com/VITA-Group/LightGaussian",
    ("Fan, Zhiwen", "others"),
)
OMG = Paper("Optimized Minimal 3D Gaussian Splatting (OMG)", 2025, "arXiv:2503.16924",
            "https://github.com/maincold2/OMG", ("Lee, Joo Chan", "others"))  # fmt: skip
KEEP = Param("keep", 0.34, low=0.01, high=1.0, help="fraction of Gaussians kept", label="keep fraction")
"""The kept fraction every method takes (OMG's own ``keep`` adds 0 = "use the tau rule")."""
_SCORED = {
    "role": "prune",
    "needs": ("importance",),
    "control": "random",
}  # ranked by training-view importance
_BASELINE = {"role": "prune"}


@dataclass
class PruneResult(Result):
    method: str = ""
    keep_mask: np.ndarray = field(
        default_factory=lambda: np.zeros(0, bool)
    )  # [N] kept (or unmerged) Gaussians
    scores: np.ndarray | None = None  # [N] the ranking score (None for random)
    threshold: float | None = None  # the score at the cut
    n_before: int = 0
    n_after: int = 0
    scene: GaussianScene | None = field(default=None, repr=False)  # the pruned scene

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "count_before": self.n_before, "count_after": self.n_after,
                "kept_fraction": self.n_after / max(self.n_before, 1), "threshold": self.threshold}  # fmt: skip


def _top_k_mask(scores: np.ndarray, k: int) -> tuple[np.ndarray, float | None]:
    """Mask of the k highest scores (ties broken by index, stable); also the lowest kept score."""
    n = len(scores)
    k = int(min(max(k, 1), n))
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(n, bool)
    mask[order[:k]] = True
    return mask, float(scores[order[k - 1]])


def _n_keep(n: int, keep: float) -> int:
    return int(min(n, max(1, round(keep * n))))


def _need(importance: Importance | None, n: int, method: str) -> Importance:
    if importance is None:
        raise InputError(f"method {method!r} needs importance scores over the training views")
    if len(importance.weight) != n:
        raise InputError(f"importance has {len(importance.weight)} entries for a scene of {n} Gaussians")
    return importance


def volume_term(log_scales: np.ndarray, beta: float = 0.1) -> np.ndarray:
    """(V / V_ref)^beta with V the product of scales and V_ref as the official code picks it (module doc)."""
    vol = np.exp(log_scales.astype(np.float64).sum(axis=1))
    ref = np.sort(vol)[::-1][int(len(vol) * 0.9)]
    return np.power(vol / ref, beta)


_BETA = Param("beta", 0.1, low=0.0, high=1.0, help="volume power v_pow")


@register("lightgaussian", family="splats", paper=LIGHTGAUSSIAN, params=[KEEP, _BETA], **_SCORED,
          summary="Global significance, paper form: summed blending weights x (V/V_ref)^beta; prune the lowest.")  # fmt: skip
def prune_lightgaussian(
    scene: GaussianScene, *, keep: float = 0.34, beta: float = 0.1, importance=None, seed=0
):
    imp = _need(importance, len(scene), "lightgaussian")
    score = imp.weight * volume_term(scene.log_scales, beta)
    mask, thr = _top_k_mask(score, _n_keep(len(scene), keep))
    return mask, score, thr


@register("lightgaussian-official", family="splats", paper=LIGHTGAUSSIAN, params=[KEEP, _BETA], **_SCORED,
          summary="Global significance as the official CUDA counts it: hits x opacity x (V/V_ref)^beta.")  # fmt: skip
def prune_lightgaussian_official(scene, *, keep: float = 0.34, beta: float = 0.1, importance=None, seed=0):
    imp = _need(importance, len(scene), "lightgaussian-official")
    score = imp.hits_opacity * volume_term(scene.log_scales, beta)
    mask, thr = _top_k_mask(score, _n_keep(len(scene), keep))
    return mask, score, thr


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 21 bits (for 3D Morton codes)."""
    v = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):  # fmt: skip
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def morton_codes(points: np.ndarray, bits: int = 21) -> np.ndarray:
    """63-bit Z-order codes of points quantised to 2^bits cells per axis over their bounding box."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    q = (points - lo) / np.maximum(hi - lo, 1e-12) * (2**bits - 1)
    q = np.clip(np.rint(q), 0, 2**bits - 1).astype(np.uint64)
    return (
        (_spread_bits(q[:, 0]) << np.uint64(2))
        | (_spread_bits(q[:, 1]) << np.uint64(1))
        | _spread_bits(q[:, 2])
    )


def local_distinctiveness(points: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """LD_j = mean over channels of |c_prev - c_j| + |c_next - c_j| along the sorted Morton curve.

    The first and last Gaussians on the curve have one neighbour; the missing side contributes 0.
    """
    order = np.argsort(morton_codes(points), kind="stable")
    c = colors[order].astype(np.float64)
    d = np.abs(np.diff(c, axis=0)).mean(axis=1)  # |c_{i+1} - c_i| averaged over channels
    ld_sorted = np.zeros(len(c))
    ld_sorted[1:] += d
    ld_sorted[:-1] += d
    ld = np.empty_like(ld_sorted)
    ld[order] = ld_sorted
    return ld


def omg_tau_keep(score: np.ndarray, tau: float) -> tuple[np.ndarray, float]:
    """Drop the lowest-score Gaussians whose scores sum to at most (1 - tau) of the total; keep the rest."""
    order = np.argsort(score, kind="stable")
    total = score.sum()
    if total <= 0:
        return np.ones(len(score), bool), 0.0
    cum = np.cumsum(score[order]) / total
    n_drop = int(np.searchsorted(cum, 1.0 - tau, side="right"))  # cum[:n_drop] <= 1 - tau
    n_drop = min(n_drop, len(score) - 1)
    mask = np.ones(len(score), bool)
    mask[order[:n_drop]] = False
    thr = float(score[order[n_drop]])
    return mask, thr


@register("omg", family="splats", paper=OMG, **_SCORED, facts={"mass_param": "tau"},
          params=[Param("tau", 0.96, low=0.5, high=1.0, help="share of score mass kept", label="OMG τ (score mass kept)", step=0.005),
                  Param("keep", 0.0, low=0.0, high=1.0, help="if > 0: keep this fraction instead of the tau rule",
                        label="keep fraction"),
                  Param("ld_power", 2.0, low=0.0, high=4.0, help="exponent of local distinctiveness")],
          summary="Importance x local distinctiveness^2 along the Morton curve; drop the low-score tail of "
                  "at most (1 - tau) of the score mass.")  # fmt: skip
def prune_omg(scene, *, tau: float = 0.96, keep: float = 0.0, ld_power: float = 2.0, importance=None, seed=0):
    imp = _need(importance, len(scene), "omg")
    ld = local_distinctiveness(scene.means, np.clip(sh_to_rgb(scene.sh[:, 0]), 0, 1))
    score = imp.weight * np.power(ld, ld_power)
    if keep > 0:
        mask, thr = _top_k_mask(score, _n_keep(len(scene), keep))
    else:
        mask, thr = omg_tau_keep(score, tau)
    return mask, score, thr


@register("opacity", family="splats", paper=None, params=[KEEP], **_BASELINE,
          summary="Keep the most opaque Gaussians (baseline).")  # fmt: skip
def prune_opacity(scene: GaussianScene, *, keep: float = 0.34, importance=None, seed: int = 0):
    mask, thr = _top_k_mask(scene.opacity_logits.astype(np.float64), _n_keep(len(scene), keep))
    return mask, scene.opacities.astype(np.float64), 1 / (1 + np.exp(-thr))


@register("random", family="splats", paper=None, params=[KEEP, Param("seed", 0, low=0)], **_BASELINE,
          summary="Keep a uniformly random subset (baseline).")  # fmt: skip
def prune_random(scene: GaussianScene, *, keep: float = 0.34, importance=None, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(scene), _n_keep(len(scene), keep), replace=False)
    mask = np.zeros(len(scene), bool)
    mask[idx] = True
    return mask, None, None


def _voxel_ids(points: np.ndarray, size: float) -> np.ndarray:
    origin = points.min(axis=0) - 0.5 * size
    ijk = np.floor((points - origin) / size).astype(np.int64)
    return np.unique(ijk, axis=0, return_inverse=True)[1].reshape(-1)


def _voxel_count(points: np.ndarray, size: float) -> int:
    try:
        import open3d as o3d

        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        return len(pcd.voxel_down_sample(size).points)
    except ImportError:  # the device machine has no open3d: same grid in numpy
        return int(_voxel_ids(points, size).max()) + 1


def voxel_size_for(points: np.ndarray, target: int, iters: int = 30) -> float:
    """Bisect (in log space) the voxel size whose grid holds about ``target`` occupied voxels."""
    ext = float(np.max(points.max(axis=0) - points.min(axis=0)))
    lo, hi = ext * 1e-6, ext * 2
    for _ in range(iters):
        mid = float(np.sqrt(lo * hi))
        if _voxel_count(points, mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


@register("voxel-merge", family="splats", paper=None, params=[KEEP], **_BASELINE,
          summary="Merge the Gaussians of each voxel of an open3d voxel grid sized to the target count (baseline).")  # fmt: skip
def prune_voxel_merge(scene: GaussianScene, *, keep: float = 0.34, importance=None, seed: int = 0):
    n = len(scene)
    target = _n_keep(n, keep)
    if target >= n:
        return np.ones(n, bool), None, None, scene
    size = voxel_size_for(scene.means.astype(np.float64), target)
    vid = _voxel_ids(scene.means.astype(np.float64), size)
    m = int(vid.max()) + 1
    cnt = np.bincount(vid, minlength=m)
    w = scene.opacities.astype(np.float64) + 1e-8
    wsum = np.bincount(vid, weights=w, minlength=m)

    def wmean(x):  # opacity-weighted mean per voxel of [N, D]
        x = x.reshape(n, -1).astype(np.float64)
        out = np.stack([np.bincount(vid, weights=w * x[:, j], minlength=m) for j in range(x.shape[1])], 1)
        return out / wsum[:, None]

    mu = wmean(scene.means)
    sq = wmean(scene.means.astype(np.float64) ** 2)
    var = np.maximum(sq - mu**2, 0)
    s2 = wmean(np.exp(2 * scene.log_scales.astype(np.float64)))
    log_s = 0.5 * np.log(np.maximum(s2 + var, 1e-20))
    sh = wmean(scene.sh).reshape(m, *scene.sh.shape[1:])
    opac = np.zeros(m)
    np.maximum.at(opac, vid, scene.opacities.astype(np.float64))
    opac = np.clip(opac, 1e-6, 1 - 1e-6)
    quats = np.tile(np.array([1.0, 0, 0, 0]), (m, 1))
    single = cnt[vid] == 1  # Gaussians alone in their voxel stay exactly as they were
    first = np.full(m, -1)
    first[vid[single]] = np.nonzero(single)[0]
    s_idx = first >= 0
    mu[s_idx] = scene.means[first[s_idx]]
    log_s[s_idx] = scene.log_scales[first[s_idx]]
    sh[s_idx] = scene.sh[first[s_idx]]
    quats[s_idx] = scene.quats[first[s_idx]]
    logit = np.log(opac / (1 - opac))
    logit[s_idx] = scene.opacity_logits[first[s_idx]]
    out = GaussianScene(mu.astype(np.float32), quats.astype(np.float32), log_s.astype(np.float32),
                        logit.astype(np.float32), sh.astype(np.float32))  # fmt: skip
    return single, None, size, out


def pruning_method(name: str) -> Method:
    """The registered 3D Gaussian pruning method ``name``; :class:`InputError` for any other name."""
    m = get(name)
    if m.family != "splats":
        raise InputError(f"{name!r} is not a 3D Gaussian pruning method")
    return m


def check_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """``Method.validate`` (the one range check), with the message led by the failing parameter's UI label
    (``keep fraction: parameter 'keep' must be <= 1.0``), so the tab's user knows which control to fix."""
    m = pruning_method(method)
    m.validate(params, only=())  # unknown names
    for p in m.params:
        if p.name in params:
            try:
                m.validate({p.name: params[p.name]}, only=[p.name])
            except InputError as e:
                raise InputError(f"{p.title}: {e}") from None
    return m.validate(params)


def prune(
    scene: GaussianScene, method: str, *, importance: Importance | None = None, **params: Any
) -> PruneResult:
    """Run registered pruning ``method`` on ``scene`` with ``params`` (validated against the registry)."""
    m = pruning_method(method)
    values = check_params(method, params)
    t0 = time.perf_counter()
    out = m.fn(scene, importance=importance, **values)
    seconds = time.perf_counter() - t0
    mask, scores, thr = out[:3]
    pruned = out[3] if len(out) == 4 else scene.subset(mask)
    prov = Provenance(
        method=method,
        params=values,
        input_fingerprint=fingerprint(scene.means[:2000], len(scene)),
        seed=values.get("seed"),
        backend=importance.provenance.backend if importance is not None else "cpu",
        timings={"prune": seconds, **(importance.provenance.timings if importance is not None else {})},
    )
    return PruneResult(provenance=prov, method=method, keep_mask=mask, scores=scores, threshold=thr,
                       n_before=len(scene), n_after=len(pruned), scene=pruned)  # fmt: skip
