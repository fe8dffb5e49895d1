"""SemanticKITTI label files: one little-endian uint32 per point, semantic id in the low 16 bits,
instance id in the high 16 bits (``sequences/NN/labels/NNNNNN.label``), and ``velodyne/*.bin`` scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.utils.files import atomic_output

_MAX16 = 0xFFFF


def _field(values: np.ndarray | None, n: int, what: str) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=np.uint32)
    values = np.asarray(values)
    if values.ndim != 1 or values.shape[0] != n or (n and values.dtype.kind not in "iu"):
        raise InputError(f"{what} must be {n} integers, got {values.dtype} {values.shape}")
    values = values.astype(np.int64)
    values = np.where(values == -1, 0, values)  # -1 (unlabelled) is SemanticKITTI's 0
    if n and (values.min() < 0 or values.max() > _MAX16):
        raise InputError(f"{what} must fit in 16 bits (0..65535, or -1 for none); got "
                         f"{values.min()}..{values.max()}")
    return values.astype(np.uint32)


def encode_kitti_labels(semantic: np.ndarray, instance: np.ndarray | None = None) -> np.ndarray:
    """uint32 ``instance << 16 | semantic``; -1 in either is written as 0 (unlabelled / no instance)."""
    semantic = np.asarray(semantic)
    if semantic.ndim != 1:
        raise InputError(f"semantic labels must be 1-D, got shape {semantic.shape}")
    sem = _field(semantic, len(semantic), "semantic labels")
    inst = _field(instance, len(semantic), "instance labels")
    return (inst << np.uint32(16)) | sem


def decode_kitti_labels(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance) int64 arrays from uint32 SemanticKITTI labels."""
    raw = np.asarray(raw).astype(np.uint32)
    return (raw & _MAX16).astype(np.int64), (raw >> 16).astype(np.int64)


def write_kitti_labels(path: str | Path, semantic: np.ndarray, instance: np.ndarray | None = None,
                       overwrite: bool = False) -> Path:
    """Write a SemanticKITTI ``.label`` file (atomically; an existing file is kept unless `overwrite`)."""
    path = Path(path)
    if path.suffix.lower() != ".label":
        raise InputError(f"{path}: a SemanticKITTI label file must end in .label")
    data = encode_kitti_labels(semantic, instance).astype("<u4")
    with atomic_output(path, overwrite) as tmp:
        data.tofile(tmp)
    return path


def read_kitti_labels(path: str | Path, num_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.label`` file as (semantic, instance) int64 arrays, checking it against `num_points`."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such label file")
    size = path.stat().st_size
    if size % 4:
        raise FileFormatError(f"{path}: {size} bytes is not a whole number of uint32 labels "
                              "(truncated or not a SemanticKITTI .label file)")
    raw = np.fromfile(path, dtype="<u4")
    if num_points is not None and len(raw) != num_points:
        raise FileFormatError(f"{path}: holds {len(raw)} labels but the scan has {num_points} points")
    return decode_kitti_labels(raw)


def write_kitti_scan(path: str | Path, xyz: np.ndarray, intensity: np.ndarray | None = None,
                     overwrite: bool = False) -> Path:
    """Write a velodyne ``.bin`` scan: float32 x y z intensity per point (intensity 0 when not given)."""
    path = Path(path)
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.dtype.kind not in "iuf":
        raise InputError(f"xyz must be a numeric (N, 3) array, got {xyz.dtype} {xyz.shape}")
    table = np.zeros((len(xyz), 4), dtype="<f4")
    table[:, :3] = xyz
    if intensity is not None:
        intensity = np.asarray(intensity, dtype=np.float32).reshape(-1)
        if len(intensity) != len(xyz):
            raise InputError(f"intensity has {len(intensity)} values for {len(xyz)} points")
        table[:, 3] = intensity
    with atomic_output(path, overwrite) as tmp:
        table.tofile(tmp)
    return path


def read_kitti_scan(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a velodyne ``.bin`` scan as (xyz float32 (N, 3), intensity float32 (N,))."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such scan file")
    size = path.stat().st_size
    if size % 16:
        raise FileFormatError(f"{path}: {size} bytes is not a whole number of points "
                              "(16 bytes each: float32 x y z intensity); truncated?")
    table = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    return table[:, :3].copy(), table[:, 3].copy()
