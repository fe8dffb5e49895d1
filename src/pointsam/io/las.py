"""LAS/LAZ output: every dimension of the input kept, labels in an extra-bytes dimension.

Classification is changed only when asked: `classification_value` sets the class of the masked
points (others keep theirs); `classification_from_labels` writes each point's label as its class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.fields import expand, free_name, safe_name, source_fields
from pointsam.io.pointcloud import PointCloud
from pointsam.preprocessing import rgb_to_uint8
from pointsam.utils.files import atomic_output

# LAS point formats 0-5 keep only 5 bits of classification; move to the 1.4 equivalent.
_LAS_UPGRADE = {0: 6, 1: 6, 2: 7, 3: 7, 4: 9, 5: 10}
_MAX_NAME = 32  # bytes in an extra-bytes descriptor's name


def write_las_labels(
    path: Path,
    xyz: np.ndarray,
    labels: np.ndarray,
    rgb: np.ndarray | None,
    source: PointCloud | None,
    field: str,
    overwrite: bool,
    classification_value: int | None = None,
    classification_from_labels: bool = False,
) -> str:
    """Write a LAS/LAZ file keeping the input's dimensions, with `labels` as a new dimension.

    Returns the name of the labels dimension (`field`, or `field_1`... if the input has one).
    """
    _check_request(labels, classification_value, classification_from_labels)
    las = _from_source(source, len(xyz))
    if las is None:
        las = _new_las(xyz, rgb, source_fields(source, len(xyz)))
    classes = None
    if classification_from_labels:
        classes = _labels_as_classes(labels)
    elif classification_value is not None:
        classes = np.asarray(las.classification, dtype=np.uint8).copy()
        classes[labels.astype(bool)] = int(classification_value)
    if classes is not None:
        if las.point_format.id in _LAS_UPGRADE and classes.size and classes.max() > 31:
            import laspy

            las = laspy.convert(las, point_format_id=_LAS_UPGRADE[las.point_format.id],
                                file_version="1.4")
        las.classification = classes
    name = _add_extra(las, field, labels, "pointsam labels")
    with atomic_output(path, overwrite) as tmp:
        las.write(tmp, do_compress=path.suffix.lower() == ".laz")
    return name


def _check_request(labels: np.ndarray, value: int | None, from_labels: bool) -> None:
    """Refuse a classification request that does not fit the labels."""
    if value is not None and from_labels:
        raise InputError("give classification_value or classification_from_labels, not both")
    if value is None:
        return
    if isinstance(value, bool) or int(value) != value or not 0 <= int(value) <= 255:
        raise InputError(f"classification_value must be an integer in 0..255, got {value!r}")
    if labels.dtype != bool and labels.size and not np.isin(labels, (0, 1)).all():
        raise InputError("classification_value sets the class of one mask: labels must be 0/1 "
                         "(use classification_from_labels to write several labels as classes)")


def _labels_as_classes(labels: np.ndarray) -> np.ndarray:
    """Labels as LAS classes: -1 becomes 0 ('never classified'), others must be in 0..255."""
    values = labels.astype(np.int64)
    values[values == -1] = 0
    if values.size and (values.min() < 0 or values.max() > 255):
        raise InputError(
            f"LAS classification holds 0..255 (or -1 for unlabelled); labels range from "
            f"{labels.min()} to {labels.max()}: write .ply or .npy instead"
        )
    return values.astype(np.uint8)


def _from_source(source: PointCloud | None, n: int):  # -> laspy.LasData | None
    """The source LAS file re-read whole (header, VLRs, every dimension), if the input was one."""
    import laspy

    src = None if source is None else source.source
    if src is None or source.meta.get("format") != "las":
        return None
    try:
        las = laspy.read(src)
    except Exception as exc:
        raise FileFormatError(f"{src}: cannot re-read the source LAS file: {exc}") from exc
    if len(las.points) != n:
        raise InputError(f"{src} has {len(las.points)} points but {n} labels were given")
    return las


def _new_las(xyz: np.ndarray, rgb: np.ndarray | None, kept: dict[str, np.ndarray]):
    """A LAS 1.4 file from points, colours and the input's fields (standard or extra dimensions)."""
    import laspy

    coords = np.asarray(xyz, dtype=np.float64)
    if not np.isfinite(coords).all():
        raise InputError("LAS files cannot store NaN or infinite coordinates")
    triple = next((t for t in (("red", "green", "blue"),) if all(c in kept for c in t)), None)
    colors16 = None
    if triple is not None and all(kept[c].dtype == np.uint16 for c in triple):
        colors16 = np.column_stack([kept[c] for c in triple])
    elif rgb is not None:
        colors = rgb_to_uint8(rgb)
        if len(colors) != len(coords):
            raise InputError(f"rgb has {len(colors)} rows but xyz has {len(coords)}")
        colors16 = colors.astype(np.uint16) * 257  # 8 → 16 bit, 255 → 65535
    header = laspy.LasHeader(point_format=6 if colors16 is None else 7, version="1.4")
    lo = coords.min(axis=0) if len(coords) else np.zeros(3)
    extent = float((coords.max(axis=0) - lo).max()) if len(coords) else 0.0
    header.offsets = lo
    header.scales = np.full(3, 10.0 ** np.ceil(np.log10(max(extent, 1e-6) / 1e9)))  # int32 range
    las = laspy.LasData(header)
    las.x, las.y, las.z = coords[:, 0], coords[:, 1], coords[:, 2]
    if colors16 is not None:
        las.red, las.green, las.blue = colors16[:, 0], colors16[:, 1], colors16[:, 2]
    standard = {d.name: d.dtype for d in las.point_format.dimensions if d.dtype is not None}
    for name, values in kept.items():
        if name in ("x", "y", "z") or (triple is not None and name in triple and colors16 is not None):
            continue
        for column, data in expand(name, values):
            want = standard.get(column)
            if want is not None and column not in ("X", "Y", "Z") and _fits(data, want):
                las[column] = data.astype(want)
            else:
                _add_extra(las, column, data, "kept from the input")
    return las


def _fits(values: np.ndarray, dtype: np.dtype) -> bool:
    if values.dtype.kind == "b":
        return dtype.kind in "iu"
    if np.can_cast(values.dtype, dtype, casting="safe"):
        return True
    if values.dtype.kind in "iu" and dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        return bool(values.min() >= info.min and values.max() <= info.max)
    return False


def _add_extra(las, name: str, values: np.ndarray, description: str) -> str:
    """Add `values` as an extra-bytes dimension under a free name; returns the name used."""
    import laspy

    values = np.asarray(values)
    base = safe_name(name)[:_MAX_NAME - 3]
    taken = set(las.point_format.dimension_names)
    column = free_name(base, taken)
    las.add_extra_dim(laspy.ExtraBytesParams(name=column, type=_extra_type(values),
                                             description=description[:32]))
    las[column] = values.astype(_extra_type(values))
    return column


def _extra_type(values: np.ndarray) -> np.dtype:
    """The smallest extra-bytes type that holds `values` exactly."""
    if values.dtype.kind == "b":
        return np.dtype(np.uint8)
    if values.dtype.kind == "f":
        return np.dtype(np.float64 if values.dtype == np.float64 else np.float32)
    if values.dtype.kind in "iu":
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        for kind in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64):
            info = np.iinfo(kind)
            if info.min <= lo and hi <= info.max:
                return np.dtype(kind)
        return np.dtype(np.uint64)
    raise InputError(f"field {values.dtype} cannot be stored in a LAS file")
