"""3D Gaussian scenes on disk: the INRIA 3DGS PLY layout and the ``.splat`` format.

The INRIA layout (Kerbl et al., "3D Gaussian Splatting for Real-Time Radiance Field Rendering", SIGGRAPH 2023)
is one binary little-endian ``vertex`` element whose properties are, in order::

    x y z [nx ny nz] f_dc_0..2 f_rest_0..(3*(K-1)-1) opacity scale_0..2 rot_0..3

with K = (degree + 1)^2 SH coefficients per colour channel, ``f_rest`` grouped by channel (all of red's
higher-order coefficients, then green's, then blue's), opacity as a logit, scales as logs and the rotation as
an unnormalised quaternion (w, x, y, z). Any other property (normals, per-Gaussian extras written by other
tools) is kept verbatim in :attr:`GaussianScene.extra` and written back in its original position, so a
read-then-write of such a file is byte-exact.

``.splat`` (antimatter15/splat) stores 32 bytes per Gaussian: position (3 x float32), linear scale
(3 x float32), RGBA colour (4 x uint8; RGB from the DC term, A = sigmoid(opacity)) and the normalised
quaternion (4 x uint8, value * 128 + 128). It is lossy and has no higher SH bands.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.registry import InputError

__all__ = [
    "SH_C0",
    "HEADER_MAX_BYTES",
    "GaussianScene",
    "SceneHeader",
    "read_header",
    "read_ply",
    "write_ply",
    "ply_bytes",
    "read_splat",
    "write_splat",
    "load_scene",
    "sh_to_rgb",
    "rgb_to_sh",
]

SH_C0 = 0.28209479177387814  # Y_0^0, the constant SH basis function
HEADER_MAX_BYTES = 65_536  # a 3DGS PLY header is ~1.5 KB; one that runs past this is refused unread
SPLAT_RECORD = 32  # bytes per Gaussian in a .splat

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "<i2",
    "int16": "<i2",
    "ushort": "<u2",
    "uint16": "<u2",
    "int": "<i4",
    "int32": "<i4",
    "uint": "<u4",
    "uint32": "<u4",
    "float": "<f4",
    "float32": "<f4",
    "double": "<f8",
    "float64": "<f8",
    "half": "<f2",
    "float16": "<f2",
}
_NP_TO_PLY = {"<f4": "float", "<f8": "double", "<f2": "half", "u1": "uchar", "i1": "char", "<i4": "int",
              "<u4": "uint", "<i2": "short", "<u2": "ushort"}  # fmt: skip
_CORE = ("x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_DC = ("f_dc_0", "f_dc_1", "f_dc_2")


def sh_to_rgb(dc: np.ndarray) -> np.ndarray:
    """DC SH coefficient -> RGB in [0, 1] (unclamped)."""
    return dc * SH_C0 + 0.5


def rgb_to_sh(rgb: np.ndarray) -> np.ndarray:
    return (rgb - 0.5) / SH_C0


@dataclass
class GaussianScene:
    """A set of N 3D Gaussians in the parameterisation 3DGS trains (logits, logs, raw quaternions).

    Attributes
    ----------
    means : float32 [N, 3]
    quats : float32 [N, 4]  -- (w, x, y, z), not necessarily normalised
    log_scales : float32 [N, 3]
    opacity_logits : float32 [N]
    sh : float32 [N, K, 3]  -- K = (degree + 1)^2; ``sh[:, 0]`` is the DC term
    extra : name -> [N] array of any other per-Gaussian property (kept for export)
    order : the property order to write (``None``: the INRIA order)
    """

    means: np.ndarray
    quats: np.ndarray
    log_scales: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    order: list[str] | None = None

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        for name, arr, shape in (
            ("means", self.means, (n, 3)),
            ("quats", self.quats, (n, 4)),
            ("log_scales", self.log_scales, (n, 3)),
            ("opacity_logits", self.opacity_logits, (n,)),
        ):
            if arr.shape != shape:
                raise InputError(f"{name} has shape {arr.shape}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise InputError(f"sh has shape {self.sh.shape}, expected ({n}, K, 3)")
        k = self.sh.shape[1]
        if round(math.sqrt(k)) ** 2 != k or k > 16:
            raise InputError(f"sh has {k} coefficients per channel; expected 1, 4, 9 or 16")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round(math.sqrt(self.sh.shape[1]))) - 1

    @property
    def opacities(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.opacity_logits.astype(np.float64))).astype(np.float32)

    @property
    def scales(self) -> np.ndarray:
        return np.exp(self.log_scales)

    @property
    def rgb(self) -> np.ndarray:
        """View-independent colour (DC term) in [0, 1]."""
        return np.clip(sh_to_rgb(self.sh[:, 0]), 0.0, 1.0)

    def subset(self, index: np.ndarray) -> GaussianScene:
        """The Gaussians selected by a boolean mask or an index array, every attribute kept."""
        return GaussianScene(
            self.means[index],
            self.quats[index],
            self.log_scales[index],
            self.opacity_logits[index],
            self.sh[index],
            {k: v[index] for k, v in self.extra.items()},
            self.order,
        )

    def with_sh_degree(self, degree: int) -> GaussianScene:
        """Drop (or zero-pad) SH bands to ``degree``."""
        k = (degree + 1) ** 2
        sh = self.sh[:, :k]
        if sh.shape[1] < k:
            sh = np.concatenate([sh, np.zeros((len(self), k - sh.shape[1], 3), np.float32)], axis=1)
        return GaussianScene(
            self.means, self.quats, self.log_scales, self.opacity_logits, sh, self.extra, None
        )

    def check_finite(self) -> None:
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
            arr = getattr(self, name)
            bad = ~np.isfinite(arr)
            if bad.any():
                rows = np.unique(np.nonzero(bad)[0])
                raise InputError(
                    f"{name} has NaN/Inf values in {rows.size} Gaussian(s) (first: index {int(rows[0])})"
                )
        if (np.linalg.norm(self.quats, axis=1) == 0).any():
            raise InputError("some rotations are the zero quaternion")

    def property_names(self) -> list[str]:
        """Names in the order :func:`write_ply` writes them."""
        k = self.sh.shape[1]
        inria = ["x", "y", "z", *_DC, *[f"f_rest_{i}" for i in range(3 * (k - 1))], "opacity"]
        inria += ["scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
        if self.order is not None and set(self.order) == set(inria) | set(self.extra):
            return list(self.order)
        names = inria[:3] + [n for n in ("nx", "ny", "nz") if n in self.extra] + inria[3:]
        return names + [n for n in self.extra if n not in names]


def _columns(scene: GaussianScene) -> dict[str, np.ndarray]:
    k = scene.sh.shape[1]
    cols: dict[str, np.ndarray] = {}
    for i, axis in enumerate("xyz"):
        cols[axis] = scene.means[:, i]
    for c in range(3):
        cols[f"f_dc_{c}"] = scene.sh[:, 0, c]
    # f_rest grouped by channel: index c * (K - 1) + (j - 1) holds channel c, coefficient j.
    rest = scene.sh[:, 1:, :].transpose(0, 2, 1).reshape(len(scene), 3 * (k - 1))
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    cols["opacity"] = scene.opacity_logits
    for i in range(3):
        cols[f"scale_{i}"] = scene.log_scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = scene.quats[:, i]
    cols.update(scene.extra)
    return cols


def ply_bytes(scene: GaussianScene) -> bytes:
    """The scene as INRIA-layout binary PLY bytes."""
    cols = _columns(scene)
    names = scene.property_names()
    dtype = np.dtype([(n, "<f4" if n not in scene.extra else cols[n].dtype.str) for n in names])
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(scene)}"]
    for n in names:
        ptype = _NP_TO_PLY.get(dtype[n].str, _NP_TO_PLY.get(dtype[n].str.lstrip("|"), "float"))
        header.append(f"property {ptype} {n}")
    header.append("end_header")
    data = np.empty(len(scene), dtype=dtype)
    for n in names:
        data[n] = cols[n]
    return ("\n".join(header) + "\n").encode("ascii") + data.tobytes()


def write_ply(scene: GaussianScene, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_bytes(ply_bytes(scene))
    return path


def _parse_header(buf: bytes) -> tuple[list[tuple[str, int, list[tuple[str, str]]]], int, str]:
    if not buf:
        raise InputError("the file is empty (0 bytes)")
    end = buf.find(b"end_header", 0, HEADER_MAX_BYTES)
    if not buf.startswith(b"ply"):
        raise InputError("not a PLY file (no 'ply' magic / 'end_header')")
    if end < 0:
        if len(buf) >= HEADER_MAX_BYTES:
            raise InputError(f"PLY header has no 'end_header' in its first {HEADER_MAX_BYTES:,} bytes")
        raise InputError("not a PLY file (no 'ply' magic / 'end_header')")
    nl = buf.find(b"\n", end)
    if nl < 0:
        raise InputError("PLY header is not terminated by a newline")
    try:
        text = buf[:end].decode("ascii")
    except UnicodeDecodeError:
        raise InputError("PLY header is not ASCII") from None
    fmt = ""
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info", "ply"):
            continue
        if parts[0] == "format":
            fmt = parts[1] if len(parts) > 1 else ""
        elif parts[0] == "element" and len(parts) == 3:
            try:
                count = int(parts[2])
            except ValueError:
                raise InputError(f"bad element count in PLY header: {line!r}") from None
            if count < 0:
                raise InputError(f"negative element count in PLY header: {line!r}")
            elements.append((parts[1], count, []))
        elif parts[0] == "property":
            if not elements:
                raise InputError("PLY property before any element")
            if len(parts) > 1 and parts[1] == "list":
                elements[-1][2].append((parts[-1], "list"))
            elif len(parts) == 3 and parts[1] in _PLY_TYPES:
                elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
            else:
                raise InputError(f"unsupported PLY property line {line!r}")
    return elements, nl + 1, fmt


@dataclass(frozen=True)
class SceneHeader:
    """What a scene file's header says, read without its body: enough to refuse a file over the cap or over
    the memory budget before reading it whole."""

    kind: str  # "ply" or "splat"
    count: int  # Gaussians
    sh_coeffs: int  # K = (degree + 1)^2 SH coefficients per colour channel
    record_bytes: int  # bytes per Gaussian in the file
    data_offset: int  # where the body starts
    dtype: np.dtype | None = None  # the vertex record (PLY)
    rest: tuple[str, ...] = ()  # the f_rest property names in order (PLY)
    only_vertex: bool = True  # the vertex element is the file's only element (its size is then checkable)

    @property
    def body_bytes(self) -> int:
        return self.count * self.record_bytes


def _ply_layout(head: bytes, *, max_gaussians: int | None) -> SceneHeader:
    """Check a PLY header (the first bytes of the file suffice) and describe its vertex layout."""
    elements, offset, fmt = _parse_header(head)
    if fmt != "binary_little_endian":
        raise InputError(f"PLY format {fmt or '?'!r} is not supported; 3DGS scenes are binary_little_endian")
    if not elements or elements[0][0] != "vertex":
        raise InputError("PLY has no leading 'vertex' element")
    _, n, props = elements[0]
    if any(t == "list" for _, t in props):
        raise InputError("PLY vertex element has list properties; not a 3D Gaussian scene")
    names = [p for p, _ in props]
    if len(set(names)) != len(names):
        raise InputError("PLY vertex element repeats a property name")
    missing = [p for p in (*_CORE, *_DC) if p not in names]
    if missing:
        if {"x", "y", "z"} <= set(names) and not set(names) & set(_CORE[3:] + _DC):  # no Gaussian property
            raise InputError(
                "this PLY is a point cloud, not a 3D Gaussian splat scene: it lacks "
                + ", ".join(missing[:6])
                + ("..." if len(missing) > 6 else "")
            )
        raise InputError(f"PLY lacks the 3DGS properties {missing}")
    rest = sorted((p for p in names if p.startswith("f_rest_")), key=lambda s: int(re.sub(r"\D", "", s) or 0))
    k = 1 + len(rest) // 3
    if len(rest) % 3 or (round(math.sqrt(k)) ** 2 != k) or k > 16:
        raise InputError(f"PLY has {len(rest)} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0-3)")
    if rest != [f"f_rest_{i}" for i in range(len(rest))]:
        raise InputError("PLY f_rest properties are not numbered 0..M-1")
    if n == 0:
        raise InputError("the scene has zero Gaussians")
    if max_gaussians is not None and n > max_gaussians:
        raise InputError(f"the scene has {n:,} Gaussians (says its header); the cap is {max_gaussians:,}")
    dtype = np.dtype(list(props))
    return SceneHeader("ply", n, k, dtype.itemsize, offset, dtype, tuple(rest), len(elements) == 1)


def _check_body(h: SceneHeader, have: int) -> None:
    """Refuse a body shorter than the header's count needs, or (when the vertex element is the only one)
    holding whole records more than it says: a header that lies about its vertex count."""
    need = h.body_bytes
    if have < need:
        raise InputError(
            f"PLY is truncated: {h.count:,} Gaussians need {need:,} bytes of data, the file holds {have:,}"
        )
    if h.only_vertex and have - need >= h.record_bytes:
        raise InputError(
            f"the PLY header says {h.count:,} Gaussians, but the file holds data for {have // h.record_bytes:,}: "
            "its vertex count is wrong"
        )


def read_header(source: str | os.PathLike | bytes, *, name: str = "", max_gaussians: int | None = None
                ) -> SceneHeader:  # fmt: skip
    """Read and check only the header of a ``.ply`` (its first :data:`HEADER_MAX_BYTES`) or the size of a
    ``.splat`` (by extension, else by the PLY magic), so that a file over ``max_gaussians``, truncated, or
    whose header lies about its size is refused before its body is read.

    Raises
    ------
    InputError
        Everything :func:`read_ply` / :func:`read_splat` would refuse that the header or the size shows.
    """
    if isinstance(source, bytes):
        size, head = len(source), source[:HEADER_MAX_BYTES]
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"no such file: {path}")
        name = name or path.name
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEADER_MAX_BYTES)
    if size == 0:
        raise InputError(f"{name or 'the file'} is empty (0 bytes)")
    if name.lower().endswith(".splat"):
        if head.startswith(b"ply\n") and b"end_header" in head:
            raise InputError(f"{name} is a PLY file named .splat; rename it to .ply")
        if size % SPLAT_RECORD:
            raise InputError(f".splat size {size} is not a multiple of {SPLAT_RECORD} bytes (truncated?)")
        n = size // SPLAT_RECORD
        if max_gaussians is not None and n > max_gaussians:
            raise InputError(f"the scene has {n:,} Gaussians; the cap is {max_gaussians:,}")
        return SceneHeader("splat", n, 1, SPLAT_RECORD, 0)
    if not head.startswith(b"ply"):
        raise InputError(f"{name or 'the file'} is not a PLY or .splat file")
    h = _ply_layout(head, max_gaussians=max_gaussians)
    _check_body(h, size - h.data_offset)
    return h


def read_ply(source: str | os.PathLike | bytes, *, max_gaussians: int | None = None) -> GaussianScene:
    """Read an INRIA-layout 3DGS PLY (any SH degree 0-3) from a path or bytes.

    Raises
    ------
    InputError
        For a file that is not a binary little-endian PLY, is truncated, holds more records than its header
        says, lacks 3DGS properties (a plain point cloud), has an f_rest count that is no SH degree, holds
        zero Gaussians or NaN/Inf attributes, or has more than ``max_gaussians`` Gaussians.
    """
    buf = source if isinstance(source, bytes) else Path(source).read_bytes()
    h = _ply_layout(buf, max_gaussians=max_gaussians)
    _check_body(h, len(buf) - h.data_offset)
    n, dtype, offset, rest, k = h.count, h.dtype, h.data_offset, list(h.rest), h.sh_coeffs
    names = list(dtype.names)
    data = np.frombuffer(buf, dtype=dtype, count=n, offset=offset)

    def f32(*cols: str) -> np.ndarray:
        return np.stack([data[c].astype(np.float32) for c in cols], axis=1)

    sh_dc = f32(*_DC)
    if k > 1:
        rest_arr = f32(*rest).reshape(n, 3, k - 1).transpose(0, 2, 1)
        sh = np.concatenate([sh_dc[:, None, :], rest_arr], axis=1)
    else:
        sh = sh_dc[:, None, :]
    known = set(_CORE) | set(_DC) | set(rest)
    extra = {p: np.array(data[p]) for p in names if p not in known}
    scene = GaussianScene(
        means=f32("x", "y", "z"),
        quats=f32("rot_0", "rot_1", "rot_2", "rot_3"),
        log_scales=f32("scale_0", "scale_1", "scale_2"),
        opacity_logits=data["opacity"].astype(np.float32),
        sh=np.ascontiguousarray(sh),
        extra=extra,
        order=names,
    )
    scene.check_finite()
    return scene


def write_splat(scene: GaussianScene, path: str | os.PathLike | None = None) -> bytes:
    """The antimatter15 ``.splat`` bytes (sorted by size x opacity, largest first, as its converter does)."""
    n = len(scene)
    scales = scene.scales.astype(np.float32)
    opac = scene.opacities
    order = np.argsort(-(scales.prod(axis=1) * opac), kind="stable")
    rgba = np.concatenate([sh_to_rgb(scene.sh[:, 0]), opac[:, None]], axis=1)
    q = scene.quats / np.linalg.norm(scene.quats, axis=1, keepdims=True)
    rec = np.empty(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = scene.means[order]
    rec["scale"] = scales[order]
    rec["rgba"] = np.clip(rgba[order] * 255.0, 0, 255).astype(np.uint8)
    rec["rot"] = np.clip(q[order] * 128.0 + 128.0, 0, 255).astype(np.uint8)
    out = rec.tobytes()
    if path is not None:
        Path(path).write_bytes(out)
    return out


def read_splat(source: str | os.PathLike | bytes, *, max_gaussians: int | None = None) -> GaussianScene:
    buf = source if isinstance(source, bytes) else Path(source).read_bytes()
    if len(buf) == 0:
        raise InputError("the scene has zero Gaussians (the file is empty)")
    if len(buf) % SPLAT_RECORD:
        raise InputError(f".splat size {len(buf)} is not a multiple of {SPLAT_RECORD} bytes (truncated?)")
    n = len(buf) // SPLAT_RECORD
    if max_gaussians is not None and n > max_gaussians:
        raise InputError(f"the scene has {n:,} Gaussians; the cap is {max_gaussians:,}")
    rec = np.frombuffer(
        buf, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)]
    )
    rgba = rec["rgba"].astype(np.float32) / 255.0
    a = np.clip(rgba[:, 3], 1e-4, 1 - 1e-4)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scales = np.log(rec["scale"].astype(np.float32))
    scene = GaussianScene(
        means=rec["pos"].astype(np.float32),
        quats=(rec["rot"].astype(np.float32) - 128.0) / 128.0,
        log_scales=log_scales.astype(np.float32),
        opacity_logits=np.log(a / (1 - a)).astype(np.float32),
        sh=rgb_to_sh(rgba[:, None, :3]).astype(np.float32),
    )
    scene.check_finite()
    return scene


def load_scene(source: str | os.PathLike | bytes, *, name: str = "", max_gaussians: int | None = None):
    """Read a ``.ply`` or ``.splat`` (by extension, else by the PLY magic) with the size cap applied.

    From a path, the header (or a ``.splat``'s size) is checked first (:func:`read_header`), so a file over
    the cap, truncated, or whose header lies about its size is refused before its body is read."""
    if not isinstance(source, bytes):
        path = Path(source)
        name = name or path.name
        read_header(path, name=name, max_gaussians=max_gaussians)
        source = path.read_bytes()
    if not source:
        raise InputError(f"{name or 'the file'} is empty (0 bytes)")
    if name.lower().endswith(".splat"):
        return read_splat(source, max_gaussians=max_gaussians)
    if not source.startswith(b"ply"):
        raise InputError(f"{name or 'the file'} is not a PLY or .splat file")
    return read_ply(source, max_gaussians=max_gaussians)
