"""Shared helpers of the data-engine tests: a real multi-part mesh and scripted segmenters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointsam.engine.cameras import object_cameras
from pointsam.engine.fusion import FusedCloud, fuse_views
from pointsam.engine.render import RenderedViews, colored_mesh, load_colored_mesh, mesh_files
from pointsam.engine.sam2d import Masks2D

from conftest import DATA

OBJECT = DATA / "partnet_mobility" / "Faucet" / "1280"


def render_parts(folder: Path, size: int = 96, views: int = 6, points: int = 4096):
    """Render an object whose OBJ files are its parts; returns views, cloud, face / point part ids."""
    import trimesh

    parts = [trimesh.load(f, process=False, force="mesh") for f in mesh_files(folder)]
    cmesh = colored_mesh(parts)
    face_part = np.repeat(np.arange(len(parts)), [len(p.faces) for p in parts])
    assert len(face_part) == cmesh.num_faces
    verts = cmesh.mesh.vertices
    center = verts.min(0) / 2 + verts.max(0) / 2
    radius = float(np.linalg.norm(verts - center, axis=1).max())
    from pointsam.engine.render import render_mesh

    rendered = render_mesh(cmesh, object_cameras(center, radius, views, size))
    cloud = fuse_views(rendered, points)
    return rendered, cloud, face_part, point_parts(rendered, cloud, face_part)


def point_parts(rendered: RenderedViews, cloud: FusedCloud, face_part: np.ndarray) -> np.ndarray:
    """Part of each fused point, read from the face under its pixel in a view that sees it."""
    out = np.full(cloud.num_points, -1)
    faces = rendered.face.reshape(rendered.num_views, -1)
    for v in range(rendered.num_views):
        pix = cloud.point_pixel[v]
        sel = (pix >= 0) & (out < 0)
        out[sel] = face_part[np.maximum(faces[v, pix[sel]], 0)]
    return out


class ScriptedSegmenter:
    """A 2D 'SAM' whose masks are exact projections (face ids) of the known parts."""

    def __init__(self, rendered: RenderedViews, face_part: np.ndarray, min_pixels: int = 30,
                 wrong: bool = False) -> None:
        self.labels = np.where(rendered.face >= 0, face_part[np.maximum(rendered.face, 0)], -1)
        self.min_pixels = min_pixels
        self.wrong = wrong  # answer prompts with the whole object instead of the part

    def set_images(self, images: np.ndarray) -> None:
        assert images.shape[:3] == self.labels.shape

    def predict(self, view, points, labels, mask_input=None, multimask=True) -> Masks2D:
        lab = self.labels[view]
        part = lab[int(points[0][0]), int(points[0][1])]
        whole = lab >= 0
        masks = [whole, whole] if self.wrong else [lab == part, whole]
        logits = np.stack([np.where(m, 5.0, -5.0) for m in masks]).astype(np.float32)
        return Masks2D(logits, np.array([0.9, 0.8], np.float32))

    def generate(self, view):
        lab = self.labels[view]
        return [(lab == p, 0.95) for p in np.unique(lab[lab >= 0])
                if (lab == p).sum() >= self.min_pixels]


class OraclePointSAM:
    """An imperfect scripted Point-SAM: its first guesses add a wrong part, negative clicks fix them."""

    def __init__(self, parts: np.ndarray) -> None:
        self.parts = parts
        self.num_parts = int(parts.max()) + 1
        self.calls = 0

    def predict(self, point_coords=None, point_labels=None, mask_input=None, multimask_output=True, *,
                point_indices=None):
        self.calls += 1
        idx, lab = np.asarray(point_indices), np.asarray(point_labels)
        pos = np.isin(self.parts, self.parts[idx[lab == 1]])
        neg = np.isin(self.parts, self.parts[idx[lab == 0]])
        if multimask_output:
            first = int(self.parts[idx[0]])
            wrong = [(first + k) % self.num_parts for k in (1, 2)]
            cands = [pos | (self.parts == wrong[0]), self.parts >= 0,
                     pos | np.isin(self.parts, wrong)]
        else:
            base = np.zeros(len(self.parts), bool) if mask_input is None else mask_input > 0
            cands = [(base | pos) & ~neg]
        logits = np.stack([np.where(c, 4.0, -4.0) for c in cands]).astype(np.float32)
        return logits > 0, np.linspace(0.9, 0.7, len(cands)).astype(np.float32), logits


def load(folder: Path = OBJECT):
    return load_colored_mesh(folder)
