"""Interop with trimesh (installed: real objects) and Open3D (optional, not installed here)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import trimesh

from pointsam.errors import InputError
from pointsam.io import read_point_cloud
from pointsam.io.interop import from_open3d, from_trimesh, to_open3d, to_trimesh
from pointsam.io.palette import label_colors


@pytest.fixture(scope="module")
def sample(data_dir):
    path = data_dir / "samples" / "tiko_10000_points.ply"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return read_point_cloud(path)


def test_trimesh_point_cloud_round_trip(sample):
    tm = to_trimesh(sample)
    assert isinstance(tm, trimesh.PointCloud) and len(tm.vertices) == sample.num_points
    back = from_trimesh(tm)
    assert np.allclose(back.xyz, sample.xyz) and np.array_equal(back.rgb, sample.rgb)
    labels = (sample.xyz[:, 0] > np.median(sample.xyz[:, 0])).astype(np.int64)
    coloured = from_trimesh(to_trimesh(sample, labels=labels))
    assert np.array_equal(coloured.rgb, label_colors(labels))
    with pytest.raises(InputError, match="labels must have shape"):
        to_trimesh(sample, labels=labels[:-1])


def test_trimesh_mesh_vertices_or_surface_samples():
    box = trimesh.creation.box()
    assert from_trimesh(box).num_points == len(box.vertices)
    samples = from_trimesh(box, mesh_samples=500)
    assert samples.num_points == 500 and samples.face_index is not None
    assert np.abs(samples.xyz).max() <= 0.5 + 1e-6
    with pytest.raises(InputError, match="not a trimesh"):
        from_trimesh(np.zeros((3, 3)))


def test_open3d_missing_gives_install_hint(sample, monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)
    with pytest.raises(InputError, match="pip install open3d"):
        to_open3d(sample)


class _LegacyStandIn:
    """Only the attributes of open3d.geometry.PointCloud that from_open3d reads (Open3D is not
    installed here, so this checks the conversion logic, not Open3D itself)."""

    def __init__(self, points, colors):
        self.points, self.colors, self.normals = points, colors, np.zeros((0, 3))

    def has_colors(self):
        return len(self.colors) > 0

    def has_normals(self):
        return False


def test_from_open3d_legacy_layout(sample):
    unit = sample.rgb.astype(np.float64) / 255  # Open3D keeps colours in [0, 1]
    cloud = from_open3d(_LegacyStandIn(sample.xyz.astype(np.float64), unit))
    assert np.allclose(cloud.xyz, sample.xyz) and np.array_equal(cloud.rgb, sample.rgb)
    assert from_open3d(_LegacyStandIn(sample.xyz, np.zeros((0, 3)))).rgb is None
    with pytest.raises(InputError, match="not an Open3D point cloud"):
        from_open3d(object())
