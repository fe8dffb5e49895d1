"""Fuse RGB-D views into one coloured point cloud with pixel <-> point maps and per-view visibility."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from pointsam.engine.render import RenderedViews
from pointsam.errors import InputError
from pointsam.ops import farthest_point_sampling

DEPTH_TOLERANCE = 0.02  # visibility test slack, as a fraction of the cloud's bounding radius
PRESAMPLE = 8  # random pre-sampling to PRESAMPLE * num_points before farthest point sampling


@dataclass
class FusedCloud:
    """A cloud fused from views, with `pixel_point` (V, H, W) and `point_pixel` (V, N) maps (-1 = none)."""

    xyz: np.ndarray  # (N, 3) float32
    rgb: np.ndarray  # (N, 3) uint8
    pixel_point: np.ndarray  # nearest cloud point of each foreground pixel
    point_pixel: np.ndarray  # flat pixel where each point is visible in each view

    @property
    def num_points(self) -> int:
        return len(self.xyz)

    @property
    def visible(self) -> np.ndarray:
        """(V, N) bool: point seen by view."""
        return self.point_pixel >= 0

    def project(self, view: int, mask: np.ndarray) -> np.ndarray:
        """Projection (H, W) bool of a point mask (N,) onto a view, through `pixel_point`."""
        pix = self.pixel_point[view]
        return (pix >= 0) & np.asarray(mask, bool)[np.maximum(pix, 0)]

    def lift(self, view: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Cloud point index of each foreground pixel (rows, cols) of a view (-1 on background)."""
        return self.pixel_point[view, rows, cols]


def visibility(views: RenderedViews, xyz: np.ndarray, tolerance: float) -> np.ndarray:
    """(V, N) flat pixel index where each point is seen (depth test within `tolerance`), else -1."""
    out = np.full((views.num_views, len(xyz)), -1, np.int64)
    for v, cam in enumerate(views.cameras):
        uv, z = cam.project(xyz.astype(np.float64))
        col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
        inside = (z > 0) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
        idx = np.flatnonzero(inside)
        d = views.depth[v, row[idx], col[idx]]
        seen = (d > 0) & (np.abs(d - z[idx]) <= tolerance)
        out[v, idx[seen]] = row[idx[seen]] * cam.width + col[idx[seen]]
    return out


def fuse_views(views: RenderedViews, num_points: int = 32768, seed: int = 0,
               depth_tolerance: float = DEPTH_TOLERANCE) -> FusedCloud:
    """Back-project every foreground pixel, down-sample by FPS to `num_points`, map pixels <-> points."""
    if num_points < 3:
        raise InputError(f"the fused cloud needs at least 3 points, got {num_points}")
    fg = views.foreground
    if not fg.any():
        raise InputError("no view sees the object: the renders are empty")
    xyz_all, rgb_all = [], []
    for v, cam in enumerate(views.cameras):
        sel = fg[v].reshape(-1)
        xyz_all.append(cam.backproject(views.depth[v])[sel])
        rgb_all.append(views.rgb[v].reshape(-1, 3)[sel])
    xyz, rgb = np.concatenate(xyz_all), np.concatenate(rgb_all)
    rng = np.random.default_rng(seed)
    if len(xyz) > PRESAMPLE * num_points:
        keep = rng.choice(len(xyz), PRESAMPLE * num_points, replace=False)
        xyz, rgb = xyz[keep], rgb[keep]
    if len(xyz) > num_points:
        order = rng.permutation(len(xyz))
        xyz, rgb = xyz[order], rgb[order]
        idx = farthest_point_sampling(torch.from_numpy(xyz.astype(np.float32))[None], num_points,
                                      method="bucket")[0].numpy()
        xyz, rgb = xyz[idx], rgb[idx]
    xyz = xyz.astype(np.float32)
    radius = float(np.linalg.norm(xyz - xyz.mean(axis=0), axis=1).max())
    tree = cKDTree(xyz)
    pixel_point = np.full(fg.shape, -1, np.int64)
    for v, cam in enumerate(views.cameras):
        sel = fg[v]
        pts = cam.backproject(views.depth[v])[sel.reshape(-1)]
        pixel_point[v][sel] = tree.query(pts)[1]
    point_pixel = visibility(views, xyz, depth_tolerance * max(radius, 1e-12))
    return FusedCloud(xyz, rgb, pixel_point, point_pixel)
