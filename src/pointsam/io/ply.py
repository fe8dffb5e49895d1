"""PLY parsing with plyfile: vertices, colours, scalar fields and (optional) polygon faces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from plyfile import PlyData, PlyListProperty

from pointsam.errors import FileFormatError, InputError
from pointsam.preprocessing import colors_to_unit

COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green",
                                                              "diffuse_blue"))
NORMAL_NAMES = ("nx", "ny", "nz")
FACE_LIST_NAMES = ("vertex_indices", "vertex_index")
#: A PLY header longer than this is refused before parsing (real headers are a few KB).
MAX_HEADER_BYTES = 1 << 20


@dataclass
class PlyContents:
    """What a PLY file holds: vertex arrays and, for meshes, triangulated faces."""

    xyz: np.ndarray
    rgb: np.ndarray | None
    extra: dict[str, np.ndarray]
    faces: np.ndarray | None = None  # (F,3) int64 triangles, polygons fan-triangulated
    face_rgb: np.ndarray | None = None
    face_extra: dict[str, np.ndarray] = field(default_factory=dict)
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # every scalar vertex property
    complete: bool = True  # False when the file holds more than `fields` (faces, list properties)
    comments: list[str] = field(default_factory=list)
    obj_info: list[str] = field(default_factory=list)

    def to_mesh(self) -> trimesh.Trimesh:
        """Build a trimesh (face order kept) with vertex or face colours if the file had them."""
        if self.faces is None:
            raise InputError("this PLY file has no faces")
        colors = {}
        if self.rgb is not None:
            colors["vertex_colors"] = _as_uint8(self.rgb)
        elif self.face_rgb is not None:
            colors["face_colors"] = _as_uint8(self.face_rgb)
        return trimesh.Trimesh(
            vertices=np.asarray(self.xyz, dtype=np.float64), faces=self.faces, process=False,
            **colors,
        )


def _as_uint8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def channels_to_rgb(channels: np.ndarray, path: Path) -> np.ndarray:
    """Decode (N,3) colour channels as a file stores them: uint8 for integer data (16-bit scaled
    down) and for floats above 1 (a 0..255 scale), float32 in [0,1] for floats up to 1."""
    if channels.dtype == np.uint8:
        return np.ascontiguousarray(channels)
    if channels.dtype.kind in "iu":
        if channels.size == 0:
            return channels.astype(np.uint8)
        lo, hi = int(channels.min()), int(channels.max())
        if lo >= 0 and hi <= 255:
            return channels.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return (channels >> 8).astype(np.uint8)  # 16-bit colour
        raise FileFormatError(f"{path}: colour values out of range ({lo}..{hi})")
    if channels.size and np.isfinite(channels).all() and channels.min() >= 0 and channels.max() > 1:
        if channels.max() <= 255:  # float channels on the 0..255 scale, as some writers store them
            return np.clip(np.rint(channels), 0, 255).astype(np.uint8)
    try:
        return colors_to_unit(channels)
    except InputError as exc:
        raise FileFormatError(f"{path}: bad colour values: {exc}") from exc


def split_fields(data: np.ndarray, path: Path) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Split a structured array into rgb and extra fields (normals as one (N,3) 'normal')."""
    names = [n for n in data.dtype.names if n not in ("x", "y", "z")]
    rgb = None
    for triple in COLOR_NAMES:
        if all(c in names for c in triple):
            rgb = channels_to_rgb(np.column_stack([data[c] for c in triple]), path)
            names = [n for n in names if n not in triple]
            break
    extra: dict[str, np.ndarray] = {}
    if all(c in names for c in NORMAL_NAMES):
        extra["normal"] = np.column_stack([data[c] for c in NORMAL_NAMES]).astype(np.float32)
        names = [n for n in names if n not in NORMAL_NAMES]
    for name in names:
        column = data[name]
        if column.dtype != object and column.ndim == 1:  # skip list properties
            extra[name] = np.ascontiguousarray(column)
    return rgb, extra


def read_ply(path: Path) -> PlyContents:
    """Parse a PLY file (ascii or binary) into vertex arrays and optional faces."""
    try:
        with open(path, "rb") as fh:
            _check_header(fh.read(MAX_HEADER_BYTES), path)
            fh.seek(0)
            ply = PlyData.read(fh, mmap=False)
    except FileFormatError:
        raise
    except Exception as exc:
        msg = f"{path}: not a valid PLY file (truncated or corrupt?): {exc or type(exc).__name__}"
        raise FileFormatError(msg) from exc
    if "vertex" not in ply:
        raise FileFormatError(f"{path}: PLY file has no 'vertex' element")
    element = ply["vertex"]
    vertex = element.data
    names = vertex.dtype.names or ()
    missing = [c for c in ("x", "y", "z") if c not in names]
    if missing:
        raise FileFormatError(f"{path}: PLY vertices lack the {', '.join(missing)} properties")
    lists = [p.name for p in element.properties if isinstance(p, PlyListProperty)]
    bad = [c for c in ("x", "y", "z") if c in lists]
    if bad:
        raise FileFormatError(f"{path}: PLY vertex property {', '.join(bad)} is a list; x, y and z "
                              "must be single numbers per vertex")
    if len(vertex) == 0:
        raise FileFormatError(f"{path}: PLY file contains no points")
    xyz = np.column_stack([vertex[c] for c in ("x", "y", "z")])
    rgb, extra = split_fields(vertex, path)
    fields = {n: vertex[n] for n in names if n not in lists}
    others = [e.name for e in ply.elements if e.name != "vertex"]
    contents = PlyContents(xyz=xyz, rgb=rgb, extra=extra, fields=fields,
                           complete=not lists and not others, comments=list(ply.comments),
                           obj_info=list(ply.obj_info))
    if "face" in ply and len(ply["face"].data) > 0:
        _read_faces(ply["face"].data, len(xyz), path, contents)
    return contents


_TYPE_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
               "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
               "double": 8, "float64": 8}


def _check_header(head: bytes, path: Path) -> None:
    """Refuse, before parsing, a file that is not PLY, whose header never ends, or whose element
    counts cannot fit in the file (a corrupt or hostile header would make the parser allocate them)."""
    if not head.startswith(b"ply"):
        raise FileFormatError(f"{path}: not a PLY file (it does not start with 'ply')")
    end = head.find(b"end_header")
    if end < 0:
        if len(head) >= MAX_HEADER_BYTES:
            raise FileFormatError(f"{path}: no 'end_header' in the first {MAX_HEADER_BYTES:,} bytes: "
                                  "the PLY header is corrupt (or absurdly long)")
        raise FileFormatError(f"{path}: the PLY header has no 'end_header' line (truncated file?)")
    lines = head[:end].decode("ascii", "replace").splitlines()
    ascii_format = any(ln.split()[:2] == ["format", "ascii"] for ln in lines if ln.strip())
    elements: list[list] = []  # [name, count, min bytes per row]
    for line in lines:
        words = line.split()
        if len(words) == 3 and words[0] == "element":
            try:
                elements.append([words[1], int(words[2]), 0])
            except ValueError as exc:
                raise FileFormatError(f"{path}: bad PLY element line {line.strip()!r}") from exc
        elif words[:1] == ["property"] and elements:
            # ascii: at least "0 " per value; binary: the type's size (a list: its count's size)
            if words[1:2] == ["list"]:
                type_name = words[2] if len(words) > 2 else ""
            else:
                type_name = words[1] if len(words) > 1 else ""
            size = _TYPE_SIZES.get(type_name, 1)
            elements[-1][2] += 2 if ascii_format else size
    available = path.stat().st_size - end
    needed = sum(count * max(row, 1) for _, count, row in elements)
    if any(count < 0 for _, count, _ in elements) or needed > available:
        counts = ", ".join(f"{count:,} {name}" for name, count, _ in elements)
        raise FileFormatError(f"{path}: the PLY header promises {counts} (at least {needed:,} bytes) "
                              f"but the file holds {max(available, 0):,} bytes after the header: "
                              "truncated file or corrupt header")


def _read_faces(data: np.ndarray, num_vertices: int, path: Path, out: PlyContents) -> None:
    """Fill `out.faces` (fan-triangulated, file order kept) and per-face properties."""
    names = data.dtype.names or ()
    list_name = next((n for n in FACE_LIST_NAMES if n in names), None)
    if list_name is None:
        raise FileFormatError(f"{path}: PLY face element has no vertex_indices property")
    raw = data[list_name]
    lengths = np.fromiter((len(f) for f in raw), dtype=np.int64, count=len(raw))
    tris, owner = [], []
    for k in np.unique(lengths):
        if k < 3:
            continue
        idx = np.flatnonzero(lengths == k)
        poly = np.stack([np.asarray(raw[i], dtype=np.int64) for i in idx])
        for j in range(1, k - 1):
            tris.append(poly[:, [0, j, j + 1]])
            owner.append(idx)
    if not tris:
        return
    owner_all = np.concatenate(owner)
    order = np.argsort(owner_all, kind="stable")
    faces = np.concatenate(tris)[order]
    owner_all = owner_all[order]
    if faces.min() < 0 or faces.max() >= num_vertices:
        raise FileFormatError(f"{path}: PLY faces reference vertices that do not exist")
    out.faces = faces
    face_fields = data[[n for n in names if n != list_name]] if len(names) > 1 else None
    if face_fields is not None:
        face_rgb, face_extra = split_fields(face_fields, path)
        out.face_rgb = None if face_rgb is None else face_rgb[owner_all]
        out.face_extra = {k: v[owner_all] for k, v in face_extra.items()}
