"""The in-memory point cloud returned by every reader, plus array helpers shared by the I/O code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pointsam.preprocessing import colors_to_unit, rgb_to_uint8

__all__ = ["LARGE_COORDINATE", "PointCloud", "coords_dtype", "normalize_rgb_to_unit", "rgb_to_uint8"]

if TYPE_CHECKING:
    import trimesh

#: Coordinates larger than this (in magnitude) are kept in float64 to avoid losing precision.
LARGE_COORDINATE = 1e5


@dataclass
class PointCloud:
    """Points with optional colours, per-point fields and the mesh they were sampled from.

    `extra` holds convenient per-point arrays (`normal` as (N, 3), `label`, `intensity`, ...).
    `fields` holds every per-point property the file stores, under the file's own names and dtypes
    (PLY/PCD properties incl. x, y, z and colours; every LAS dimension incl. classification and
    extra bytes, with x, y, z scaled): the writers copy them through so outputs keep the user's data.
    `meta` holds what else a writer needs: `format`, `complete` (True when `fields` hold everything
    the file stores, so writing over the file loses nothing), `comments`/`obj_info` (PLY),
    `las_header` (the `laspy.LasHeader`: scales, offsets, CRS and other VLRs).
    """

    xyz: np.ndarray
    rgb: np.ndarray | None = None
    face_index: np.ndarray | None = None
    mesh: trimesh.Trimesh | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    source: Path | None = None
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

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
    """Return (N,3) float32 colours in [0,1] under the one colour rule (`preprocessing.colors_to_unit`)."""
    return colors_to_unit(rgb)
