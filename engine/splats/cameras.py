"""Pinhole cameras in the OpenCV convention (x right, y down, z forward), as gsplat takes them.

Uploaded scenes come without cameras, so :func:`orbit_cameras` places a ring of cameras around robust bounds:
the median of the Gaussian centres and a percentile of their distances from it, so a few far-away floaters do
not push the cameras out.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.registry import InputError

__all__ = ["Camera", "look_at", "orbit_cameras", "robust_bounds", "save_cameras", "load_cameras"]


@dataclass(frozen=True)
class Camera:
    viewmat: np.ndarray  # [4, 4] world -> camera
    K: np.ndarray  # [3, 3] intrinsics in pixels
    width: int
    height: int
    name: str = ""

    @property
    def position(self) -> np.ndarray:
        R, t = self.viewmat[:3, :3], self.viewmat[:3, 3]
        return -R.T @ t

    def resized(self, width: int, height: int) -> Camera:
        sx, sy = width / self.width, height / self.height
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return Camera(self.viewmat, K, width, height, self.name)

    def to_dict(self) -> dict:
        return {"name": self.name, "width": self.width, "height": self.height,
                "viewmat": self.viewmat.tolist(), "K": self.K.tolist()}  # fmt: skip

    @staticmethod
    def from_dict(d: dict) -> Camera:
        return Camera(np.asarray(d["viewmat"], np.float32), np.asarray(d["K"], np.float32),
                      int(d["width"]), int(d["height"]), str(d.get("name", "")))  # fmt: skip


def intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
    return np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]], np.float32)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """World -> camera matrix of a camera at ``eye`` looking at ``target`` (OpenCV axes, z up in the world)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-8:  # looking straight along up
        right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])  # rows: camera axes in world coordinates
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = -R @ eye
    return M.astype(np.float32)


def robust_bounds(means: np.ndarray, *, percentile: float = 90.0) -> tuple[np.ndarray, float]:
    """(centre, radius): the median of the centres and the ``percentile`` of distances from it."""
    if len(means) == 0:
        raise InputError("the scene has zero Gaussians")
    centre = np.median(means, axis=0)
    radius = float(np.percentile(np.linalg.norm(means - centre, axis=1), percentile))
    return centre.astype(np.float32), max(radius, 1e-6)


def orbit_cameras(
    means: np.ndarray,
    n: int = 8,
    *,
    width: int = 256,
    height: int = 256,
    fov_x_deg: float = 50.0,
    distance: float = 2.5,
    elevation_deg: float = 25.0,
    percentile: float = 50.0,
    up: tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> list[Camera]:
    """``n`` cameras on a circle around the robust centre, ``distance`` x robust radius away.

    The robust radius is the median distance from the median centre by default, so a background shell (sky
    domes, distant floaters: often a third of a real scene's Gaussians) neither moves nor pushes out the cameras.
    """
    centre, radius = robust_bounds(means, percentile=percentile)
    up_v = np.asarray(up, np.float64)
    up_v /= np.linalg.norm(up_v)
    a = np.array([1.0, 0.0, 0.0]) if abs(up_v[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(up_v, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up_v, e1)
    K = intrinsics(width, height, fov_x_deg)
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n):
        az = 2 * math.pi * i / n
        d = math.cos(el) * (math.cos(az) * e1 + math.sin(az) * e2) + math.sin(el) * up_v
        eye = centre + distance * radius * d
        cams.append(Camera(look_at(eye, centre, up_v), K, width, height, f"orbit_{i:02d}"))
    return cams


def save_cameras(cams: list[Camera], path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps({"cameras": [c.to_dict() for c in cams]}, indent=1))


def load_cameras(path: str | os.PathLike) -> list[Camera]:
    try:
        d = json.loads(Path(path).read_text())
        return [Camera.from_dict(c) for c in d["cameras"]]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"cannot read cameras from {path}: {e}") from None
