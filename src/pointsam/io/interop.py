"""Hand clouds to and from Open3D and trimesh, so pointsam drops into existing pipelines.

Both packages are optional: nothing here imports Open3D unless a function that builds an Open3D
object is called. Readers accept legacy ``open3d.geometry.PointCloud`` (``points``/``colors``),
tensor ``open3d.t.geometry.PointCloud`` (``point.positions``/``point.colors``, other attributes
kept as fields), ``trimesh.PointCloud`` and ``trimesh.Trimesh`` (its vertices, or area-weighted
samples of its surface with `mesh_samples`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pointsam.errors import InputError
from pointsam.io.pointcloud import PointCloud, coords_dtype, normalize_rgb_to_unit, rgb_to_uint8


def _open3d():
    try:
        import open3d
    except ImportError as exc:
        raise InputError("this needs Open3D: pip install open3d") from exc
    return open3d


def _numpy(value: Any) -> np.ndarray:
    """An Open3D Vector3dVector / core.Tensor / array as numpy."""
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def from_open3d(geometry: Any) -> PointCloud:
    """A pointsam PointCloud from a legacy or tensor Open3D point cloud (colours to uint8)."""
    if hasattr(geometry, "point") and not hasattr(geometry, "points"):  # open3d.t.geometry.PointCloud
        attributes = geometry.point
        keys = list(attributes.keys()) if hasattr(attributes, "keys") else []
        if "positions" not in keys:
            raise InputError("the Open3D tensor point cloud has no 'positions'")
        xyz = _numpy(attributes["positions"])
        rgb = _numpy(attributes["colors"]) if "colors" in keys else None
        extra = {}
        for key in keys:
            if key not in ("positions", "colors"):
                values = _numpy(attributes[key])
                extra[key] = values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values
    elif hasattr(geometry, "points"):  # legacy open3d.geometry.PointCloud
        xyz = _numpy(geometry.points)
        has_colors = geometry.has_colors() if hasattr(geometry, "has_colors") else len(geometry.colors) > 0
        rgb = _numpy(geometry.colors) if has_colors else None
        extra = {}
        if getattr(geometry, "has_normals", lambda: False)():
            extra["normal"] = _numpy(geometry.normals).astype(np.float32)
    else:
        raise InputError(f"not an Open3D point cloud: {type(geometry).__name__}")
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
        raise InputError(f"the Open3D cloud must hold (N, 3) points, got {xyz.shape}")
    return PointCloud(xyz=coords_dtype(xyz), rgb=None if rgb is None else rgb_to_uint8(rgb), extra=extra)


def to_open3d(cloud: PointCloud, tensor: bool = False, labels: np.ndarray | None = None) -> Any:
    """An Open3D point cloud (legacy, or ``open3d.t`` with `tensor`) with colours in [0, 1].

    With `tensor`, per-point `labels` are stored as the int32 attribute ``label``.
    """
    o3d = _open3d()
    xyz = np.asarray(cloud.xyz, np.float64)
    rgb = None if cloud.rgb is None else normalize_rgb_to_unit(cloud.rgb).astype(np.float64)
    if not tensor:
        if labels is not None:
            raise InputError("legacy Open3D clouds cannot hold labels; pass tensor=True")
        out = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
        if rgb is not None:
            out.colors = o3d.utility.Vector3dVector(rgb)
        return out
    out = o3d.t.geometry.PointCloud(o3d.core.Tensor(xyz.astype(np.float32)))
    if rgb is not None:
        out.point["colors"] = o3d.core.Tensor(rgb.astype(np.float32))
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(xyz),):
            raise InputError(f"labels must have shape ({len(xyz)},), got {labels.shape}")
        out.point["label"] = o3d.core.Tensor(labels.astype(np.int32).reshape(-1, 1))
    return out


def from_trimesh(geometry: Any, mesh_samples: int | None = None, seed: int = 0) -> PointCloud:
    """A PointCloud from ``trimesh.PointCloud`` or ``trimesh.Trimesh`` (vertices, or surface samples)."""
    import trimesh

    from pointsam.io.mesh import sample_mesh

    if isinstance(geometry, trimesh.Trimesh):
        if mesh_samples is not None:
            return sample_mesh(geometry, mesh_samples, seed=seed)
        vertices, colors = geometry.vertices, None
        if getattr(geometry.visual, "kind", None) == "vertex":
            colors = np.asarray(geometry.visual.vertex_colors)[:, :3]
    elif isinstance(geometry, trimesh.PointCloud):
        vertices = geometry.vertices
        colors = np.asarray(geometry.colors)[:, :3] if len(geometry.colors) else None
    else:
        raise InputError(f"not a trimesh PointCloud or Trimesh: {type(geometry).__name__}")
    if len(vertices) == 0:
        raise InputError("the trimesh geometry has no vertices")
    return PointCloud(xyz=coords_dtype(vertices), rgb=None if colors is None else rgb_to_uint8(colors))


def to_trimesh(cloud: PointCloud, labels: np.ndarray | None = None) -> Any:
    """A ``trimesh.PointCloud``; with `labels`, coloured by label (the pointsam palette) instead of rgb."""
    import trimesh

    from pointsam.io.palette import label_colors

    colors = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (cloud.num_points,):
            raise InputError(f"labels must have shape ({cloud.num_points},), got {labels.shape}")
        colors = label_colors(labels)
    elif cloud.rgb is not None:
        colors = rgb_to_uint8(cloud.rgb)
    return trimesh.PointCloud(np.asarray(cloud.xyz), colors=colors)
