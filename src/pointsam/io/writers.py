"""Write point clouds, labels and labelled meshes: atomically, never overwriting by default."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import trimesh
from plyfile import PlyData, PlyElement

from pointsam.errors import FileFormatError, InputError
from pointsam.io.palette import label_colors
from pointsam.io.pointcloud import PointCloud, coords_dtype, rgb_to_uint8
from pointsam.preprocessing import check_xyz
from pointsam.utils.files import atomic_output, current_umask

__all__ = ["atomic_output", "write_labels", "write_mesh_labels", "write_ply"]

_current_umask = current_umask  # old private name, kept for code that imported it

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"x", "y", "z", "red", "green", "blue"}
_PLY_INT_TYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32)
# LAS point formats 0-5 keep only 5 bits of classification; move to the 1.4 equivalent.
_LAS_UPGRADE = {0: 6, 1: 6, 2: 7, 3: 7, 4: 9, 5: 10}


# ------------------------------------------------------------------------------------ helpers


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


def _ply_array(name: str, values: np.ndarray) -> np.ndarray:
    """Cast a field to a standard PLY type: bool→uchar, int64→int32 (if it fits), float→float."""
    if values.dtype.kind == "b":
        return values.astype(np.uint8)
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    if values.dtype.kind in "iu":
        if values.dtype.type in _PLY_INT_TYPES:
            return values
        for kind in (np.int32, np.uint32):
            info = np.iinfo(kind)
            if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
                return values.astype(kind)
        raise InputError(f"field {name!r} has values that do not fit in 32 bits")
    raise InputError(f"field {name!r} must be numeric or boolean, got dtype {values.dtype}")


def _vertex_columns(
    xyz: np.ndarray, rgb: np.ndarray | None, fields: dict[str, np.ndarray] | None
) -> list[tuple[str, np.ndarray]]:
    """Named 1-D columns for a PLY vertex element."""
    n = len(xyz)
    xyz_type = np.float64 if xyz.dtype == np.float64 else np.float32
    columns = [(c, xyz[:, i].astype(xyz_type)) for i, c in enumerate("xyz")]
    if rgb is not None:
        colors = rgb_to_uint8(rgb)
        if len(colors) != n:
            raise InputError(f"rgb has {len(colors)} rows but xyz has {n}")
        columns += [(c, colors[:, i]) for i, c in enumerate(("red", "green", "blue"))]
    for name, values in (fields or {}).items():
        values = np.asarray(values)
        if not _NAME.match(name) or name in _RESERVED:
            raise InputError(f"invalid PLY field name {name!r}")
        if values.shape[:1] != (n,) or values.ndim > 2:
            raise InputError(f"field {name!r} must have shape ({n},) or ({n}, k), "
                             f"got {values.shape}")
        if values.ndim == 1:
            columns.append((name, _ply_array(name, values)))
        elif name == "normal" and values.shape[1] == 3:
            columns += [(c, _ply_array(name, values[:, i])) for i, c in
                        enumerate(("nx", "ny", "nz"))]
        else:
            columns += [(f"{name}_{i}", _ply_array(name, values[:, i]))
                        for i in range(values.shape[1])]
    names = [c for c, _ in columns]
    if len(set(names)) != len(names):
        raise InputError(f"duplicate PLY property names in {names}")
    return columns


def _struct(columns: list[tuple[str, np.ndarray]], n: int) -> np.ndarray:
    out = np.empty(n, dtype=[(name, values.dtype) for name, values in columns])
    for name, values in columns:
        out[name] = values
    return out


# ------------------------------------------------------------------------------------- writers


def write_ply(
    path: str | Path,
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    fields: dict[str, np.ndarray] | None = None,
    binary: bool = True,
    overwrite: bool = False,
) -> None:
    """Write points with optional uchar red/green/blue and scalar fields as a PLY file."""
    xyz = _check_xyz(xyz)
    vertex = _struct(_vertex_columns(xyz, rgb, fields), len(xyz))
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=not binary, byte_order="<")
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
        ply.write(fh)


def write_labels(
    path: str | Path,
    xyz: np.ndarray,
    labels: np.ndarray,
    rgb: np.ndarray | None = None,
    *,
    source: PointCloud | None = None,
    field: str = "label",
    overwrite: bool = False,
) -> None:
    """Write per-point labels as .ply, .npy, .las/.laz (classification) or .txt/.csv/.xyz."""
    path = Path(path)
    xyz = _check_xyz(xyz)
    labels = _check_labels(labels, len(xyz))
    ext = path.suffix.lower()
    if ext == ".ply":
        write_ply(path, xyz, rgb, {field: labels}, overwrite=overwrite)
    elif ext == ".npy":
        out = labels if labels.dtype == bool else _ply_array(field, labels).astype(np.int32)
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
            np.save(fh, out, allow_pickle=False)
    elif ext in (".las", ".laz"):
        las = _labelled_las(xyz, labels, rgb, source)
        with atomic_output(path, overwrite) as tmp:
            las.write(tmp, do_compress=ext == ".laz")
    elif ext in (".txt", ".csv", ".xyz"):
        _write_text_labels(path, xyz, labels, rgb, field, overwrite)
    else:
        raise InputError(
            f"{path}: unknown extension {ext or '(none)'!r} for labels; "
            "use .ply, .npy, .las, .laz, .txt, .csv or .xyz"
        )


def _las_classification(labels: np.ndarray) -> np.ndarray:
    """Labels as LAS classes: -1 becomes 0 ('never classified'), others must be in 0..255."""
    values = labels.astype(np.int64)
    values[values == -1] = 0
    if values.size and (values.min() < 0 or values.max() > 255):
        raise InputError(
            f"LAS classification holds 0..255 (or -1 for unlabelled); labels range from "
            f"{labels.min()} to {labels.max()}: write .ply or .npy instead"
        )
    return values.astype(np.uint8)


def _labelled_las(xyz: np.ndarray, labels: np.ndarray, rgb: np.ndarray | None,
                  source: PointCloud | None):  # -> laspy.LasData
    import laspy

    classes = _las_classification(labels)
    src = None if source is None else source.source
    if src is not None and src.suffix.lower() in (".las", ".laz"):
        try:
            las = laspy.read(src)
        except Exception as exc:
            raise FileFormatError(f"{src}: cannot re-read the source LAS file: {exc}") from exc
        if len(las.points) != len(labels):
            raise InputError(f"{src} has {len(las.points)} points but {len(labels)} labels "
                             "were given")
        if las.point_format.id in _LAS_UPGRADE and classes.size and classes.max() > 31:
            las = laspy.convert(las, point_format_id=_LAS_UPGRADE[las.point_format.id],
                                file_version="1.4")
        las.classification = classes
        return las

    coords = np.asarray(xyz, dtype=np.float64)
    if not np.isfinite(coords).all():
        raise InputError("LAS files cannot store NaN or infinite coordinates")
    header = laspy.LasHeader(point_format=6 if rgb is None else 7, version="1.4")
    lo = coords.min(axis=0) if len(coords) else np.zeros(3)
    extent = float((coords.max(axis=0) - lo).max()) if len(coords) else 0.0
    scale = 10.0 ** np.ceil(np.log10(max(extent, 1e-6) / 1e9))  # int32 range with headroom
    header.offsets = lo
    header.scales = np.full(3, scale)
    las = laspy.LasData(header)
    las.x, las.y, las.z = coords[:, 0], coords[:, 1], coords[:, 2]
    if rgb is not None:
        colors = rgb_to_uint8(rgb).astype(np.uint16) * 257  # 8 → 16 bit, 255 → 65535
        if len(colors) != len(coords):
            raise InputError(f"rgb has {len(colors)} rows but xyz has {len(coords)}")
        las.red, las.green, las.blue = colors[:, 0], colors[:, 1], colors[:, 2]
    las.classification = classes
    return las


def _write_text_labels(path: Path, xyz: np.ndarray, labels: np.ndarray, rgb: np.ndarray | None,
                       field: str, overwrite: bool) -> None:
    digits = "%.17g" if xyz.dtype == np.float64 else "%.9g"
    columns, fmt, names = [xyz.astype(np.float64)], [digits] * 3, ["x", "y", "z"]
    if rgb is not None:
        colors = rgb_to_uint8(rgb)
        if len(colors) != len(xyz):
            raise InputError(f"rgb has {len(colors)} rows but xyz has {len(xyz)}")
        columns.append(colors)
        fmt += ["%d"] * 3
        names += ["red", "green", "blue"]
    columns.append(labels.astype(np.int64)[:, None])
    fmt.append("%d")
    names.append(field)
    sep = "," if path.suffix.lower() == ".csv" else " "
    header = sep.join(names) if sep == "," else ""
    table = np.hstack([c.astype(np.float64) for c in columns])
    with atomic_output(path, overwrite) as tmp:
        np.savetxt(tmp, table, fmt=fmt, delimiter=sep, header=header, comments="")


def write_mesh_labels(
    path: str | Path, mesh: trimesh.Trimesh, face_labels: np.ndarray, overwrite: bool = False
) -> None:
    """Write a mesh with per-face labels: PLY face property `label`, or colours for OBJ/GLB."""
    path = Path(path)
    faces = np.asarray(mesh.faces)
    labels = _check_labels(face_labels, len(faces), "face_labels")
    colors = label_colors(labels)
    ext = path.suffix.lower()
    if ext == ".ply":
        verts = coords_dtype(mesh.vertices)
        vertex = _struct([(c, verts[:, i]) for i, c in enumerate("xyz")], len(verts))
        face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,)), ("label", "i4"),
                                           ("red", "u1"), ("green", "u1"), ("blue", "u1")])
        face["vertex_indices"] = faces
        face["label"] = _ply_array("label", labels).astype(np.int32)
        for i, c in enumerate(("red", "green", "blue")):
            face[c] = colors[:, i]
        elements = [PlyElement.describe(vertex, "vertex"),
                    PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"})]
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
            PlyData(elements, byte_order="<").write(fh)
    elif ext in (".obj", ".glb"):
        # Unmerge vertices so each face keeps its own colour without bleeding.
        flat = trimesh.Trimesh(
            vertices=np.asarray(mesh.vertices)[faces].reshape(-1, 3),
            faces=np.arange(3 * len(faces)).reshape(-1, 3),
            vertex_colors=np.repeat(colors, 3, axis=0),
            process=False,
        )
        data = flat.export(file_type=ext[1:])
        with atomic_output(path, overwrite) as tmp:
            tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    else:
        raise InputError(
            f"{path}: unknown extension {ext!r} for a labelled mesh; use .ply, .obj or .glb"
        )
