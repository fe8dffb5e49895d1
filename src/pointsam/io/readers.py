"""Read point clouds (and sample meshes) from PLY, LAS/LAZ, PCD, NPY/NPZ, text and mesh files."""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh

from pointsam.errors import FileFormatError, InputError
from pointsam.io.mesh import MESH_EXTENSIONS, load_geometry, sample_mesh
from pointsam.io.ply import channels_to_rgb, read_ply, split_fields
from pointsam.io.pointcloud import PointCloud, coords_dtype
from pointsam.preprocessing import check_xyz

TEXT_EXTENSIONS = (".xyz", ".txt", ".pts", ".csv")
XYZ_KEYS = ("xyz", "coord", "points")
RGB_KEYS = ("rgb", "color", "colors")
#: Refuse files whose header promises more points than this (a corrupt or hostile header).
MAX_POINTS = 2**31 - 1
#: An .npz may inflate past MAX_INFLATED_BYTES only up to MAX_INFLATION times its size on disk.
MAX_INFLATED_BYTES = 1 << 30
MAX_INFLATION = 20


def read_point_cloud(
    path: str | Path, *, mesh_samples: int = 100_000, seed: int = 0
) -> PointCloud:
    """Read a point cloud from any supported file, sampling `mesh_samples` points from meshes."""
    path = Path(path)
    if isinstance(mesh_samples, bool) or int(mesh_samples) != mesh_samples or mesh_samples <= 0:
        raise InputError(f"mesh_samples must be a positive integer, got {mesh_samples!r}")
    if path.is_dir():
        cloud = _read_pointcept_dir(path)
    else:
        if not path.exists():
            raise FileFormatError(f"{path}: no such file")
        ext = path.suffix.lower()
        reader = _READERS.get(ext)
        if reader is None:
            supported = ", ".join(sorted(_READERS))
            raise FileFormatError(
                f"{path}: unknown file extension {ext or '(none)'!r}; supported: {supported}"
            )
        if path.stat().st_size == 0:
            raise FileFormatError(f"{path}: file is empty")
        cloud = reader(path, int(mesh_samples), seed)
    if cloud.num_points == 0:
        raise FileFormatError(f"{path}: the file contains no points")
    cloud.source = path
    cloud.meta.setdefault("format", path.suffix.lower().lstrip(".") or "folder")
    cloud.meta.setdefault("complete", False)
    return cloud


def _numeric_fields(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The per-point numeric arrays ((n,) or (n, k)) among `arrays`: what writers copy through."""
    return {k: v for k, v in arrays.items()
            if v.dtype.kind in "biuf" and v.ndim in (1, 2) and v.shape[0] == n}


# ---------------------------------------------------------------------------------------- PLY


def _read_ply_file(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    contents = read_ply(path)
    if contents.faces is not None:
        mesh = contents.to_mesh()
        if mesh.area > 0:
            cloud = sample_mesh(mesh, mesh_samples, seed=seed)
            for name, values in contents.face_extra.items():
                cloud.extra.setdefault(name, values[cloud.face_index])
            return cloud
    meta = {"format": "ply", "complete": contents.complete and contents.faces is None,
            "comments": contents.comments, "obj_info": contents.obj_info}
    return PointCloud(xyz=coords_dtype(contents.xyz), rgb=contents.rgb, extra=contents.extra,
                      fields=contents.fields, meta=meta)


# ------------------------------------------------------------------------------------ LAS/LAZ


def _read_las(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    import laspy

    _check_las_header(path)
    try:
        las = laspy.read(path)
        xyz = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
        names = list(las.point_format.dimension_names)
        channels = None
        if {"red", "green", "blue"} <= set(names):
            channels = np.column_stack([np.asarray(las[c]) for c in ("red", "green", "blue")])
        fields = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
        fields.update({n: np.asarray(las[n]) for n in names if n not in ("X", "Y", "Z")})
        extra = {
            "classification": np.asarray(las.classification, dtype=np.uint8),
            "intensity": np.asarray(las.intensity),
        }
    except Exception as exc:
        msg = f"{path}: not a valid LAS/LAZ file (truncated or corrupt?): {exc or type(exc).__name__}"
        raise FileFormatError(msg) from exc
    rgb = None if channels is None else channels_to_rgb(channels, path)
    meta = {"format": "las", "complete": True, "las_header": las.header}
    return PointCloud(xyz=coords_dtype(xyz, force64=True), rgb=rgb, extra=extra, fields=fields,
                      meta=meta)


def _check_las_header(path: Path) -> None:
    """Refuse a LAS/LAZ header whose point count cannot fit in the file, before reading points."""
    import laspy

    try:
        with laspy.open(path) as reader:
            header = reader.header
            count, size = int(header.point_count), int(header.point_format.size)
            offset = int(header.offset_to_point_data)
    except Exception as exc:
        msg = f"{path}: not a valid LAS/LAZ file (bad header): {exc or type(exc).__name__}"
        raise FileFormatError(msg) from exc
    available = path.stat().st_size - offset
    needed = count * size
    # LAZ compresses point records roughly 5-10x; 100x is beyond any real file
    limit = available * (100 if path.suffix.lower() == ".laz" else 1)
    if count > MAX_POINTS or needed > limit:
        raise FileFormatError(
            f"{path}: the header says {count:,} points ({needed:,} bytes of {size}-byte records) but "
            f"the file holds {max(available, 0):,} bytes of point data: truncated or corrupt header"
        )


# ---------------------------------------------------------------------------------------- PCD


def _read_pcd(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    import pypcd4

    _check_pcd_header(path)
    try:
        data = pypcd4.PointCloud.from_path(path).pc_data
    except Exception as exc:
        msg = f"{path}: not a valid PCD file (truncated or corrupt?): {exc or type(exc).__name__}"
        raise FileFormatError(msg) from exc
    return _cloud_from_struct(data, path, packed_rgb=True)


def _check_pcd_header(path: Path) -> None:
    """Refuse a PCD header whose POINTS count cannot fit in the file, before reading points."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    fields: dict[str, list[str]] = {}
    data_at = None
    pos = 0
    for raw in head.split(b"\n"):
        line = raw.decode("ascii", "replace").strip()
        pos += len(raw) + 1
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        fields[key.upper()] = values
        if key.upper() == "DATA":
            data_at = pos
            break
    if data_at is None:
        raise FileFormatError(f"{path}: not a valid PCD file (no DATA line in its header)")
    try:
        count = int(fields.get("POINTS", ["0"])[0])
        sizes = [int(v) for v in fields.get("SIZE", [])]
        counts = [int(v) for v in fields.get("COUNT", ["1"] * len(sizes))]
    except ValueError as exc:
        raise FileFormatError(f"{path}: bad PCD header: {exc}") from exc
    record = sum(s * c for s, c in zip(sizes, counts, strict=False))
    available = path.stat().st_size - data_at
    kind = (fields["DATA"] or ["?"])[0].lower()
    # ascii needs at least 2 bytes per value ("0 "); binary exactly `record` bytes per point;
    # binary_compressed (LZF) at most ~100x smaller than the raw records
    per_point = {"ascii": 2 * max(sum(counts), 1), "binary": record}.get(kind, record / 100)
    if count < 0 or count > MAX_POINTS or count * per_point > available:
        raise FileFormatError(
            f"{path}: the header says {count:,} points ({kind} data, {record}-byte records) but the "
            f"file holds only {max(available, 0):,} bytes of data: truncated or corrupt header"
        )


def _cloud_from_struct(data: np.ndarray, path: Path, *, packed_rgb: bool = False) -> PointCloud:
    """Point cloud from a structured array with x, y, z fields (plus colours and scalars)."""
    names = data.dtype.names or ()
    missing = [c for c in ("x", "y", "z") if c not in names]
    if missing:
        raise FileFormatError(f"{path}: no {', '.join(missing)} field (fields: {', '.join(names)})")
    xyz = np.column_stack([data[c] for c in ("x", "y", "z")])
    rest = [n for n in names if n not in ("x", "y", "z", "_")]
    packed = None
    if packed_rgb:
        packed = next((n for n in ("rgb", "rgba") if n in rest), None)
        if packed is not None:
            rest.remove(packed)
        normals = ("normal_x", "normal_y", "normal_z")
        if all(n in rest for n in normals):
            # rename to the PLY spelling so split_fields groups them as 'normal'
            renamed = {"normal_x": "nx", "normal_y": "ny", "normal_z": "nz"}
            rest = [renamed.get(n, n) for n in rest]
            data = _rename_fields(data, renamed)
    rgb, extra = split_fields(data[rest], path) if rest else (None, {})
    if packed is not None:
        values = np.ascontiguousarray(data[packed])
        if values.dtype.itemsize != 4:
            raise FileFormatError(f"{path}: packed '{packed}' field is not 4 bytes per point")
        rgb = _decode_packed_rgb(values)
    fields = {n: data[n] for n in names if n != "_" and data[n].ndim == 1 and data[n].dtype.kind in "biuf"}
    return PointCloud(xyz=coords_dtype(xyz), rgb=rgb, extra=extra, fields=fields)


def _rename_fields(data: np.ndarray, renamed: dict[str, str]) -> np.ndarray:
    data = np.array(data)  # own copy: renaming changes the dtype in place
    data.dtype.names = tuple(renamed.get(n, n) for n in data.dtype.names)
    return data


def _decode_packed_rgb(values: np.ndarray) -> np.ndarray:
    """Unpack 0x00RRGGBB colours stored as float32 bits, as uint32, or as integer-valued floats."""
    packed = values.view(np.uint32)
    if values.dtype.kind == "f" and values.size:
        # Genuine bit-packed colours are tiny floats (< 1e-37); integer-valued floats >= 1 mean
        # the writer stored the packed number itself (seen in some ASCII PCD files).
        finite = values[np.isfinite(values)]
        if finite.size == values.size and finite.max() >= 1 and (finite == np.rint(finite)).all():
            packed = values.astype(np.uint32)
    shifts = np.array([16, 8, 0], dtype=np.uint32)
    return ((packed[:, None] >> shifts) & 0xFF).astype(np.uint8)


# ------------------------------------------------------------------------------------ NPY/NPZ


def _read_npy(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    if zipfile.is_zipfile(path):  # an .npz under another name
        _check_npz_sizes(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        msg = f"{path}: not a valid .npy file (corrupt or pickled?): {exc}"
        raise FileFormatError(msg) from exc
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return _cloud_from_npz(loaded, path)
    if loaded.dtype.names:
        return _cloud_from_struct(loaded.reshape(-1), path)
    return _cloud_from_columns(loaded, path)


def _read_npz(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    _check_npz_sizes(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return _cloud_from_npz(npz, path)
    except FileFormatError:
        raise
    except Exception as exc:
        msg = f"{path}: not a valid .npz file (corrupt or pickled?): {exc}"
        raise FileFormatError(msg) from exc


def _check_npz_sizes(path: Path) -> None:
    """Refuse, before inflating anything, an .npz whose arrays would inflate far beyond the file."""
    try:
        with zipfile.ZipFile(path) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileFormatError(f"{path}: not a valid .npz file (corrupt zip?): {exc}") from exc
    size = path.stat().st_size
    if inflated > MAX_INFLATED_BYTES and inflated > MAX_INFLATION * size:
        raise FileFormatError(
            f"{path}: its {size:,} bytes would inflate to {inflated:,} bytes of arrays "
            f"(more than {MAX_INFLATION}x and {MAX_INFLATED_BYTES:,} bytes): refused as a likely "
            "zip bomb; save the arrays uncompressed (np.savez) if they are real"
        )


def _cloud_from_npz(npz: np.lib.npyio.NpzFile, path: Path) -> PointCloud:
    keys = list(npz.files)
    xyz_key = next((k for k in XYZ_KEYS if k in keys), None)
    if xyz_key is None:
        raise FileFormatError(
            f"{path}: no point array; expected one of the keys {', '.join(XYZ_KEYS)} "
            f"(found: {', '.join(keys) or 'none'})"
        )
    xyz = _check_xyz(npz[xyz_key], path, xyz_key)
    rgb_key = next((k for k in RGB_KEYS if k in keys), None)
    rgb = None if rgb_key is None else _rgb_array(npz[rgb_key], len(xyz), path, rgb_key)
    extra = {}
    for key in keys:
        if key not in (xyz_key, rgb_key):
            value = npz[key]
            if value.ndim >= 1 and value.shape[0] == len(xyz):
                extra[key] = value
    return PointCloud(xyz=coords_dtype(xyz), rgb=rgb, extra=extra,
                      fields=_numeric_fields(extra, len(xyz)))


def _read_pointcept_dir(path: Path) -> PointCloud:
    """A Pointcept-style scene folder: coord.npy, optional color.npy, normal.npy and labels."""
    coord = path / "coord.npy"
    if not coord.is_file():
        raise FileFormatError(f"{path}: is a directory without coord.npy (Pointcept layout)")
    arrays = {}
    for file in sorted(path.glob("*.npy")):
        try:
            arrays[file.stem] = np.load(file, allow_pickle=False)
        except Exception as exc:
            raise FileFormatError(f"{file}: not a valid .npy file: {exc}") from exc
    xyz = _check_xyz(arrays.pop("coord"), coord, "coord")
    color = arrays.pop("color", None)
    rgb = None if color is None else _rgb_array(color, len(xyz), path / "color.npy", "color")
    extra = {k: v for k, v in arrays.items() if v.ndim >= 1 and v.shape[0] == len(xyz)}
    return PointCloud(xyz=coords_dtype(xyz), rgb=rgb, extra=extra,
                      fields=_numeric_fields(extra, len(xyz)))


def _check_xyz(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """`preprocessing.check_xyz` (shape and dtype; NaN points allowed in files) as a file error."""
    try:
        return check_xyz(arr, what, finite=False)
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc


def _rgb_array(arr: np.ndarray, n: int, path: Path, what: str) -> np.ndarray:
    if arr.shape != (n, 3) or arr.dtype.kind not in "iuf":
        raise FileFormatError(f"{path}: '{what}' must be a numeric ({n}, 3) array, got "
                              f"{arr.dtype} {arr.shape}")
    return channels_to_rgb(arr, path)


# --------------------------------------------------------------------------------------- text


def _read_text(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    try:
        with open(path, encoding="utf-8") as fh:
            head = [line for _, line in zip(range(50), fh, strict=False)]
    except (UnicodeDecodeError, OSError) as exc:
        raise FileFormatError(f"{path}: not a readable text file: {exc}") from exc
    data_lines = [(i, ln.strip()) for i, ln in enumerate(head) if ln.strip()]
    data_lines = [(i, ln) for i, ln in data_lines if not ln.startswith(("#", "//"))]
    if not data_lines:
        raise FileFormatError(f"{path}: the file contains no points")
    first_index, first = data_lines[0]
    delimiter = "," if "," in first else None
    tokens = first.split(delimiter)
    skip = 0
    if not all(_is_number(t) for t in tokens):
        skip = first_index + 1  # a header line
    elif len(tokens) == 1 and len(data_lines) > 1:
        skip = first_index + 1  # a point count, as in Leica .pts files
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            arr = np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2,
                             comments=("#", "//"), dtype=np.float64, encoding="utf-8")
    except Exception as exc:
        reason = str(exc).split("; use `usecols`")[0]  # numpy's hint does not apply here
        raise FileFormatError(f"{path}: cannot parse the numeric text: {reason}") from exc
    if arr.size == 0:
        raise FileFormatError(f"{path}: the file contains no points")
    if path.suffix.lower() == ".pts" and arr.shape[1] == 7:  # x y z intensity r g b
        cloud = _cloud_from_columns(np.delete(arr, 3, axis=1), path)
        cloud.extra["intensity"] = arr[:, 3]
    else:
        cloud = _cloud_from_columns(arr, path)
    cloud.fields = _numeric_fields(cloud.extra, cloud.num_points)
    return cloud


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _cloud_from_columns(arr: np.ndarray, path: Path) -> PointCloud:
    """Columns x y z [r g b] [more...]; columns past xyz(rgb) go to extra['columns']."""
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype.kind not in "iuf":
        raise FileFormatError(f"{path}: expected a numeric (N, 3+) array of x y z [r g b] "
                              f"columns, got {arr.dtype} with shape {arr.shape}")
    xyz = arr[:, :3]
    rgb = None
    extra = {}
    if arr.shape[1] >= 6:
        rgb = _columns_to_rgb(arr[:, 3:6], path)
        if arr.shape[1] > 6:
            extra["columns"] = arr[:, 6:]
    elif arr.shape[1] > 3:
        extra["columns"] = arr[:, 3:]
    return PointCloud(xyz=coords_dtype(xyz), rgb=rgb, extra=extra,
                      fields=_numeric_fields(extra, len(xyz)))


def _columns_to_rgb(cols: np.ndarray, path: Path) -> np.ndarray:
    """Columns 4-6 as colours: all in [0,1] → float32, else 0..255 → uint8."""
    if cols.dtype == np.uint8:
        return np.ascontiguousarray(cols)
    if cols.size and np.isfinite(cols).all():
        lo, hi = float(cols.min()), float(cols.max())
        if lo >= 0 and hi <= 1 and cols.dtype.kind == "f":
            return cols.astype(np.float32)
        if lo >= 0 and hi <= 255:
            return np.rint(cols).astype(np.uint8)
    else:
        lo, hi = float(np.nanmin(cols)), float(np.nanmax(cols))
    raise FileFormatError(f"{path}: columns 4-6 must be colours in [0, 1] or [0, 255]; found "
                          f"values from {lo:g} to {hi:g}")


# -------------------------------------------------------------------------------------- meshes


def _read_mesh_file(path: Path, mesh_samples: int, seed: int) -> PointCloud:
    geometry = load_geometry(path)
    if isinstance(geometry, trimesh.PointCloud):
        colors = geometry.colors if len(geometry.colors) == len(geometry.vertices) else None
        rgb = None if colors is None or not len(colors) else np.asarray(colors)[:, :3]
        return PointCloud(xyz=coords_dtype(geometry.vertices), rgb=rgb)
    if geometry.area > 0:
        return sample_mesh(geometry, mesh_samples, seed=seed)
    return PointCloud(xyz=coords_dtype(geometry.vertices))  # zero area: keep the vertices


_Reader = Callable[[Path, int, int], PointCloud]
_READERS: dict[str, _Reader] = {
    ".ply": _read_ply_file,
    ".las": _read_las,
    ".laz": _read_las,
    ".pcd": _read_pcd,
    ".npy": _read_npy,
    ".npz": _read_npz,
    **dict.fromkeys(TEXT_EXTENSIONS, _read_text),
    **dict.fromkeys(MESH_EXTENSIONS, _read_mesh_file),
}
