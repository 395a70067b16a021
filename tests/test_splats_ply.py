"""Scene I/O: INRIA PLY round trips byte-exact at every SH degree, .splat, and every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from engine.registry import InputError
from engine.splats.ply import GaussianScene, load_scene, ply_bytes, read_ply, read_splat, write_splat
from engine.splats.storage import ply_size


def scene(n=50, degree=3, seed=0):
    r = np.random.default_rng(seed)
    f = np.float32
    return GaussianScene(r.normal(size=(n, 3)).astype(f), r.normal(size=(n, 4)).astype(f),
                         (r.normal(size=(n, 3)) - 3).astype(f), r.normal(size=n).astype(f),
                         r.normal(size=(n, (degree + 1) ** 2, 3)).astype(f))  # fmt: skip


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_byte_exact(degree):
    s = scene(degree=degree)
    b = ply_bytes(s)
    s2 = read_ply(b)
    assert s2.sh_degree == degree
    assert ply_bytes(s2) == b
    np.testing.assert_array_equal(s2.sh, s.sh)
    assert ply_size(s) == len(b)


def test_f_rest_is_grouped_by_channel():
    s = scene(n=3, degree=1)
    s2 = read_ply(ply_bytes(s))
    data = np.frombuffer(ply_bytes(s)[ply_bytes(s).index(b"end_header\n") + 11 :], dtype="<f4").reshape(3, -1)
    # column order: x y z f_dc_0..2 f_rest_0..8 -> f_rest_0..2 are red's three higher coefficients
    np.testing.assert_array_equal(data[:, 6:9], s.sh[:, 1:, 0])
    np.testing.assert_array_equal(s2.sh[:, 1:, 0], s.sh[:, 1:, 0])


def test_extra_properties_and_normals_are_kept_in_place():
    s = scene(n=4, degree=0)
    s.extra["nx"] = np.zeros(4, np.float32)
    s.extra["ny"] = np.zeros(4, np.float32)
    s.extra["nz"] = np.ones(4, np.float32)
    s.extra["label"] = np.arange(4, dtype=np.uint8)
    b = ply_bytes(s)
    assert b"property float nx\nproperty float ny\nproperty float nz\nproperty float f_dc_0" in b
    assert b"property uchar label" in b
    s2 = read_ply(b)
    assert ply_bytes(s2) == b
    np.testing.assert_array_equal(s2.extra["label"], np.arange(4))
    sub = s2.subset(np.array([True, False, True, False]))
    assert len(sub) == 2 and list(sub.extra["label"]) == [0, 2]


def test_splat_round_trip_is_close():
    s = scene(n=20, degree=0)
    s2 = read_splat(write_splat(s))
    assert len(s2) == 20
    # sorted by size x opacity: compare as sets of positions
    a = s.means[np.lexsort(s.means.T)]
    b = s2.means[np.lexsort(s2.means.T)]
    np.testing.assert_allclose(a, b)  # positions are float32 in .splat: exact
    assert s2.sh_degree == 0


def _replace(b: bytes, old: bytes, new: bytes) -> bytes:
    assert old in b
    return b.replace(old, new, 1)


def test_bad_files_give_clear_messages():
    good = ply_bytes(scene(n=10))
    cases = {
        b"hello world": "not a PLY",
        good[:-7]: "truncated",
        _replace(good, b"property float opacity\n", b""): "lacks",
        _replace(good, b"binary_little_endian", b"ascii"): "not supported",
        _replace(good, b"element vertex 10", b"element vertex 0"): "zero Gaussians",
        _replace(good, b"property float f_rest_44\n", b""): "f_rest",
    }
    for data, msg in cases.items():
        with pytest.raises(InputError, match=msg):
            read_ply(data)


def test_point_cloud_is_not_a_splat():
    hdr = b"ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\n"
    hdr += b"property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    data = hdr + np.zeros(2, dtype=[("p", "<f4", 3), ("c", "u1", 3)]).tobytes()
    with pytest.raises(InputError, match="point cloud"):
        read_ply(data)


def test_nan_and_cap():
    s = scene(n=10)
    s.sh[3, 2, 1] = np.nan
    with pytest.raises(InputError, match="NaN/Inf"):
        read_ply(ply_bytes(s))
    s = scene(n=10)
    s.means[0, 0] = np.inf
    with pytest.raises(InputError, match="index 0"):
        read_ply(ply_bytes(s))
    with pytest.raises(InputError, match="cap"):
        read_ply(ply_bytes(scene(n=10)), max_gaussians=5)


def test_load_scene_by_name(tmp_path):
    s = scene(n=5, degree=0)
    p = tmp_path / "a.splat"
    write_splat(s, p)
    assert len(load_scene(p)) == 5
    (tmp_path / "b.txt").write_bytes(b"nope")
    with pytest.raises(InputError, match="not a PLY"):
        load_scene(tmp_path / "b.txt")
    with pytest.raises(InputError, match="no such file"):
        load_scene(tmp_path / "missing.ply")
    with pytest.raises(InputError, match="32 bytes"):
        read_splat(b"x" * 33)
