"""Fixed pinhole cameras around an object (OpenCV convention: x right, y down, z forward)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pointsam.errors import InputError

DEFAULT_FOV_DEG = 40.0
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


@dataclass(frozen=True)
class Camera:
    """Intrinsics `K` (3, 3), world-to-camera extrinsics (4, 4) and the image size in pixels."""

    K: np.ndarray
    world_to_cam: np.ndarray
    width: int
    height: int

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        rot, t = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        return -rot.T @ t

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit ray directions (H*W, 3) through pixel centres, row-major, and their z per unit length."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        pix = np.stack([u.ravel() + 0.5, v.ravel() + 0.5, np.ones(u.size)], axis=1)
        cam = pix @ np.linalg.inv(self.K).T  # z = 1 in camera frame
        norm = np.linalg.norm(cam, axis=1, keepdims=True)
        dirs = (cam / norm) @ self.world_to_cam[:3, :3]  # camera -> world rotation is R^T
        return dirs, 1.0 / norm[:, 0]

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) as (u, v) floats and camera depth z (N,) of world points."""
        cam = xyz @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]
        z = cam[:, 2]
        safe = np.where(np.abs(z) < 1e-12, 1e-12, z)
        uv = (cam[:, :2] / safe[:, None]) * np.diag(self.K)[:2] + self.K[:2, 2]
        return uv, z

    def backproject(self, depth: np.ndarray) -> np.ndarray:
        """World points (H*W, 3) of a depth image (camera z, 0 = no hit gives the camera centre)."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        z = depth.reshape(-1).astype(np.float64)
        pix = np.stack([(u.ravel() + 0.5) * z, (v.ravel() + 0.5) * z, z], axis=1)
        cam = pix @ np.linalg.inv(self.K).T
        rot, t = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        return (cam - t) @ rot


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-to-camera (4, 4) for a camera at `eye` looking at `target`, image 'up' towards `up`."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    if abs(float(np.dot(forward, up))) > 0.999 * np.linalg.norm(up):
        up = np.array([0.0, 0.0, 1.0]) if abs(forward[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ eye
    return out


def sphere_directions(n: int) -> np.ndarray:
    """`n` unit vectors spread evenly over the sphere (Fibonacci lattice, deterministic)."""
    if n < 1:
        raise InputError(f"the number of views must be at least 1, got {n}")
    i = np.arange(n) + 0.5
    y = 1.0 - 2.0 * i / n  # y is 'up' (ShapeNet / PartNet frame)
    r = np.sqrt(np.clip(1.0 - y * y, 0.0, None))
    phi = GOLDEN_ANGLE * np.arange(n)
    return np.stack([r * np.cos(phi), y, r * np.sin(phi)], axis=1)


def object_cameras(center, radius: float, num_views: int = 6, width: int = 512, height: int | None = None,
                   fov_deg: float = DEFAULT_FOV_DEG, margin: float = 1.1) -> list[Camera]:
    """`num_views` cameras on a sphere around a bounding sphere, each seeing all of it."""
    height = height or width
    if width < 8 or height < 8:
        raise InputError(f"images must be at least 8 x 8 pixels, got {width} x {height}")
    if not 1.0 <= fov_deg < 170.0:
        raise InputError(f"field of view must be in [1, 170) degrees, got {fov_deg}")
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(f"the object's bounding radius must be positive, got {radius}")
    half = math.radians(fov_deg) / 2
    dist = margin * radius / math.sin(half)
    focal = (min(width, height) / 2) / math.tan(half)
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)
    center = np.asarray(center, dtype=np.float64)
    up = np.array([0.0, 1.0, 0.0])
    return [Camera(K, look_at(center + dist * d, center, up), width, height)
            for d in sphere_directions(num_views)]
