"""Data engine rendering: camera geometry, depth and back-projection, colours, fusion, visibility."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from engine_helpers import OBJECT
from PIL import Image

from pointsam.engine.cameras import object_cameras, sphere_directions
from pointsam.engine.fusion import fuse_views
from pointsam.engine.render import colored_mesh, load_colored_mesh, render_mesh
from pointsam.errors import FileFormatError, InputError

from conftest import require

CENTER = np.array([0.3, -0.2, 0.5])


def _sphere(radius: float = 1.0) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    mesh.apply_translation(CENTER)
    return mesh


def test_depth_and_backprojection_agree_with_a_known_sphere():
    cams = object_cameras(CENTER, 1.0, num_views=6, width=48)
    views = render_mesh(colored_mesh([_sphere()]), cams)
    for v, cam in enumerate(cams):
        dist = np.linalg.norm(cam.position - CENTER)
        # the centre pixel ray hits the sphere at distance dist - r (depth = z along the axis)
        assert views.depth[v, 24, 24] == pytest.approx(dist - 1.0, rel=2e-3)
        pts = cam.backproject(views.depth[v])[views.foreground[v].reshape(-1)]
        assert np.abs(np.linalg.norm(pts - CENTER, axis=1) - 1.0).max() < 5e-3  # on the surface
        # projecting the back-projected points lands on the pixel centres they came from
        uv, z = cam.project(pts)
        rows, cols = np.nonzero(views.foreground[v])
        assert np.allclose(uv, np.stack([cols + 0.5, rows + 0.5], axis=1), atol=1e-6)
        assert np.allclose(z, views.depth[v][rows, cols], rtol=1e-5)
        # the whole sphere fits in the image with a margin: no foreground on the border
        assert not views.foreground[v][[0, -1]].any() and not views.foreground[v][:, [0, -1]].any()


def test_fused_cloud_visibility_follows_the_surface_normal():
    cams = object_cameras(CENTER, 1.0, num_views=6, width=48)
    views = render_mesh(colored_mesh([_sphere()]), cams)
    cloud = fuse_views(views, num_points=1500)
    assert cloud.num_points == 1500 and cloud.visible.any(axis=0).all()
    for v, cam in enumerate(cams):
        facing = (cloud.xyz - CENTER) @ (cam.position - CENTER) / np.linalg.norm(cam.position - CENTER)
        assert not cloud.visible[v][facing < -0.1].any()  # back side hidden
        assert cloud.visible[v][facing > 0.8].mean() > 0.9  # front side seen
        lifted = cloud.pixel_point[v][views.foreground[v]]
        assert (lifted >= 0).all() and (cloud.pixel_point[v][~views.foreground[v]] == -1).all()


def test_colours_from_faces_and_textures():
    box = trimesh.creation.box(extents=(1, 1, 1))
    box.visual.face_colors = np.tile([200, 30, 30, 255], (len(box.faces), 1))
    quad = trimesh.Trimesh([[0, 0, 2], [1, 0, 2], [1, 1, 2], [0, 1, 2]], [[0, 1, 2], [0, 2, 3]],
                           process=False)
    checker = np.zeros((2, 2, 3), np.uint8)
    checker[0, 0] = checker[1, 1] = (0, 255, 0)  # green where uv (u < .5, v > .5) and (u > .5, v < .5)
    quad.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]],
                                                image=Image.fromarray(checker))
    cmesh = colored_mesh([box, quad])
    faces = np.array([0, len(box.faces), len(box.faces)])
    bary = np.array([[1 / 3, 1 / 3, 1 / 3], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    colors = cmesh.color_at(faces, bary)
    assert np.allclose(colors[0], np.array([200, 30, 30]) / 255)
    assert np.allclose(colors[1], 0)  # near uv (0.1, 0.1): black texel
    assert np.allclose(colors[2], 0)  # near uv (0.1, 0.9): black texel
    mid = cmesh.color_at(np.array([len(box.faces)]), np.array([[0.1, 0.8, 0.1]]))  # uv (0.9, 0.1)
    assert np.allclose(mid, [[0, 1, 0]])
    views = render_mesh(colored_mesh([box]), object_cameras([0, 0, 0], 0.9, 2, 32))
    rgb = views.rgb[views.foreground].astype(int)
    assert (rgb[:, 0] > 2 * rgb[:, 1]).all()  # red object, shaded
    assert (views.rgb[~views.foreground] == 255).all()  # white background


def test_shared_object_folder_renders_and_fuses_on_its_surface():
    cmesh = load_colored_mesh(require(OBJECT))
    assert cmesh.num_faces > 1000
    verts = cmesh.mesh.vertices
    center = (verts.min(0) + verts.max(0)) / 2
    radius = float(np.linalg.norm(verts - center, axis=1).max())
    views = render_mesh(cmesh, object_cameras(center, radius, 6, 48))
    assert views.rgb.shape == (6, 48, 48, 3) and views.foreground.sum(axis=(1, 2)).min() > 20
    cloud = fuse_views(views, 400)
    from scipy.spatial import cKDTree

    dense = trimesh.sample.sample_surface_even(cmesh.mesh, 200_000, seed=0)[0]
    dist = cKDTree(dense).query(cloud.xyz)[0]
    assert np.median(dist) < 0.01 * radius and dist.max() < 0.05 * radius
    colors = set(map(tuple, cmesh.corner_colors[:, 0].round(3)))
    assert len(colors) >= 2  # the material colours of the OBJ parts were kept


def test_errors():
    with pytest.raises(InputError, match="views"):
        sphere_directions(0)
    with pytest.raises(InputError, match="radius"):
        object_cameras([0, 0, 0], 0.0)
    with pytest.raises(FileFormatError, match="no such"):
        load_colored_mesh("/nonexistent/mesh.obj")
