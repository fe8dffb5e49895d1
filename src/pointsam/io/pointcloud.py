"""The in-memory point cloud returned by every reader, plus array helpers shared by the I/O code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pointsam.errors import InputError

if TYPE_CHECKING:
    import trimesh

#: Coordinates larger than this (in magnitude) are kept in float64 to avoid losing precision.
LARGE_COORDINATE = 1e5


@dataclass
class PointCloud:
    """Points with optional colours, per-point fields and the mesh they were sampled from."""

    xyz: np.ndarray
    rgb: np.ndarray | None = None
    face_index: np.ndarray | None = None
    mesh: trimesh.Trimesh | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    source: Path | None = None

    @property
    def num_points(self) -> int:
        """Number of points."""
        return int(self.xyz.shape[0])


def coords_dtype(xyz: np.ndarray, *, force64: bool = False) -> np.ndarray:
    """Return `xyz` as float32, or float64 when forced or when any finite |value| exceeds 1e5."""
    xyz = np.asarray(xyz)
    if force64:
        return np.ascontiguousarray(xyz, dtype=np.float64)
    finite = xyz[np.isfinite(xyz)] if xyz.dtype.kind == "f" else xyz
    if finite.size and float(np.abs(finite).max()) > LARGE_COORDINATE:
        return np.ascontiguousarray(xyz, dtype=np.float64)
    return np.ascontiguousarray(xyz, dtype=np.float32)


def normalize_rgb_to_unit(rgb: np.ndarray) -> np.ndarray:
    """Return (N,3) float32 colours in [0,1]; uint8 and 0..255 values are divided by 255."""
    arr = np.asarray(rgb)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"rgb must have shape (N, 3), got {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype.kind not in "iuf":
        raise InputError(f"rgb must be numeric, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise InputError("rgb contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0:
        raise InputError(f"rgb values must be >= 0, found {lo:g}")
    if arr.dtype.kind == "f" and hi <= 1.0:
        return arr.astype(np.float32)
    if hi <= 255.0:
        # Values above 1 are taken to be on the 0..255 scale (floats or integers).
        return (arr.astype(np.float32) / 255.0).astype(np.float32)
    raise InputError(
        f"rgb values must be in [0, 1] or [0, 255], found a maximum of {hi:g}"
    )


def rgb_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Return (N,3) uint8 colours from uint8, 0..255 or [0,1] input."""
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape[1] == 3:
        return arr
    unit = normalize_rgb_to_unit(arr)
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)
