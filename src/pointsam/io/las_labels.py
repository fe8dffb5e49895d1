"""LAS/LAZ 1.4 classification through a class map (ASPRS codes where a class has one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.classmap import ClassMap
from pointsam.io.pointcloud import PointCloud
from pointsam.io.writers import write_labels


def write_las_classes(path: str | Path, xyz: np.ndarray, labels: np.ndarray, class_map: ClassMap,
                      rgb: np.ndarray | None = None, *, source: PointCloud | None = None,
                      overwrite: bool = False) -> Path:
    """Write class labels as LAS classification codes of `class_map` (-1 -> 0, 'never classified').

    With `source` read from a LAS file, every original dimension is kept and only the
    classification changes (see :func:`pointsam.io.write_labels`).
    """
    path = Path(path)
    if path.suffix.lower() not in (".las", ".laz"):
        raise InputError(f"{path}: a LAS file must end in .las or .laz")
    codes = class_map.to_las(labels)
    write_labels(path, xyz, codes, rgb, source=source, overwrite=overwrite, classification_from_labels=True)
    return path


def read_las_classes(path: str | Path, class_map: ClassMap) -> tuple[PointCloud, np.ndarray]:
    """Read a LAS/LAZ file: (cloud, class labels int64); codes no class of `class_map` has become -1."""
    from pointsam.io.readers import read_point_cloud

    path = Path(path)
    if path.suffix.lower() not in (".las", ".laz"):
        raise FileFormatError(f"{path}: not a .las or .laz file")
    cloud = read_point_cloud(path)
    if "classification" not in cloud.extra:
        raise FileFormatError(f"{path}: no classification dimension")
    return cloud, class_map.from_las(cloud.extra["classification"])
