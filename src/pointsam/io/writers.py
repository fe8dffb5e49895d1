"""Write point clouds and labels, atomically, never overwriting by default, keeping the input's fields.

Given `source=` (the `PointCloud` read from the input), every field of the input is written too,
under its own name and type (PLY properties, LAS dimensions incl. classification, CSV columns);
a new field whose name is taken gets a free one (`mask_1`, ...), never replacing the user's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from pointsam.errors import InputError
from pointsam.io.fields import (
    Columns,
    add_new,
    expand,
    free_name,
    has_colors,
    kept_xyz,
    ply_type,
    safe_name,
    source_fields,
    struct,
)
from pointsam.io.las import write_las_labels
from pointsam.io.mesh_writer import MESH_SUFFIXES, legend_path, write_mesh_labels
from pointsam.io.pointcloud import PointCloud
from pointsam.preprocessing import check_xyz, rgb_to_uint8
from pointsam.utils.files import atomic_output, check_output_path, current_umask

__all__ = [
    "LABEL_SUFFIXES",
    "MESH_SUFFIXES",
    "atomic_output",
    "check_output",
    "legend_path",
    "refuse_lossy_overwrite",
    "write_labels",
    "write_mesh_labels",
    "write_ply",
]

_current_umask = current_umask  # old private name, kept for code that imported it

#: Extensions `write_labels` writes.
LABEL_SUFFIXES = (".ply", ".npy", ".las", ".laz", ".txt", ".csv", ".xyz")
# Outputs that keep every field of an input of the same format, so may replace the input itself.
_LOSSLESS = {".ply": "ply", ".las": "las", ".laz": "las"}


def _check_xyz(xyz: np.ndarray) -> np.ndarray:
    """`preprocessing.check_xyz` for writers: NaN points may be written where the format allows."""
    return check_xyz(xyz, finite=False)


def _check_labels(labels: np.ndarray, n: int, what: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise InputError(f"{what} must have shape ({n},), got {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise InputError(f"{what} must be integers or booleans, got dtype {labels.dtype}")
    return labels


# ------------------------------------------------------------------------------- early checks


def check_output(
    path: str | Path,
    overwrite: bool = False,
    *,
    kind: str = "labels",
    source: PointCloud | None = None,
) -> Path:
    """Say before any compute whether `write_labels` (kind="labels") or `write_mesh_labels`
    (kind="mesh") can write `path`: extension, existing file, folder, and the input itself.

    Writing over the input (`path` is `source.source`) is refused unless the output keeps every
    field the input holds (same format, a point cloud read whole: PLY without faces, LAS/LAZ).
    """
    suffixes = {"labels": LABEL_SUFFIXES, "mesh": MESH_SUFFIXES}.get(kind)
    if suffixes is None:
        raise InputError(f"kind must be 'labels' or 'mesh', got {kind!r}")
    if Path(path).suffix.lower() == ".gltf":
        raise InputError(f"{path}: .gltf output is not written (it needs side files); "
                         "use .glb, the one-file glTF, or .obj / .ply")
    path = check_output_path(path, overwrite, suffixes=suffixes)
    if kind == "mesh" and path.suffix.lower() in MESH_SUFFIXES:
        check_output_path(legend_path(path), overwrite)
    refuse_lossy_overwrite(path, source, kind)
    return path


def refuse_lossy_overwrite(path: str | Path, source: PointCloud | None, kind: str = "labels") -> None:
    """Raise InputError if `path` is the source's own file and writing it would lose any of its data."""
    path = Path(path)
    src = None if source is None else source.source
    if src is None or not path.exists() or not src.exists() or not os.path.samefile(path, src):
        return
    fmt = _LOSSLESS.get(path.suffix.lower())
    keeps_all = (kind == "labels" and fmt is not None and source.meta.get("format") == fmt
                 and bool(source.meta.get("complete")) and source.face_index is None)
    if not keeps_all:
        raise InputError(
            f"{path} is the input file: writing there would lose what a {path.suffix} output "
            "cannot hold (mesh faces, other fields or elements); choose another --out"
        )


# ------------------------------------------------------------------------------------ points


def _point_columns(
    xyz: np.ndarray, rgb: np.ndarray | None, fields: dict[str, np.ndarray] | None,
    source: PointCloud | None,
) -> tuple[Columns, dict[str, str]]:
    """Columns for a point file: x, y, z, the source's fields, colours, then the new fields."""
    n = len(xyz)
    kept = source_fields(source, n)
    columns = kept_xyz(xyz, kept)
    taken = {c for c, _ in columns}
    for name, values in kept.items():
        if name in ("x", "y", "z"):
            continue
        for column, data in expand(safe_name(name), values):
            column = free_name(column, taken)
            columns.append((column, ply_type(name, data)))
            taken.add(column)
    if rgb is not None and not has_colors(taken):
        colors = rgb_to_uint8(rgb)
        if len(colors) != n:
            raise InputError(f"rgb has {len(colors)} rows but xyz has {n}")
        for i, c in enumerate(("red", "green", "blue")):
            column = free_name(c, taken)
            columns.append((column, colors[:, i]))
            taken.add(column)
    return columns, add_new(columns, fields, n)


def write_ply(
    path: str | Path,
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    fields: dict[str, np.ndarray] | None = None,
    binary: bool = True,
    overwrite: bool = False,
    *,
    source: PointCloud | None = None,
) -> dict[str, str]:
    """Write points, uchar red/green/blue, `fields` and (with `source`) every input field as PLY.

    The input's own colour properties, when it has them, are written as they were instead of `rgb`.
    Returns {field name asked: property name written} (a taken name gets `_1`, `_2`...).
    """
    xyz = _check_xyz(xyz)
    refuse_lossy_overwrite(path, source)
    columns, written = _point_columns(xyz, rgb, fields, source)
    vertex = struct(columns, len(xyz))
    meta = {} if source is None or not source.fields else source.meta
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=not binary, byte_order="<",
                  comments=list(meta.get("comments", [])), obj_info=list(meta.get("obj_info", [])))
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
        ply.write(fh)
    return written


def write_labels(
    path: str | Path,
    xyz: np.ndarray,
    labels: np.ndarray,
    rgb: np.ndarray | None = None,
    *,
    source: PointCloud | None = None,
    field: str = "label",
    overwrite: bool = False,
    classification_value: int | None = None,
    classification_from_labels: bool = False,
    npy_points: bool | None = None,
) -> str:
    """Write per-point labels; with `source`, every field of the input is kept. By extension:

    - .ply: the input's properties plus `field` (bool → uchar, ints → int32);
    - .las/.laz: the input's dimensions plus `field` as an extra-bytes dimension; classification is
      changed only by `classification_value` (class of the points whose label is 1) or
      `classification_from_labels` (each point's label, -1 → 0);
    - .npy: the labels, bool (N,) for a bool mask, else int32 (N,); with `npy_points` (default: when
      `source` was sampled from a mesh) a structured (N,) array x, y, z[, face], `field`;
    - .txt/.xyz/.csv: columns x y z [red green blue] [input fields] `field` (.csv with a header).

    Returns the name the labels were written under (`field`, or `field_1`... if the input had one).
    """
    path = Path(path)
    xyz = _check_xyz(xyz)
    labels = _check_labels(labels, len(xyz))
    refuse_lossy_overwrite(path, source)
    ext = path.suffix.lower()
    if ext not in LABEL_SUFFIXES:
        raise InputError(f"{path}: unknown extension {ext or '(none)'!r} for labels; "
                         f"use {', '.join(LABEL_SUFFIXES)}")
    if (classification_value is not None or classification_from_labels) and ext not in (".las", ".laz"):
        raise InputError("classification_value / classification_from_labels need a .las or .laz output")
    if ext == ".ply":
        return write_ply(path, xyz, rgb, {field: labels}, overwrite=overwrite, source=source)[field]
    if ext == ".npy":
        return _write_npy(path, xyz, labels, source, field, npy_points, overwrite)
    if ext in (".las", ".laz"):
        return write_las_labels(path, xyz, labels, rgb, source, field, overwrite,
                                classification_value, classification_from_labels)
    return _write_text_labels(path, xyz, labels, rgb, source, field, overwrite)


def _npy_labels(labels: np.ndarray) -> np.ndarray:
    if labels.dtype == bool:
        return labels
    return ply_type("labels", labels).astype(np.int32)


def _write_npy(path: Path, xyz: np.ndarray, labels: np.ndarray, source: PointCloud | None,
               field: str, points: bool | None, overwrite: bool) -> str:
    face_index = None if source is None else source.face_index
    if points is None:
        points = face_index is not None
    out = _npy_labels(labels)
    if points:
        columns = [(c, xyz[:, i]) for i, c in enumerate("xyz")]
        if face_index is not None and len(face_index) == len(xyz):
            columns.append(("face", np.asarray(face_index, dtype=np.int64)))
        field = free_name(safe_name(field), {c for c, _ in columns})
        out = struct([*columns, (field, out)], len(xyz))
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out, allow_pickle=False)
    return field


def _write_text_labels(path: Path, xyz: np.ndarray, labels: np.ndarray, rgb: np.ndarray | None,
                       source: PointCloud | None, field: str, overwrite: bool) -> str:
    columns, written = _point_columns(xyz, rgb, {field: labels.astype(np.int64)}, source)
    fmt = []
    for _, values in columns:
        kind = values.dtype.kind
        fmt.append("%d" if kind in "biu" else "%.17g" if values.dtype == np.float64 else "%.9g")
    sep = "," if path.suffix.lower() == ".csv" else " "
    header = sep.join(c for c, _ in columns) if sep == "," else ""
    table = np.column_stack([v.astype(np.float64) for _, v in columns])
    with atomic_output(path, overwrite) as tmp:
        np.savetxt(tmp, table, fmt=fmt, delimiter=sep, header=header, comments="")
    return written[field]
