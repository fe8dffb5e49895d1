"""The app's display copy of big scans: a voxel overview, full resolution around the work area, the focus
route and the minimap's ground clicks (issues 11 and 15)."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam.app.display import DisplayCopy
from pointsam.app.server import AnnotateApp, HTTPError
from pointsam.app.session import AnnotationSession
from pointsam.errors import InputError
from pointsam.io import PointCloud, read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SCENE = DATA / "scannet" / "scene0011_00"


@pytest.fixture(scope="module")
def room() -> PointCloud:
    """A real ScanNet room (237k points)."""
    xyz, rgb = (np.load(require(SCENE / f"{name}.npy")) for name in ("coord", "color"))
    return PointCloud(xyz=xyz, rgb=rgb)


def test_small_clouds_are_drawn_whole():
    xyz = np.random.default_rng(0).normal(size=(500, 3))
    d = DisplayCopy(PointCloud(xyz), 1000)
    assert not d.is_lod and d.index.tolist() == list(range(500)) and d.covers(xyz[0])
    assert d.focus(xyz[0]) is False and d.version == 0
    np.testing.assert_allclose(d.positions, xyz - xyz.mean(axis=0), atol=1e-5)


def test_level_of_detail_overview_then_full_resolution_around_the_focus(room):
    budget = 60_000
    d = DisplayCopy(room, budget)
    assert d.is_lod and d.focus_center is None and d.index.size <= budget
    # the overview spans the whole room: its bounding box is (almost) the room's
    lo, hi = room.xyz.min(axis=0), room.xyz.max(axis=0)
    shown = room.xyz[d.index]
    assert np.all(shown.min(axis=0) - lo < 0.1) and np.all(hi - shown.max(axis=0) < 0.1)
    frame = d.center.copy()
    target = room.xyz[12345]
    assert not d.covers(target)
    assert d.focus(target) and d.version == 1 and d.covers(target)
    assert d.index.size <= budget and np.all(np.diff(d.index.astype(np.int64)) > 0)
    # every point within the detail radius is drawn; the frame does not move
    near = np.flatnonzero(np.linalg.norm(room.xyz - target, axis=1) < 0.99 * d.focus_radius)
    assert near.size > 1000 and np.isin(near, d.index).all()
    assert np.array_equal(d.center, frame)
    np.testing.assert_allclose(d.positions, room.xyz[d.index] - frame, atol=1e-4)
    assert d.state()["focus"]["radius"] == pytest.approx(d.focus_radius, abs=1e-5)
    with pytest.raises(InputError, match="finite"):
        d.focus(np.array([np.nan, 0, 0]))


def test_ground_point_is_the_overview_point_below_the_minimap_click(room):
    d = DisplayCopy(room, 60_000, up="z")
    target = room.xyz[5000]
    page = (target - d.center)[:2]
    got = d.ground_point((float(page[0]), float(page[1])))
    assert np.linalg.norm((got - target)[:2]) < 0.1  # within the overview's voxel spacing


def test_intensity_stretch_is_fixed_by_the_first_copy(room):
    cloud = PointCloud(room.xyz, extra={"intensity": np.arange(room.num_points, dtype=np.float64)})
    d = DisplayCopy(cloud, 60_000)
    grey_range = d._grey_range
    d.focus(room.xyz[100])
    assert d._grey_range == grey_range and d.intensity.size == d.index.size


@pytest.fixture(scope="module")
def room_app_parts(room):
    predictor = PointCloudPredictor(tiny_model(), mode="local")
    predictor.set_point_cloud(room.xyz, room.rgb)
    return predictor


def test_focus_route_and_clicks_outside_the_detail(room, room_app_parts, tmp_path):
    session = AnnotationSession(room_app_parts, room.xyz, tmp_path / "x.json")
    app = AnnotateApp(session, room, out_dir=tmp_path, stem="room", display_points=60_000)
    assert app.display.lod.index is room_app_parts.spatial_index  # local mode's KD-tree is reused
    state = app.post("/api/focus", {"index": 777})
    assert state["display"]["version"] == 1 and app.display.covers(room.xyz[777])
    state = app.post("/api/click", {"index": 777})  # inside the detail: nothing moves
    assert state["display"]["version"] == 1
    far = int(np.argmax(np.linalg.norm(room.xyz - room.xyz[777], axis=1)))
    app.post("/api/clear", {})
    state = app.post("/api/click", {"index": far})  # another object far away: the detail follows the work
    assert state["display"]["version"] == 2 and app.display.covers(room.xyz[far])
    state = app.post("/api/focus", {"ground": [0.0, 0.0]})
    assert state["display"]["version"] == 3
    for body, match in (({"index": room.num_points}, "outside the cloud"), ({"ground": [1.0]}, "two finite"),
                        ({"ground": ["a", 1]}, "two finite"), ({}, "two finite")):
        with pytest.raises(HTTPError, match=match):
            app.post("/api/focus", body)


def test_focus_route_without_level_of_detail_says_so(tmp_path):
    cloud = read_point_cloud(require(DATA / "samples" / "tiko_10000_points.ply"))
    predictor = PointCloudPredictor(tiny_model())
    predictor.set_point_cloud(cloud.xyz, cloud.rgb)
    app = AnnotateApp(AnnotationSession(predictor, cloud.xyz, tmp_path / "x.json"), cloud, out_dir=tmp_path,
                      stem="t")
    with pytest.raises(HTTPError, match="every point is drawn"):
        app.post("/api/focus", {"index": 0})


def test_clicks_on_a_big_scan_keep_only_their_regions_logits(room, room_app_parts, tmp_path):
    """Local mode: each click stores its region's logits (not (C, N) per click), yet masks, prompts and
    alternatives are those of the predictor's full-cloud answer."""
    session = AnnotationSession(room_app_parts, room.xyz, tmp_path / "x.json")
    step = session.click(777)
    region = step.logits.indices
    assert region is not None and region.size < room.num_points // 4
    assert step.logits.values.nbytes == 3 * region.size * 4
    _, scores, logits = room_app_parts.predict(point_indices=[777], point_labels=[1])
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(np.asarray(step.logits), logits[order], atol=1e-5)
    assert np.array_equal(session.current_mask(), logits[order[0]] > 0)
    assert session.state()["candidates"][0]["num_points"] == int((logits[order[0]] > 0).sum())
    step2 = session.click(int(region[0]))  # refinement in the same region; then its 3 alternatives
    session.select_candidate(2)
    assert len(step2.logits) == 4 and step2.logits.values.shape[1] < room.num_points
    assert np.array_equal(session.current_mask(), step2.logits.row(2) > 0)
