"""Spatial index of a big cloud, built once, and the ball-shaped regions cut out of it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from pointsam.errors import InputError


@dataclass(frozen=True)
class Region:
    """A ball of the cloud: the `indices` (sorted, into the full cloud) within `radius` of `center`.

    `dist` holds each region point's distance to the centre (same order as `indices`);
    `whole` is true when the region is the entire cloud (it then has no border).
    """

    center: np.ndarray  # (3,) float64
    radius: float
    indices: np.ndarray  # (n,) int64, sorted
    dist: np.ndarray  # (n,) float64
    whole: bool = False

    @property
    def num_points(self) -> int:
        return int(self.indices.size)

    def border(self, width: float) -> np.ndarray:
        """(n,) bool: region points within `width` (a fraction of the radius) of the ball's surface."""
        if self.whole:
            return np.zeros(self.indices.size, bool)
        return self.dist >= self.radius * (1.0 - width)

    def covers(self, points: np.ndarray, margin: float = 0.0) -> bool:
        """True when every point (Q, 3) lies inside the ball shrunk by `margin` (fraction of radius)."""
        if self.whole:
            return True
        d = np.linalg.norm(np.asarray(points, np.float64) - self.center, axis=1)
        return bool((d <= self.radius * (1.0 - margin)).all())

    def local(self, global_indices: np.ndarray) -> np.ndarray:
        """Positions in the region of full-cloud indices (-1 where a point is not in the region)."""
        pos = np.searchsorted(self.indices, global_indices)
        pos = np.minimum(pos, self.indices.size - 1)
        return np.where(self.indices[pos] == global_indices, pos, -1)


class SpatialIndex:
    """A KD-tree over the cloud's points (float64 copy, ~40 bytes/point), built once."""

    def __init__(self, xyz: np.ndarray, leafsize: int = 32) -> None:
        xyz = np.asarray(xyz)
        if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.shape[0] == 0:
            raise InputError(f"xyz must have shape (N, 3) with N >= 1, got {xyz.shape}")
        self.num_points = int(xyz.shape[0])
        self.tree = cKDTree(xyz, leafsize=leafsize, balanced_tree=False, compact_nodes=False)
        self.lo = self.tree.mins.astype(np.float64)
        self.hi = self.tree.maxes.astype(np.float64)

    def whole(self) -> Region:
        """The entire cloud as one region."""
        center = (self.lo + self.hi) / 2
        idx = np.arange(self.num_points, dtype=np.int64)
        return Region(center, float(np.linalg.norm(self.hi - self.lo)), idx,
                      np.zeros(self.num_points), whole=True)

    def nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to and index of the cloud point nearest each of `points` (Q, 3)."""
        d, i = self.tree.query(np.asarray(points, np.float64).reshape(-1, 3), k=1)
        return np.asarray(d, np.float64), np.asarray(i, np.int64)

    def ball(self, center: np.ndarray, num_points: int) -> Region:
        """The `num_points` points nearest `center` as a region (the whole cloud if it is smaller)."""
        if num_points < 1:
            raise InputError(f"a region needs at least one point, got num_points={num_points}")
        if num_points >= self.num_points:
            return self.whole()
        center = np.asarray(center, np.float64).reshape(3)
        dist, idx = self.tree.query(center, k=num_points)
        dist, idx = np.atleast_1d(dist), np.atleast_1d(np.asarray(idx, np.int64))
        radius = float(dist[-1])
        # Points tied with the farthest one belong to the ball too (no arbitrary cut among equals).
        extra = np.asarray(self.tree.query_ball_point(center, radius), np.int64)
        if extra.size > idx.size:
            idx = extra
            dist = np.linalg.norm(self.tree.data[idx] - center, axis=1)
        order = np.argsort(idx, kind="stable")
        return Region(center, radius, idx[order], dist[order])

    def covering(self, required: np.ndarray, num_points: int, max_points: int, growth: float,
                 margin: float) -> Region:
        """The smallest ball of >= `num_points` points (growing by `growth`, up to `max_points`)
        centred on the bounding box of `required` (Q, 3) that contains them all inside its margin."""
        region, covers = self._grow_until_covered(required, num_points, max_points, growth, margin)
        if not covers:
            required = np.asarray(required, np.float64).reshape(-1, 3)
            span = float(np.linalg.norm(required.max(axis=0) - required.min(axis=0)))
            raise InputError(
                f"the prompts span {span:.3g} units, more than a region of {max_points:,} points "
                f"(radius {region.radius:.3g}) can hold; click closer together or raise "
                "max_prompt_region_points"
            )
        return region

    def try_covering(self, required: np.ndarray, num_points: int, max_points: int, growth: float,
                     margin: float) -> Region | None:
        """`covering`, or None when no ball of at most `max_points` points holds `required`."""
        region, covers = self._grow_until_covered(required, num_points, max_points, growth, margin)
        return region if covers else None

    def _grow_until_covered(self, required, num_points: int, max_points: int, growth: float,
                            margin: float) -> tuple[Region, bool]:
        """The first ball (growing from `num_points` to `max_points`) holding `required`, or the largest."""
        required = np.asarray(required, np.float64).reshape(-1, 3)
        center = (required.min(axis=0) + required.max(axis=0)) / 2
        size = num_points
        while True:
            region = self.ball(center, size)
            if region.covers(required, margin):
                return region, True
            if size >= max_points:
                return region, False
            size = min(int(np.ceil(size * growth)), max_points)
