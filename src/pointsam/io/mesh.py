"""Mesh loading, area-weighted surface sampling and transfer of point labels back to faces."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from pointsam.errors import FileFormatError, InputError
from pointsam.io.ply import read_ply
from pointsam.io.pointcloud import PointCloud, coords_dtype

MESH_EXTENSIONS = (".obj", ".glb", ".gltf", ".off", ".stl")


def read_mesh(path: str | Path) -> trimesh.Trimesh:
    """Load a mesh file as one triangle mesh, applying scene-graph transforms; face order kept."""
    path = Path(path)
    geometry = load_geometry(path)
    if not isinstance(geometry, trimesh.Trimesh):
        raise FileFormatError(f"{path}: the file holds points but no mesh faces")
    return geometry


def load_geometry(path: Path) -> trimesh.Trimesh | trimesh.PointCloud:
    """Load a mesh (or, for face-less files, the vertices) from a mesh or PLY file."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext not in (*MESH_EXTENSIONS, ".ply"):
        supported = ", ".join((*MESH_EXTENSIONS, ".ply"))
        raise FileFormatError(f"{path}: unknown mesh extension {ext!r}; supported: {supported}")
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path}: file is empty")
    if ext == ".ply":
        contents = read_ply(path)
        if contents.faces is None:
            return trimesh.PointCloud(np.asarray(contents.xyz, dtype=np.float64))
        return contents.to_mesh()
    loaded = _load_quietly(path)
    if isinstance(loaded, trimesh.Scene):
        if not loaded.geometry:
            raise FileFormatError(f"{path}: the file contains no geometry")
        try:
            # concatenate with scene-graph transforms applied (dump() on trimesh < 4.5)
            merge = getattr(loaded, "to_geometry", None) or (lambda: loaded.dump(concatenate=True))
            loaded = merge()
        except Exception as exc:
            raise FileFormatError(f"{path}: cannot merge the scene's geometry: {exc}") from exc
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces) == 0:
        loaded = trimesh.PointCloud(loaded.vertices)
    if not isinstance(loaded, trimesh.Trimesh | trimesh.PointCloud) or len(loaded.vertices) == 0:
        raise FileFormatError(f"{path}: the file contains no mesh or points")
    return loaded


def _load_quietly(path: Path) -> trimesh.parent.Geometry:
    """Call trimesh.load, silencing its chatter about missing textures, wrapping its errors."""
    ext = path.suffix.lower()
    text = _sniff(path, ext)
    log = logging.getLogger("trimesh")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        if text is None:
            return trimesh.load(path, file_type=ext.lstrip("."), process=False)
        # text that is not UTF-8 (e.g. Latin-1 comments): hand trimesh UTF-8, textures still found
        resolver = trimesh.resolvers.FilePathResolver(str(path))
        return trimesh.load(io.BytesIO(text.encode("utf-8")), file_type=ext.lstrip("."),
                            resolver=resolver, process=False)
    except ImportError as exc:  # trimesh guesses text encodings with optional modules
        raise FileFormatError(f"{path}: cannot read the mesh: its text encoding is not recognised "
                              f"(corrupt {ext} file?)") from exc
    except Exception as exc:
        raise FileFormatError(f"{path}: cannot read the mesh (corrupt {ext} file?): {exc}") from exc
    finally:
        log.setLevel(level)


def _sniff(path: Path, ext: str) -> str | None:
    """Refuse bytes that cannot be a text OBJ/OFF or an STL; returns re-decoded text for non-UTF-8."""
    if ext not in (".obj", ".off", ".stl"):
        return None
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    size = path.stat().st_size
    if ext == ".stl":
        if size >= 84:
            triangles = int.from_bytes(head[80:84], "little")
            if size == 84 + 50 * triangles:
                return None  # binary STL
        if not head.lstrip().lower().startswith(b"solid"):
            raise FileFormatError(
                f"{path}: not a valid STL file: neither binary (its {size:,} bytes do not match "
                "84 + 50 bytes per triangle) nor ASCII (no 'solid' at the start)")
    if b"\x00" in head:
        raise FileFormatError(f"{path}: not a valid {ext} file: it holds binary data, not text")
    data = path.read_bytes()  # trimesh reads it whole too
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        return data.decode("latin-1")  # legacy 8-bit text: every byte is a character


def sample_mesh(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> PointCloud:
    """Sample `n` points area-weighted on `mesh`, with face ids, normals and colours if any."""
    if n <= 0:
        raise InputError(f"the number of mesh samples must be positive, got {n}")
    if len(mesh.faces) == 0:
        raise InputError("cannot sample a mesh with no faces")
    if not np.isfinite(mesh.area) or mesh.area <= 0:
        raise InputError("cannot sample a mesh with zero surface area")
    points, face_index, bary = trimesh.sample.sample_surface(
        mesh, int(n), seed=seed, return_barycentric=True
    )
    face_index = np.asarray(face_index, dtype=np.int64)
    extra = {"normal": np.asarray(mesh.face_normals[face_index], dtype=np.float32)}
    return PointCloud(
        xyz=coords_dtype(points),
        rgb=_sample_colors(mesh, face_index, bary),
        face_index=face_index,
        mesh=mesh,
        extra=extra,
    )


def _sample_colors(
    mesh: trimesh.Trimesh, face_index: np.ndarray, bary: np.ndarray
) -> np.ndarray | None:
    """Colours at the samples from a texture, vertex or face colours; None if the mesh has none."""
    visual = mesh.visual
    try:
        if visual.kind == "texture":
            image = getattr(getattr(visual, "material", None), "image", None)
            uv = getattr(visual, "uv", None)
            if image is not None and uv is not None and len(uv) == len(mesh.vertices):
                tri_uv = np.asarray(uv)[mesh.faces[face_index]]
                uv_samples = np.einsum("ij,ijk->ik", bary, tri_uv)
                colors = trimesh.visual.color.uv_to_interpolated_color(uv_samples, image)
                return np.asarray(colors)[:, :3].astype(np.uint8)
            visual = visual.to_color()
        if visual.kind == "vertex":
            tri_colors = np.asarray(visual.vertex_colors, dtype=np.float64)[mesh.faces[face_index]]
            colors = np.einsum("ij,ijk->ik", bary, tri_colors[:, :, :3])
            return np.clip(np.rint(colors), 0, 255).astype(np.uint8)
        if visual.kind == "face":
            return np.asarray(visual.face_colors)[face_index, :3].astype(np.uint8)
    except Exception:  # a broken texture is not worth failing the whole read for
        return None
    return None


def labels_to_faces(
    mesh: trimesh.Trimesh,
    points: np.ndarray,
    face_index: np.ndarray,
    point_labels: np.ndarray,
) -> np.ndarray:
    """Per-face labels (F,): majority vote of the points on each face, else the nearest point's."""
    points = np.asarray(points)
    face_index = np.asarray(face_index).reshape(-1)
    point_labels = np.asarray(point_labels).reshape(-1)
    num_faces = len(mesh.faces)
    n = len(point_labels)
    if n == 0:
        raise InputError("labels_to_faces needs at least one labelled point")
    if points.shape != (n, 3) or face_index.shape != (n,):
        raise InputError(
            f"points {points.shape}, face_index {face_index.shape} and point_labels {(n,)} "
            "must describe the same number of points"
        )
    if face_index.dtype.kind not in "iu":
        raise InputError(f"face_index must be integers, got dtype {face_index.dtype}")
    if face_index.min() < 0 or face_index.max() >= num_faces:
        raise InputError(f"face_index values must be in [0, {num_faces}) for this mesh")

    values, codes = np.unique(point_labels, return_inverse=True)
    codes = codes.reshape(-1)
    # Count each (face, label) pair, then keep the most frequent label per face
    # (ties go to the smallest label).
    pairs, counts = np.unique(
        face_index.astype(np.int64) * len(values) + codes, return_counts=True
    )
    pair_face, pair_code = np.divmod(pairs, len(values))
    order = np.lexsort((pair_code, -counts, pair_face))
    pair_face, pair_code = pair_face[order], pair_code[order]
    first = np.ones(len(pair_face), dtype=bool)
    first[1:] = pair_face[1:] != pair_face[:-1]

    face_codes = np.full(num_faces, -1, dtype=np.int64)
    face_codes[pair_face[first]] = pair_code[first]
    empty = np.flatnonzero(face_codes < 0)
    if len(empty):
        centroids = mesh.triangles_center[empty]
        _, nearest = cKDTree(np.asarray(points, dtype=np.float64)).query(centroids)
        face_codes[empty] = codes[nearest]
    return values[face_codes]
