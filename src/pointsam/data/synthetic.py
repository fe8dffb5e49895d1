"""Procedural part-labelled shapes: random assemblies of primitives with a part hierarchy.

Each shape is a chain/tree of 2-8 primitives (box, cylinder, sphere, cone, capsule, torus), each attached to
the surface of an earlier part. Masks: every part (level 2), groups of connected parts (level 1) and the whole
shape (level 0), the way PartNet's hierarchies give one point several masks. They complement the small real
part datasets when training a model from scratch (generic "this geometric piece" segmentation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from pointsam.data.dataset import DatasetWriter, LabelledCloud
from pointsam.errors import InputError

__all__ = ["random_shape", "write_synthetic_dataset"]

PRIMITIVES = ("box", "cylinder", "sphere", "cone", "capsule", "torus")


def _primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    s = rng.uniform(0.15, 1.0, size=3)
    if kind == "box":
        return trimesh.creation.box(extents=s)
    if kind == "cylinder":
        return trimesh.creation.cylinder(radius=s[0] / 2, height=s[1] * 1.5, sections=24)
    if kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
        mesh.apply_scale(s)
        return mesh
    if kind == "cone":
        return trimesh.creation.cone(radius=s[0] / 2, height=s[1] * 1.5, sections=24)
    if kind == "capsule":
        return trimesh.creation.capsule(height=s[1], radius=s[0] / 3, count=[12, 12])
    major = s[0] / 2 + 0.05
    return trimesh.creation.torus(major_radius=major, minor_radius=min(s[1], 0.6) * major * 0.35,
                                  major_sections=24, minor_sections=12)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return trimesh.transformations.quaternion_matrix(q)


def random_shape(rng: np.random.Generator, num_points: int = 8192, color_prob: float = 0.5,
                 name: str = "") -> LabelledCloud:
    """One random assembly of primitives sampled to `num_points` points, with part/group/whole masks."""
    if num_points < 64:
        raise InputError(f"num_points must be >= 64, got {num_points}")
    n_parts = int(rng.integers(2, 9))
    parts: list[trimesh.Trimesh] = []
    parents: list[int] = []
    for i in range(n_parts):
        mesh = _primitive(str(rng.choice(PRIMITIVES)), rng)
        mesh.apply_transform(_random_rotation(rng))
        if i == 0:
            parents.append(-1)
        else:
            parent = int(rng.integers(0, i))
            anchor, _ = trimesh.sample.sample_surface(parts[parent], 1, seed=int(rng.integers(1 << 31)))
            direction = anchor[0] - parts[parent].centroid
            direction /= max(np.linalg.norm(direction), 1e-9)
            # place the new part touching the anchor, pushed outwards by part of its own extent
            depth = rng.uniform(0.2, 0.5) * float(np.min(mesh.extents))
            far = mesh.vertices @ -direction
            offset = anchor[0] - mesh.centroid + direction * (far.max() - mesh.centroid @ -direction - depth)
            mesh.apply_translation(offset)
            parents.append(parent)
        parts.append(mesh)
    areas = np.array([m.area for m in parts])
    counts = np.maximum(16, np.round(areas / areas.sum() * num_points).astype(int))
    counts[np.argmax(counts)] -= counts.sum() - num_points
    xyz, labels = [], []
    for i, (mesh, c) in enumerate(zip(parts, counts, strict=True)):
        pts, _ = trimesh.sample.sample_surface(mesh, int(c), seed=int(rng.integers(1 << 31)))
        xyz.append(pts)
        labels.append(np.full(len(pts), i))
    xyz_all = np.concatenate(xyz).astype(np.float32)
    label = np.concatenate(labels)
    rgb = None
    if rng.random() < color_prob:
        palette = rng.integers(0, 256, size=(n_parts, 3))
        noise = rng.normal(0, 8, size=(len(label), 3))
        rgb = np.clip(palette[label] + noise, 0, 255).astype(np.uint8)
    masks = [np.flatnonzero(label == i) for i in range(n_parts)]
    names = [f"part{i}" for i in range(n_parts)]
    levels = [2] * n_parts
    # groups: a part with all its descendants (subtrees), when they hold more than one part
    for root in range(1, n_parts):
        members = {root}
        for j in range(root + 1, n_parts):
            if parents[j] in members:
                members.add(j)
        if 1 < len(members) < n_parts:
            masks.append(np.flatnonzero(np.isin(label, sorted(members))))
            names.append("group" + "_".join(map(str, sorted(members))))
            levels.append(1)
    masks.append(np.arange(len(label)))
    names.append("whole")
    levels.append(0)
    return LabelledCloud(xyz=xyz_all, masks=masks, rgb=rgb, names=names,
                         levels=np.array(levels, dtype=np.int32), category="Synthetic",
                         source="pointsam.data.synthetic", name=name)


def write_synthetic_dataset(out: str | Path, num_shapes: int, num_points: int = 8192, seed: int = 0,
                            overwrite: bool = False) -> Path:
    """Write `num_shapes` random shapes as a pointsam dataset (split 'train') and return its folder."""
    if num_shapes < 1:
        raise InputError(f"num_shapes must be >= 1, got {num_shapes}")
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(out, name="synthetic-parts", source=f"pointsam.data.synthetic seed={seed}",
                           licence="generated", overwrite=overwrite)
    try:
        for i in range(num_shapes):
            writer.add(random_shape(rng, num_points, name=f"shape_{i:05d}"), split="train")
        return writer.close()
    except BaseException:
        writer.abort()
        raise
