"""PartNet-Mobility evaluation clouds as the paper built them (Sec. 5.1): render 12 RGB-D views of the
object at rest pose, fuse them into one cloud, keep 10,000 points, one mask per link (movable part).

Each fused point comes from a rendered pixel, so the face it lies on, hence its link, is exact
(points no view keeps after the depth test take the nearest face). Held-out categories of the
paper: Scissors, Refrigerator, Door.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from pointsam.data.converters.files import find_files
from pointsam.data.converters.partnet import LICENCE
from pointsam.data.converters.partnet_mobility import (
    index_rows,
    link_transforms,
    posed_mesh,
    read_semantics,
    read_urdf,
)
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.engine.cameras import object_cameras
from pointsam.engine.fusion import fuse_views
from pointsam.engine.render import colored_mesh, render_mesh
from pointsam.errors import InputError, PointSAMError

#: PartNet-Mobility categories the paper holds out of training and evaluates on.
HELD_OUT = ("Scissors", "Refrigerator", "Door")
NUM_VIEWS = 12
NUM_POINTS = 10_000


def point_faces(views, fused, mesh: trimesh.Trimesh) -> np.ndarray:
    """Face index (N,) of each fused point: the face its pixel saw, else the nearest face."""
    faces = np.full(fused.num_points, -1, np.int64)
    for v in range(views.num_views):
        todo = np.flatnonzero((faces < 0) & (fused.point_pixel[v] >= 0))
        if todo.size:
            faces[todo] = views.face[v].reshape(-1)[fused.point_pixel[v, todo]]
    rest = np.flatnonzero(faces < 0)
    if rest.size:
        faces[rest] = nearest_faces(mesh, fused.xyz[rest])
    return faces


def nearest_faces(mesh: trimesh.Trimesh, xyz: np.ndarray, candidates: int = 16) -> np.ndarray:
    """Nearest face of each point among the `candidates` faces whose centroids are closest."""
    centroids = np.asarray(mesh.triangles_center)
    k = min(candidates, len(centroids))
    near = cKDTree(centroids).query(xyz, k=k)[1].reshape(len(xyz), k)
    tris = np.asarray(mesh.triangles)[near.reshape(-1)]
    points = np.repeat(np.asarray(xyz, np.float64), k, axis=0)
    dist = np.linalg.norm(trimesh.triangles.closest_point(tris, points) - points, axis=1)
    return near[np.arange(len(xyz)), dist.reshape(len(xyz), k).argmin(axis=1)]


def mobility_eval_cloud(obj: str | Path, num_points: int = NUM_POINTS, num_views: int = NUM_VIEWS,
                        image_size: int = 512, seed: int = 0, category: str = "",
                        min_mask_points: int = 10) -> LabelledCloud:
    """One PartNet-Mobility object folder -> its fused evaluation cloud with a mask per link."""
    obj = Path(obj)
    urdf = read_urdf(obj / "mobility.urdf")
    mesh, link_of_face, _, links, _ = posed_mesh(urdf, link_transforms(urdf))
    bounds = mesh.bounds
    center = bounds.mean(axis=0)
    radius = float(np.linalg.norm(np.asarray(mesh.vertices) - center, axis=1).max())
    cameras = object_cameras(center, radius, num_views=num_views, width=image_size)
    views = render_mesh(colored_mesh([mesh]), cameras)
    fused = fuse_views(views, num_points=num_points, seed=seed)
    link = link_of_face[point_faces(views, fused, mesh)]
    semantics = read_semantics(obj / "semantics.txt")
    masks, names = [], []
    for i, name in enumerate(links):
        idx = np.flatnonzero(link == i)
        if len(idx) >= min_mask_points:
            masks.append(idx)
            names.append(f"{name}:{semantics[name]}" if name in semantics else name)
    if not masks:
        raise InputError(f"{obj}: no link keeps {min_mask_points} visible points")
    return LabelledCloud(xyz=fused.xyz, rgb=fused.rgb, masks=masks, names=names, category=category,
                         source=str(obj), name=f"{category or 'obj'}_{obj.name}")


def convert_mobility_eval(path: str | Path, categories: Iterable[str] | None = HELD_OUT,
                          points: int = NUM_POINTS, **settings) -> Conversion:
    """Fused eval clouds of every object under `path` in `categories` (None: all), as a conversion.

    `settings` go to :func:`mobility_eval_cloud` (num_views, image_size, seed, min_mask_points).
    """
    path = Path(path)
    wanted = None if categories is None else {c.lower() for c in categories}
    views = settings.get("num_views", NUM_VIEWS)
    report = ConversionReport(source=f"PartNet-Mobility {path}: {views} fused views, {points} points",
                              licence=LICENCE)
    return Conversion(_iter_eval(path, wanted, points, settings, report), report)


def _iter_eval(path: Path, wanted: set[str] | None, points: int, settings: dict,
               report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    objects = sorted(p.parent for p in find_files(path, "mobility.urdf"))
    if not objects:
        raise InputError(f"{path}: no PartNet-Mobility objects (folders with mobility.urdf)")
    index = index_rows(path)
    found = 0
    for obj in objects:
        category = index.get(obj.resolve(), {}).get("category") or obj.parent.name
        if wanted is not None and category.lower() not in wanted:
            continue
        found += 1
        try:
            yield mobility_eval_cloud(obj, points, category=category, **settings)
        except (PointSAMError, OSError, ValueError) as exc:
            report.skip(obj, str(exc))
    if not found:
        raise InputError(f"{path}: no object of the categories {sorted(wanted or [])}")
