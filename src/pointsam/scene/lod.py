"""Level-of-detail display subsets of a huge cloud: a voxel overview + full resolution near the work.

A viewer shows `LevelOfDetail.display(center)`: indices into the full cloud (so labels, which
always live on every point, are shown as `labels[subset]`), made of one point per voxel of the
overview and every point of the ball of `detail_points` points around the work area.
"""

from __future__ import annotations

import numpy as np

from pointsam.errors import InputError
from pointsam.scene.regions import Region, SpatialIndex


def voxel_overview(xyz: np.ndarray, max_points: int, *, sample: int = 2_000_000, seed: int = 0) -> np.ndarray:
    """Sorted indices of one point per voxel, the voxel size chosen so at most `max_points` remain.

    The size is tuned towards 90% of the budget on a random sample of `sample` points (surfaces:
    count ~ 1 / size^2), then checked on the whole cloud; the first point of each voxel represents it.
    """
    xyz = np.asarray(xyz)
    n = xyz.shape[0]
    if isinstance(max_points, bool) or int(max_points) != max_points or max_points < 1:
        raise InputError(f"max_points must be a positive integer, got {max_points!r}")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    lo = xyz.min(axis=0).astype(np.float64)
    extent = float((xyz.max(axis=0) - lo).max()) or 1.0
    size = extent / np.sqrt(max_points)
    # Tune the size towards 90% of the budget on a sample (a sample sees a few % fewer voxels than
    # the whole cloud), then check on every point, shrinking until the budget holds.
    sub = xyz if n <= sample else xyz[np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))]
    target = 0.9 * max_points
    for _ in range(8):
        count = _first_per_voxel(sub, lo, size).size
        if abs(count - target) <= 0.05 * target or count >= sub.shape[0]:
            break
        size *= np.sqrt(count / target)
    for _ in range(30):
        picked = _first_per_voxel(xyz, lo, size)
        if picked.size <= max_points:
            return picked
        size *= max(1.05, np.sqrt(picked.size / max_points))
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _first_per_voxel(xyz: np.ndarray, lo: np.ndarray, size: float) -> np.ndarray:
    cells = np.floor((xyz - lo) / size).astype(np.int64)
    dims = cells.max(axis=0) + 1
    keys = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
    _, first = np.unique(keys, return_index=True)
    return np.sort(first).astype(np.int64)


class LevelOfDetail:
    """Display subsets of one cloud: a fixed overview plus full resolution around a centre."""

    def __init__(self, xyz: np.ndarray, overview_points: int = 500_000, detail_points: int = 200_000,
                 index: SpatialIndex | None = None) -> None:
        self.xyz = np.asarray(xyz)
        self.index = index if index is not None else SpatialIndex(self.xyz)
        self.overview = voxel_overview(self.xyz, overview_points)
        self.detail_points = int(detail_points)

    def display(self, center=None) -> np.ndarray:
        """Sorted full-cloud indices to draw: the overview, plus every point near `center` if given."""
        if center is None:
            return self.overview
        return self.display_with_detail(center)[0]

    def display_with_detail(self, center) -> tuple[np.ndarray, Region]:
        """`display(center)` and the full-resolution ball it includes (a viewer shows its radius)."""
        region = self.detail(center)
        return np.union1d(self.overview, region.indices), region

    def detail(self, center) -> Region:
        """The full-resolution ball of `detail_points` points nearest `center`."""
        return self.index.ball(np.asarray(center, np.float64), self.detail_points)
