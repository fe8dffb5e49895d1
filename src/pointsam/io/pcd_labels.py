"""PCD (Point Cloud Library) files with per-point ``label`` and ``instance`` fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.pointcloud import PointCloud, rgb_to_uint8
from pointsam.utils.files import atomic_output


def _int32(values: np.ndarray, n: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or values.shape[0] != n or (n and values.dtype.kind not in "biu"):
        raise InputError(f"{what} must be {n} integers, got {values.dtype} {values.shape}")
    values = values.astype(np.int64)
    info = np.iinfo(np.int32)
    if n and (values.min() < info.min or values.max() > info.max):
        raise InputError(f"{what} do not fit in int32")
    return values.astype(np.int32)


def write_pcd_labels(path: str | Path, xyz: np.ndarray, labels: np.ndarray,
                     instance: np.ndarray | None = None, rgb: np.ndarray | None = None,
                     binary: bool = True, overwrite: bool = False) -> Path:
    """Write x y z [rgb] label [instance] as a PCD file (int32 labels, -1 = unlabelled; PCL's packed rgb)."""
    import pypcd4

    path = Path(path)
    if path.suffix.lower() != ".pcd":
        raise InputError(f"{path}: a PCD file must end in .pcd")
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.dtype.kind not in "iuf":
        raise InputError(f"xyz must be a numeric (N, 3) array, got {xyz.dtype} {xyz.shape}")
    n = len(xyz)
    xyz_type = np.float64 if xyz.dtype == np.float64 else np.float32
    columns = [xyz[:, i].astype(xyz_type) for i in range(3)]
    fields, types = ["x", "y", "z"], [xyz_type] * 3
    if rgb is not None:
        colors = rgb_to_uint8(rgb)
        if len(colors) != n:
            raise InputError(f"rgb has {len(colors)} rows but xyz has {n}")
        packed = pypcd4.PointCloud.encode_rgb(colors).astype(np.float32)
        # ASCII keeps the packed bits exact only as an unsigned integer (a float prints as 0.0).
        columns.append(packed if binary else packed.view(np.uint32))
        fields.append("rgb")
        types.append(np.float32 if binary else np.uint32)
    columns.append(_int32(labels, n, "labels"))
    fields.append("label")
    types.append(np.int32)
    if instance is not None:
        columns.append(_int32(instance, n, "instance labels"))
        fields.append("instance")
        types.append(np.int32)
    cloud = pypcd4.PointCloud.from_points(columns, fields, types)
    encoding = pypcd4.Encoding.BINARY if binary else pypcd4.Encoding.ASCII
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
        cloud.save(fh, encoding=encoding)
    return path


def read_pcd_labels(path: str | Path, field: str = "label"
                    ) -> tuple[PointCloud, np.ndarray, np.ndarray | None]:
    """Read a PCD file: (cloud, labels int64, instance int64 or None); FileFormatError without `field`."""
    from pointsam.io.readers import read_point_cloud

    path = Path(path)
    if path.suffix.lower() != ".pcd":
        raise FileFormatError(f"{path}: not a .pcd file")
    cloud = read_point_cloud(path)
    extra = cloud.extra
    if field not in extra:
        known = ", ".join(sorted(extra)) or "x y z only"
        raise FileFormatError(f"{path}: no {field!r} field (fields: {known})")
    labels = _label_field(extra.pop(field), path, field)
    instance = _label_field(extra.pop("instance"), path, "instance") if "instance" in extra else None
    return cloud, labels, instance


def _label_field(values: np.ndarray, path: Path, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise FileFormatError(f"{path}: field {name!r} has {values.shape[1:]} values per point, expected 1")
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.rint(values)):
            raise FileFormatError(f"{path}: field {name!r} holds non-integer values")
    elif values.dtype.kind not in "iu":
        raise FileFormatError(f"{path}: field {name!r} has dtype {values.dtype}, expected integers")
    return values.astype(np.int64)
