"""Point selections of the hand tools on the server: validation of the indices a page sends, and the
neighbourhoods of grow/shrink (a KD-tree over the cloud)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from pointsam.errors import InputError


def checked_selection(indices, num_points: int) -> np.ndarray:
    """Point indices from a tool as sorted int64: integers, in range, each once, at most N of them;
    `InputError` saying what is wrong otherwise (an empty selection included)."""
    arr = np.asarray(indices)
    if arr.ndim != 1 or arr.dtype == bool or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError("a selection must be a flat list of integer point indices")
    if arr.size == 0:
        raise InputError("nothing selected: no point lies inside the lasso, box or brush (a lasso "
                         "needs an area: drag around the points)")
    if arr.size > num_points:
        raise InputError(f"a selection has at most {num_points} points, got {arr.size}")
    arr = np.sort(arr.astype(np.int64))
    if arr[0] < 0 or arr[-1] >= num_points:
        bad = arr[0] if arr[0] < 0 else arr[-1]
        raise InputError(f"point index {bad} is outside the cloud (0..{num_points - 1})")
    repeated = arr[1:][np.diff(arr) == 0]
    if repeated.size:
        raise InputError(f"point index {repeated[0]} is selected twice: list each point once")
    return arr


def neighbour_spacing(xyz: np.ndarray, sample: int = 5000, seed: int = 0) -> float:
    """Median distance from a point to its nearest other point (over a random sample of points)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    picked = np.random.default_rng(seed).choice(len(xyz), size=min(sample, len(xyz)), replace=False)
    dist, _ = cKDTree(xyz).query(xyz[picked], k=2)
    gaps = dist[:, 1][dist[:, 1] > 0]
    return float(np.median(gaps)) if gaps.size else 1.0


def near(xyz: np.ndarray, *, source: np.ndarray, probe: np.ndarray, radius: float) -> np.ndarray | None:
    """Indices of the `probe` points (bool mask) within `radius` of any `source` point (bool mask), sorted;
    None when either set is empty. Grow: source = the mask, probe = the free points; shrink: source = the
    outside, probe = the mask."""
    if not source.any() or not probe.any():
        return None
    xyz = np.asarray(xyz, dtype=np.float64)
    candidates = np.flatnonzero(probe)
    dist, _ = cKDTree(xyz[source]).query(xyz[candidates], k=1, distance_upper_bound=radius)
    return candidates[dist <= radius]
