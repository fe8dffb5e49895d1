"""Deterministic click simulation: the point of a region farthest from the region's border.

Follows the official evaluation protocol (paper Sec. 5.1, App. C): the first click is the gt
point farthest from the gt border; each later click is the false-negative (positive) or the
false-positive (negative) point farthest from its own region's border, whichever is farther.
Distances are squared Euclidean distances among the points only, found with a KD-tree of the
region's complement (no N x N matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from pointsam.errors import InputError

__all__ = ["Click", "farthest_from_boundary", "first_click", "next_click"]

ArrayLike = np.ndarray | torch.Tensor


@dataclass(frozen=True)
class Click:
    """One simulated click and the two candidate distances it was chosen from.

    `fn_dist_sq` / `fp_dist_sq` are the squared border distances of the best false-negative /
    false-positive point (-1.0 when that region or its complement is empty); for a first click
    `fn_dist_sq` is the gt point's distance and `fp_dist_sq` is -1.0.
    """

    index: int
    positive: bool
    fn_dist_sq: float
    fp_dist_sq: float


def _coords(coords: ArrayLike) -> np.ndarray:
    """Validate coords [N, 3] (float) and return them as a numpy array (float32 or float64)."""
    if isinstance(coords, torch.Tensor):
        if not coords.is_floating_point():
            raise InputError(f"coords: expected a floating-point tensor, got {coords.dtype}")
        coords = coords.detach().cpu().numpy()
    if not isinstance(coords, np.ndarray):
        raise InputError(f"coords must be a numpy array or torch.Tensor, got {type(coords).__name__}")
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise InputError(f"coords: expected shape [N, 3], got {list(coords.shape)}")
    if not np.issubdtype(coords.dtype, np.floating):
        raise InputError(f"coords: expected a floating-point array, got {coords.dtype}")
    if coords.dtype != np.float64:
        coords = coords.astype(np.float32, copy=False)
    return coords


def _mask(name: str, mask: ArrayLike, n: int) -> np.ndarray:
    """Validate a boolean mask [N] and return it as a numpy bool array."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise InputError(f"{name} must be a numpy array or torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        raise InputError(f"{name}: expected a boolean mask, got {mask.dtype} (threshold logits with > 0)")
    if mask.shape != (n,):
        raise InputError(f"{name}: expected shape [{n}] (one flag per point), got {list(mask.shape)}")
    return mask


def _farthest(coords: np.ndarray, region: np.ndarray) -> tuple[int, float]:
    """Core of `farthest_from_boundary` on validated inputs."""
    inside = np.flatnonzero(region)
    outside = np.flatnonzero(~region)
    if inside.size == 0 or outside.size == 0:
        return -1, -1.0
    tree = cKDTree(coords[outside].astype(np.float64))
    _, nn = tree.query(coords[inside].astype(np.float64), k=1, workers=-1)
    # Squared distance recomputed in the input precision by differences, (dx² + dy²) + dz².
    diff = coords[inside] - coords[outside[nn]]
    sq = diff * diff
    dist_sq = (sq[:, 0] + sq[:, 1]) + sq[:, 2]
    best = int(np.argmax(dist_sq))  # first maximum: ties go to the lowest point index
    return int(inside[best]), float(dist_sq[best])


def farthest_from_boundary(coords: ArrayLike, region: ArrayLike) -> tuple[int, float]:
    """Point of `region` with the largest squared distance to the nearest point outside it.

    coords [N, 3], region bool [N]. Returns (index, dist_sq), or (-1, -1.0) when the region or
    its complement is empty. Ties go to the lowest index.
    """
    xyz = _coords(coords)
    return _farthest(xyz, _mask("region", region, xyz.shape[0]))


def _center(coords: np.ndarray, gt: np.ndarray) -> tuple[int, float]:
    """The gt "centre" click; a gt covering every point has no border: take the point nearest its centroid."""
    if not gt.any():
        raise InputError("gt: the ground-truth mask is empty, so there is no object to click on")
    index, dist_sq = _farthest(coords, gt)
    if index < 0:
        centroid = coords.astype(np.float64).mean(axis=0)
        index = int(np.argmin(((coords - centroid) ** 2).sum(axis=1)))
    return index, dist_sq


def first_click(coords: ArrayLike, gt: ArrayLike) -> Click:
    """First click: the (positive) gt point farthest from the gt border."""
    xyz = _coords(coords)
    index, dist_sq = _center(xyz, _mask("gt", gt, xyz.shape[0]))
    return Click(index, True, dist_sq, -1.0)


def next_click(coords: ArrayLike, gt: ArrayLike, pred: ArrayLike) -> Click:
    """Next click from the errors of `pred` (bool [N]) against `gt` (bool [N]).

    The false-negative point farthest from its region's border is a positive click when its
    squared distance is strictly larger than the false-positive one's; otherwise the
    false-positive point is a negative click. With no error at all it falls back to the gt
    centre (the first click), as the official sampler does.
    """
    xyz = _coords(coords)
    n = xyz.shape[0]
    gt_np = _mask("gt", gt, n)
    pred_np = _mask("pred", pred, n)
    if not gt_np.any():
        raise InputError("gt: the ground-truth mask is empty, so there is no object to click on")
    fn_index, fn_dist = _farthest(xyz, gt_np & ~pred_np)
    fp_index, fp_dist = _farthest(xyz, ~gt_np & pred_np)
    if fn_index < 0 and fp_index < 0:
        index, _ = _center(xyz, gt_np)
        return Click(index, True, fn_dist, fp_dist)
    if fn_dist > fp_dist:
        return Click(fn_index, True, fn_dist, fp_dist)
    return Click(fp_index, False, fn_dist, fp_dist)
