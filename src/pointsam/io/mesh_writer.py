"""Labelled meshes: numeric per-face labels in every format, palette colours, and a JSON legend.

- PLY: a `label` face property (int32) plus red/green/blue face colours.
- OBJ: faces in their original order, grouped with `g label_K` at each change of label; per-face
  colours on unshared vertices (`v x y z r g b`). No `usemtl`: materials would make readers
  (trimesh, hence pointsam) split and reorder the faces.
- GLB: one primitive on unshared vertices with colours and a `_LABEL` vertex attribute (the face's
  label, float32, equal on a face's three corners); the legend is also in the mesh's `extras`.
- The legend `NAME.legend.json` beside the mesh: each label, its colour and its face count.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import trimesh
from plyfile import PlyData, PlyElement

from pointsam.errors import InputError
from pointsam.io.fields import struct
from pointsam.io.palette import label_colors
from pointsam.io.pointcloud import coords_dtype
from pointsam.utils.files import atomic_output

MESH_SUFFIXES = (".ply", ".obj", ".glb")
_EXACT_IN_FLOAT32 = 2**24


def legend_path(path: str | Path) -> Path:
    """Where the legend of a labelled mesh goes: `ball.obj` -> `ball.legend.json`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.legend.json")


def mesh_legend(face_labels: np.ndarray) -> dict:
    """The legend: for each label, its group name, palette colour and number of faces."""
    values, counts = np.unique(face_labels, return_counts=True)
    colors = label_colors(values)
    return {"unlabelled": -1, "labels": [
        {"label": int(v), "name": _group(v), "color": [int(c) for c in rgb], "faces": int(n)}
        for v, n, rgb in zip(values, counts, colors, strict=True)]}


def write_mesh_labels(
    path: str | Path, mesh: trimesh.Trimesh, face_labels: np.ndarray, overwrite: bool = False,
    *, legend: bool = True, source_path: str | Path | None = None,
) -> Path | None:
    """Write a mesh with numeric per-face labels (.ply, .obj or .glb, see the module docstring).

    Also writes the JSON legend beside it unless `legend=False`; returns the legend's path.
    `source_path`, the mesh's own file, is never overwritten (it may hold textures and more).
    """
    path = Path(path)
    if source_path is not None and path.exists() and Path(source_path).exists() and \
            os.path.samefile(path, source_path):
        raise InputError(f"{path} is the input mesh: writing there would lose its materials and "
                         "anything else a labelled mesh does not hold; choose another --out")
    faces = np.asarray(mesh.faces)
    labels = np.asarray(face_labels)
    if labels.ndim != 1 or labels.shape[0] != len(faces):
        raise InputError(f"face_labels must have shape ({len(faces)},), got {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise InputError(f"face_labels must be integers or booleans, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    ext = path.suffix.lower()
    writers = {".ply": _ply_bytes, ".obj": _obj_bytes, ".glb": _glb_bytes}
    if ext not in writers:
        raise InputError(f"{path}: unknown extension {ext or '(none)'!r} for a labelled mesh; use "
                         f"{', '.join(MESH_SUFFIXES)} (.gltf: write .glb, the one-file glTF)")
    side = legend_path(path) if legend else None
    if side is not None and side.exists() and not overwrite:
        raise FileExistsError(f"{side} already exists; pass overwrite=True (--overwrite on the "
                              "command line) to replace it")
    doc = mesh_legend(labels)
    data = writers[ext](mesh, labels, doc)
    with atomic_output(path, overwrite) as tmp:
        tmp.write_bytes(data)
    if side is not None:
        doc = {"mesh": path.name, **doc}
        with atomic_output(side, overwrite=True) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return side


def _group(label: int) -> str:
    return f"label_{int(label)}" if label >= 0 else f"unlabelled_{-int(label)}"


def _ply_bytes(mesh: trimesh.Trimesh, labels: np.ndarray, doc: dict) -> bytes:
    verts = coords_dtype(mesh.vertices)
    vertex = struct([(c, verts[:, i]) for i, c in enumerate("xyz")], len(verts))
    faces = np.asarray(mesh.faces)
    colors = label_colors(labels)
    face = np.empty(len(faces), dtype=[("vertex_indices", "i4", (3,)), ("label", "i4"),
                                       ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    face["vertex_indices"] = faces
    if labels.size and (labels.min() < -(2**31) or labels.max() >= 2**31):
        raise InputError("face labels do not fit in 32 bits")
    face["label"] = labels.astype(np.int32)
    for i, c in enumerate(("red", "green", "blue")):
        face[c] = colors[:, i]
    elements = [PlyElement.describe(vertex, "vertex"),
                PlyElement.describe(face, "face", len_types={"vertex_indices": "u1"})]
    buffer = io.BytesIO()
    PlyData(elements, byte_order="<").write(buffer)
    return buffer.getvalue()


def _obj_bytes(mesh: trimesh.Trimesh, labels: np.ndarray, doc: dict) -> bytes:
    faces = np.asarray(mesh.faces)
    corners = np.asarray(mesh.vertices, dtype=np.float64)[faces].reshape(-1, 3)
    colors = np.repeat(label_colors(labels), 3, axis=0) / 255.0
    lines = ["# pointsam labelled mesh: faces grouped by label (g label_K); "
             "colours per face; legend in the .legend.json beside this file"]
    lines += [f"v {x!r} {y!r} {z!r} {r:.6g} {g:.6g} {b:.6g}"
              for (x, y, z), (r, g, b) in zip(corners.tolist(), colors.tolist(), strict=True)]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]) if len(labels) else []
    ends = list(starts[1:]) + [len(labels)]
    for start, end in zip(starts, ends, strict=True):
        name = _group(labels[start])
        lines.append(f"g {name}")
        lines += [f"f {3 * k + 1} {3 * k + 2} {3 * k + 3}" for k in range(start, end)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _glb_bytes(mesh: trimesh.Trimesh, labels: np.ndarray, doc: dict) -> bytes:
    if labels.size and np.abs(labels).max() >= _EXACT_IN_FLOAT32:
        raise InputError("face labels beyond 2**24 cannot be stored exactly in a GLB attribute")
    faces = np.asarray(mesh.faces)
    flat = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices)[faces].reshape(-1, 3),
        faces=np.arange(3 * len(faces)).reshape(-1, 3),
        vertex_colors=np.repeat(label_colors(labels), 3, axis=0),
        process=False,
    )
    flat.vertex_attributes["_LABEL"] = np.repeat(labels, 3).astype(np.float32)
    flat.metadata["pointsam_labels"] = doc
    return flat.export(file_type="glb")
