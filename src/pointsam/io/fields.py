"""Per-point columns for writers: the input's fields kept as they were, new fields under free names."""

from __future__ import annotations

import re

import numpy as np

from pointsam.errors import InputError
from pointsam.io.pointcloud import PointCloud

COLOR_TRIPLES = (("red", "green", "blue"), ("r", "g", "b"),
                 ("diffuse_red", "diffuse_green", "diffuse_blue"))
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_]")
_PLY_INT_TYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32)
_EXACT_IN_FLOAT64 = 2**53

Columns = list[tuple[str, np.ndarray]]


def source_fields(source: PointCloud | None, n: int) -> dict[str, np.ndarray]:
    """The source's per-point fields when they describe these `n` points; an error if not."""
    if source is None or not source.fields:
        return {}
    counts = {len(v) for v in source.fields.values()}
    if counts != {n}:
        raise InputError(
            f"source has fields for {sorted(counts)} points but {n} points are being written; "
            "pass source=None to write without the input's fields"
        )
    return source.fields


def kept_xyz(xyz: np.ndarray, kept: dict[str, np.ndarray]) -> Columns:
    """x, y, z columns: the source's own (exact dtype and values) when `xyz` are those points."""
    if all(c in kept for c in "xyz"):
        original = [np.asarray(kept[c]) for c in "xyz"]
        if all(np.array_equal(o.astype(xyz.dtype), xyz[:, i], equal_nan=True)
               for i, o in enumerate(original)):
            return list(zip("xyz", original, strict=True))
    xyz_type = np.float64 if xyz.dtype == np.float64 else np.float32
    return [(c, xyz[:, i].astype(xyz_type)) for i, c in enumerate("xyz")]


def has_colors(names) -> bool:
    """Whether the column names include a full colour triple."""
    return any(all(c in names for c in triple) for triple in COLOR_TRIPLES)


def safe_name(name: str) -> str:
    """A name usable as a PLY property: letters, digits and underscores, not starting with a digit."""
    clean = _BAD_CHARS.sub("_", str(name).strip()) or "field"
    return clean if not clean[0].isdigit() else f"f_{clean}"


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or `name_1`, `name_2`, ... whichever is not yet taken (case-insensitive)."""
    lower = {t.lower() for t in taken}
    if name.lower() not in lower:
        return name
    k = 1
    while f"{name}_{k}".lower() in lower:
        k += 1
    return f"{name}_{k}"


def expand(name: str, values: np.ndarray) -> Columns:
    """1-D columns for a (N,) or (N, k) field: 'normal' (N, 3) becomes nx, ny, nz, others name_i."""
    values = np.asarray(values)
    if values.ndim == 1:
        return [(name, values)]
    if values.ndim != 2:
        raise InputError(f"field {name!r} must have shape (N,) or (N, k), got {values.shape}")
    if name == "normal" and values.shape[1] == 3:
        return [(c, values[:, i]) for i, c in enumerate(("nx", "ny", "nz"))]
    return [(f"{name}_{i}", values[:, i]) for i in range(values.shape[1])]


def ply_type(name: str, values: np.ndarray) -> np.ndarray:
    """A column in a PLY type: bool→uchar, float16→float32, 64-bit ints→32 bits or exact doubles."""
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind == "b":
        return values.astype(np.uint8)
    if kind == "f":
        return values if values.dtype in (np.float32, np.float64) else values.astype(np.float32)
    if kind in "iu":
        if values.dtype.type in _PLY_INT_TYPES:
            return values
        for int_type in (np.int32, np.uint32):
            info = np.iinfo(int_type)
            if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
                return values.astype(int_type)
        if np.abs(values).max() < _EXACT_IN_FLOAT64:
            return values.astype(np.float64)  # PLY has no 64-bit integers; doubles hold these exactly
        raise InputError(f"field {name!r} has values that do not fit in a PLY property")
    raise InputError(f"field {name!r} must be numeric or boolean, got dtype {values.dtype}")


def add_new(columns: Columns, fields: dict[str, np.ndarray] | None, n: int) -> dict[str, str]:
    """Append new fields under names no existing column uses; returns {asked name: written name}."""
    taken = {c for c, _ in columns}
    written: dict[str, str] = {}
    for name, values in (fields or {}).items():
        values = np.asarray(values)
        if values.shape[:1] != (n,):
            raise InputError(f"field {name!r} must have {n} rows (one per point), got {values.shape}")
        base = free_name(safe_name(name), taken)
        for column, data in expand(base, values):
            column = free_name(column, taken)
            columns.append((column, ply_type(name, data)))
            taken.add(column)
        written[name] = base
    return written


def struct(columns: Columns, n: int) -> np.ndarray:
    """A structured array with one field per column, in order."""
    names = [c for c, _ in columns]
    if len(set(names)) != len(names):
        raise InputError(f"duplicate field names in {names}")
    out = np.empty(n, dtype=[(c, v.dtype) for c, v in columns])
    for c, v in columns:
        out[c] = v
    return out
