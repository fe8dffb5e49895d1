"""Read very large point clouds without holding the file's full records in memory.

`read_large_cloud` keeps only what segmentation needs: coordinates as float32 relative to an
origin (12 bytes/point) and uint8 colours (3 bytes/point). LAS/LAZ are read in chunks (laspy's
chunk iterator), binary PLY and NPY (and Pointcept folders of .npy) are memory-mapped and
copied in chunks; other formats fall back to `read_point_cloud`. The ordinary readers are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError
from pointsam.io.ply import COLOR_NAMES, channels_to_rgb

CHUNK_POINTS = 2_000_000


@dataclass
class LargeCloud:
    """Coordinates `xyz` (N, 3) float32 = file coordinates - `origin` (float64), colours uint8 or None."""

    xyz: np.ndarray
    origin: np.ndarray
    rgb: np.ndarray | None
    source: Path
    meta: dict = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.xyz.shape[0])

    def absolute(self, indices=None) -> np.ndarray:
        """File coordinates (float64) of the given points (all when None)."""
        pts = self.xyz if indices is None else self.xyz[indices]
        return pts.astype(np.float64) + self.origin


def read_large_cloud(path: str | Path, *, chunk_points: int = CHUNK_POINTS,
                     progress: Callable[[str], None] | None = None) -> LargeCloud:
    """Read xyz (+ rgb) of a big LAS/LAZ, binary PLY, NPY or Pointcept folder chunk by chunk."""
    path = Path(path)
    say = progress or (lambda _msg: None)
    if not path.exists():
        raise FileFormatError(f"{path}: no such file")
    ext = path.suffix.lower()
    if path.is_dir():
        cloud = _read_folder(path, chunk_points)
    elif ext in (".las", ".laz"):
        cloud = _read_las(path, chunk_points, say)
    elif ext == ".ply" and _is_binary_ply(path):
        cloud = _read_ply(path, chunk_points)
    elif ext == ".npy":
        cloud = _read_npy(path, chunk_points)
    else:
        from pointsam.io.readers import read_point_cloud

        small = read_point_cloud(path)
        cloud = _from_columns(np.asarray(small.xyz), _as_uint8(small.rgb), path, chunk_points)
    if cloud.num_points == 0:
        raise FileFormatError(f"{path}: the file contains no points")
    cloud.meta.setdefault("format", ext.lstrip(".") or "folder")
    say(f"read {cloud.num_points:,} points from {path.name}")
    return cloud


def _copy_xyz(columns: Callable[[int, int], np.ndarray], n: int, origin: np.ndarray,
              chunk_points: int) -> np.ndarray:
    """Fill an (n, 3) float32 array chunk by chunk with columns(start, stop) - origin."""
    out = np.empty((n, 3), np.float32)
    for start in range(0, n, chunk_points):
        stop = min(n, start + chunk_points)
        out[start:stop] = np.asarray(columns(start, stop), np.float64) - origin
    return out


def _origin(first: np.ndarray) -> np.ndarray:
    """A round origin near the data, so float32 offsets keep their precision (0 for small values)."""
    first = np.asarray(first, np.float64).reshape(-1, 3)
    finite = first[np.isfinite(first).all(axis=1)]
    if finite.size == 0 or np.abs(finite).max() < 1e4:
        return np.zeros(3)
    return np.floor(finite.mean(axis=0) / 100.0) * 100.0


def _from_columns(arr: np.ndarray, rgb: np.ndarray | None, path: Path, chunk_points: int) -> LargeCloud:
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.dtype.kind not in "iuf":
        raise FileFormatError(f"{path}: expected an (N, >=3) numeric array of points, got "
                              f"{arr.dtype} {arr.shape}")
    origin = _origin(arr[: min(len(arr), 10_000), :3])
    xyz = _copy_xyz(lambda a, b: arr[a:b, :3], arr.shape[0], origin, chunk_points)
    return LargeCloud(xyz, origin, rgb, path)


# ---------------------------------------------------------------------------------------- LAS


def _read_las(path: Path, chunk_points: int, say: Callable[[str], None]) -> LargeCloud:
    import laspy

    from pointsam.io.readers import _check_las_header

    _check_las_header(path)
    try:
        with laspy.open(path) as reader:
            header = reader.header
            n = int(header.point_count)
            origin = np.floor(np.asarray(header.mins, np.float64) / 100.0) * 100.0
            names = set(header.point_format.dimension_names)
            has_rgb = {"red", "green", "blue"} <= names
            xyz = np.empty((n, 3), np.float32)
            colours = np.empty((n, 3), np.uint16) if has_rgb else None
            start = 0
            for points in reader.chunk_iterator(chunk_points):
                stop = start + len(points)
                for k, axis in enumerate("xyz"):
                    xyz[start:stop, k] = np.asarray(points[axis], np.float64) - origin[k]
                if has_rgb:
                    for k, c in enumerate(("red", "green", "blue")):
                        colours[start:stop, k] = points[c]
                start = stop
                say(f"read {stop:,} / {n:,} points")
    except Exception as exc:
        raise FileFormatError(f"{path}: not a valid LAS/LAZ file (truncated or corrupt?): "
                              f"{exc or type(exc).__name__}") from exc
    if start != n:
        raise FileFormatError(f"{path}: header promises {n:,} points, the file holds {start:,}")
    rgb = None if colours is None else channels_to_rgb(colours, path)
    return LargeCloud(xyz, origin, rgb, path, {"las_header": header})


# ---------------------------------------------------------------------------------------- PLY


def _is_binary_ply(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return head.startswith(b"ply") and b"format binary" in head


def _read_ply(path: Path, chunk_points: int) -> LargeCloud:
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(path), mmap="r")
        vertex = ply["vertex"].data
    except Exception as exc:
        raise FileFormatError(f"{path}: not a valid binary PLY file: {exc or type(exc).__name__}") from exc
    names = vertex.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise FileFormatError(f"{path}: PLY vertices lack x, y or z")
    n = len(vertex)
    first = np.column_stack([vertex[c][: min(n, 10_000)] for c in "xyz"])
    origin = _origin(first)
    xyz = _copy_xyz(lambda a, b: np.column_stack([vertex[c][a:b] for c in "xyz"]), n, origin, chunk_points)
    rgb = None
    for triple in COLOR_NAMES:
        if set(triple) <= set(names):
            if all(vertex.dtype[c] == np.uint8 for c in triple):
                rgb = np.empty((n, 3), np.uint8)
                for k, c in enumerate(triple):
                    rgb[:, k] = vertex[c]
            else:
                rgb = _as_uint8(channels_to_rgb(np.column_stack([vertex[c] for c in triple]), path))
            break
    return LargeCloud(xyz, origin, rgb, path)


# ---------------------------------------------------------------------------------------- NPY


def _load_mmap(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise FileFormatError(f"{path}: not a valid .npy file: {exc}") from exc


def _read_npy(path: Path, chunk_points: int) -> LargeCloud:
    arr = _load_mmap(path)
    if not isinstance(arr, np.ndarray):
        raise FileFormatError(f"{path}: an .npz archive cannot be memory-mapped; use read_point_cloud")
    if arr.dtype.names:
        if not {"x", "y", "z"} <= set(arr.dtype.names):
            raise FileFormatError(f"{path}: structured array without x, y, z fields")
        n = arr.shape[0]
        origin = _origin(np.column_stack([arr[c][:10_000] for c in "xyz"]))
        xyz = _copy_xyz(lambda a, b: np.column_stack([arr[c][a:b] for c in "xyz"]), n, origin, chunk_points)
        rgb = None
        for triple in COLOR_NAMES:
            if set(triple) <= set(arr.dtype.names):
                rgb = channels_to_rgb(np.column_stack([arr[c] for c in triple]), path)
                break
        return LargeCloud(xyz, origin, _as_uint8(rgb), path)
    rgb = None
    if arr.ndim == 2 and arr.shape[1] >= 6:
        rgb = _as_uint8(channels_to_rgb(np.asarray(arr[:, 3:6]), path))
    return _from_columns(arr, rgb, path, chunk_points)


def _read_folder(path: Path, chunk_points: int) -> LargeCloud:
    coord = path / "coord.npy"
    if not coord.is_file():
        raise FileFormatError(f"{path}: is a directory without coord.npy (Pointcept layout)")
    arr = _load_mmap(coord)
    rgb = None
    if (path / "color.npy").is_file():
        colour = _load_mmap(path / "color.npy")
        if colour.shape != (arr.shape[0], 3):
            raise FileFormatError(f"{path / 'color.npy'}: shape {colour.shape} does not match coord.npy")
        rgb = _as_uint8(channels_to_rgb(np.asarray(colour), path / "color.npy"))
    return _from_columns(arr, rgb, path, chunk_points)


def _as_uint8(rgb: np.ndarray | None) -> np.ndarray | None:
    if rgb is None or rgb.dtype == np.uint8:
        return rgb
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
