"""Pruning methods: requested counts, the OMG tau rule and local distinctiveness on hand-made examples,
LightGaussian's volume term, the voxel grid against open3d, storage sizes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.registry import InputError, by_family
from engine.results import Provenance
from engine.splats.importance import Importance, compute_importance
from engine.splats.ply import GaussianScene, ply_bytes, rgb_to_sh
from engine.splats.prune import (
    _voxel_count,
    _voxel_ids,
    local_distinctiveness,
    morton_codes,
    omg_tau_keep,
    prune,
    volume_term,
)
from engine.splats.storage import compress, ply_size


def scene(n=400, degree=1, seed=0):
    r = np.random.default_rng(seed)
    f = np.float32
    return GaussianScene(r.normal(size=(n, 3)).astype(f), r.normal(size=(n, 4)).astype(f),
                         (r.normal(size=(n, 3)) * 0.3 - 3).astype(f), r.normal(size=n).astype(f),
                         (r.normal(size=(n, (degree + 1) ** 2, 3)) * 0.3).astype(f))  # fmt: skip


def fake_importance(n, seed=0):
    r = np.random.default_rng(seed)
    w = r.random(n)
    return Importance(Provenance("importance", {}, "x"), weight=w, hits=np.floor(w * 50), hits_opacity=w * 10)


def test_registered_methods():
    names = {m.name for m in by_family("splats")}
    assert {"opacity", "random", "lightgaussian", "lightgaussian-official", "omg", "voxel-merge"} <= names


@pytest.mark.parametrize("method", ["opacity", "random", "lightgaussian", "lightgaussian-official", "omg",
                                    "voxel-merge"])  # fmt: skip
@pytest.mark.parametrize("keep", [0.1, 0.34, 0.75])
def test_keeps_the_requested_count(method, keep):
    s = scene()
    r = prune(s, method, importance=fake_importance(len(s)), keep=keep)
    target = round(keep * len(s))
    if method == "voxel-merge":  # a voxel grid cannot hit every count: within 3%
        assert abs(r.n_after - target) <= 0.03 * len(s)
    else:
        assert r.n_after == target == int(r.keep_mask.sum())
    assert len(r.scene) == r.n_after
    assert r.provenance.method == method


def test_scores_rank_what_is_kept():
    s = scene()
    imp = fake_importance(len(s))
    r = prune(s, "lightgaussian", importance=imp, keep=0.3)
    assert r.scores[r.keep_mask].min() >= r.scores[~r.keep_mask].max()
    np.testing.assert_allclose(r.scores, imp.weight * volume_term(s.log_scales, 0.1))
    o = prune(s, "lightgaussian-official", importance=imp, keep=0.3)
    np.testing.assert_allclose(o.scores, imp.hits_opacity * volume_term(s.log_scales, 0.1))


def test_volume_term_reference():
    # volumes 1..10: sorted descending, index int(0.9 * 10) = 9 -> the smallest, 1
    log_scales = np.log(np.arange(1, 11, dtype=np.float64))[:, None] * np.array([[1.0, 0, 0]])
    np.testing.assert_allclose(volume_term(log_scales, 1.0), np.arange(1, 11))
    np.testing.assert_allclose(volume_term(log_scales, 0.0), 1.0)


def test_omg_tau_rule_hand_made():
    score = np.array([5.0, 1.0, 2.0, 90.0, 2.0])  # total 100; ascending 1, 2, 2, 5, 90
    # tau = 0.96: may drop at most 4 of mass -> drop 1 and 2 (cum 3); adding the next 2 would make 5 > 4
    mask, thr = omg_tau_keep(score, 0.96)
    assert mask.tolist() == [True, False, False, True, True]
    assert thr == 2.0
    mask, _ = omg_tau_keep(score, 0.95)  # at most 5: 1 + 2 + 2 = 5 dropped
    assert mask.tolist() == [True, False, False, True, False]
    mask, _ = omg_tau_keep(score, 1.0)
    assert mask.all()


def test_local_distinctiveness_uses_sorted_morton_neighbours():
    # four points on a line (Morton order = x order) given in shuffled order
    pts = np.array([[3, 0, 0], [0, 0, 0], [2, 0, 0], [1, 0, 0]], np.float64)
    cols = np.array([[0.9, 0.9, 0.9], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3], [0.0, 0.0, 0.0]])
    ld = local_distinctiveness(pts, cols)
    # along the curve: 0.0 (x=0), 0.0 (x=1), 0.3 (x=2), 0.9 (x=3)
    np.testing.assert_allclose(ld, [0.6, 0.0, 0.3 + 0.6, 0.3])
    codes = morton_codes(np.array([[0, 0, 0], [1, 1, 1], [0, 0, 1]], np.float64), bits=1)
    assert codes.tolist() == [0, 7, 1]


def test_omg_score_and_tau_default():
    s = scene()
    imp = fake_importance(len(s))
    r = prune(s, "omg", importance=imp)
    ld = local_distinctiveness(s.means, np.clip(s.sh[:, 0] * 0.28209479177387814 + 0.5, 0, 1))
    np.testing.assert_allclose(r.scores, imp.weight * ld**2)
    dropped = r.scores[~r.keep_mask].sum() / r.scores.sum()
    assert dropped <= 0.04 + 1e-12
    assert r.n_after < len(s)


def test_voxel_grid_matches_open3d():
    pts = np.random.default_rng(1).normal(size=(2000, 3))
    for size in (0.05, 0.3, 1.0):
        assert _voxel_count(pts, size) == int(_voxel_ids(pts, size).max()) + 1


def test_voxel_merge_keeps_singletons_unchanged():
    s = scene(n=200)
    r = prune(s, "voxel-merge", keep=0.9)
    single = r.keep_mask
    kept_means = {tuple(m) for m in r.scene.means}
    assert all(tuple(m) in kept_means for m in s.means[single])


def test_methods_need_importance_and_valid_params():
    s = scene(n=20)
    with pytest.raises(InputError, match="needs importance"):
        prune(s, "omg")
    with pytest.raises(InputError, match="keep"):
        prune(s, "opacity", keep=1.5)
    with pytest.raises(InputError, match="unknown method"):
        prune(s, "nope")


def test_importance_sums_alpha_over_views():
    from engine.splats.cameras import orbit_cameras
    from engine.splats.render import render

    s = scene(n=150, degree=0)
    cams = orbit_cameras(s.means, 2, width=24, height=24)
    imp = compute_importance(s, cams, backend="cpu")
    total_alpha = sum(float(render(s, c).alpha.sum()) for c in cams)
    assert imp.weight.sum() == pytest.approx(total_alpha, rel=1e-4)
    np.testing.assert_allclose(imp.hits_opacity, imp.hits * s.opacities, rtol=1e-6)
    assert imp.provenance.backend == "cpu" and imp.n_views == 2


def test_storage_sizes():
    s = scene(n=300, degree=3)
    assert ply_size(s) == len(ply_bytes(s))
    full = compress(s)
    half = compress(s, half=True)
    sh0 = compress(s, sh_degree=0)
    svq = compress(s, svq=True, bits=6)
    assert half.bytes * 2 == 300 * 59 * 4
    assert sh0.scene.sh_degree == 0 and sh0.bytes < full.bytes / 3
    assert svq.bytes < half.bytes / 2
    assert np.abs(half.scene.means - s.means).max() < 1e-2
    # k-means with as many codes as points is exact for the DC colours
    exact = compress(scene(n=50, degree=0), svq=True, bits=6)
    np.testing.assert_allclose(exact.scene.sh[:, 0], scene(n=50, degree=0).sh[:, 0], atol=1e-6)
    assert rgb_to_sh(0.5) == 0.0
