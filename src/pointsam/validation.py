"""Checks that turn malformed user arrays into one clear `InputError`."""

from __future__ import annotations

import numpy as np
import torch

from pointsam.errors import InputError


def as_numpy(x, name: str) -> np.ndarray:
    """Convert an array-like (numpy, torch, list) to numpy, with a clear error otherwise."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be an array, got {type(x).__name__}: {exc}") from exc


def check_xyz(xyz, name: str = "xyz") -> np.ndarray:
    """Validate point coordinates: shape (N, 3), numeric, finite, N >= 1."""
    arr = as_numpy(xyz, name)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3), got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{name} is empty: the point cloud has no points")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must hold numbers, got dtype {arr.dtype}")
    finite = np.isfinite(arr).all(axis=1) if np.issubdtype(arr.dtype, np.floating) else None
    if finite is not None and not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(
            f"{name} has {bad.size} point(s) with NaN or Inf coordinates (first at index "
            f"{bad[0]}); remove them first, e.g. xyz[np.isfinite(xyz).all(1)]"
        )
    return arr


def colors_to_unit(rgb, num_points: int) -> np.ndarray:
    """Colours as float32 in [0, 1]: uint8 0..255 or float 0..1 accepted."""
    arr = as_numpy(rgb, "rgb")
    if arr.ndim != 2 or arr.shape != (num_points, 3):
        raise InputError(f"rgb must have shape ({num_points}, 3) to match xyz, got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise InputError("integer rgb must lie in 0..255")
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"rgb must be uint8 (0..255) or float (0..1), got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError("rgb contains NaN or Inf")
    if arr.min() < 0 or arr.max() > 1:
        raise InputError(
            f"float rgb must lie in [0, 1] (got {arr.min():.3g}..{arr.max():.3g}); "
            "pass uint8 for 0..255 colours or divide by 255"
        )
    return arr.astype(np.float32)


def check_labels(labels, count: int) -> np.ndarray:
    """Prompt labels: `count` values, each 0/1 (or bool)."""
    arr = as_numpy(labels, "point_labels").reshape(-1)
    if arr.shape[0] != count:
        raise InputError(f"got {count} prompt point(s) but {arr.shape[0]} label(s)")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        raise InputError(
            f"point_labels must be 1 (positive/foreground) or 0 (negative/background), got "
            f"{np.unique(arr).tolist()}"
        )
    return arr.astype(np.int64)
