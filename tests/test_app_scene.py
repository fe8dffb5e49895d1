"""Labelling a whole 237k-point ScanNet scene to the last point with the hand tools (no model needed): every
ground-truth instance selected, a deliberately sloppy selection fixed on the accepted object, the class map's
ids in the export, stuff classes (wall, floor) as one object each, and the session resumed exactly."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam.app.classes import PRESETS
from pointsam.app.export import export_session
from pointsam.app.session import AnnotationSession
from pointsam.io import PointCloud

from conftest import DATA, require

SCENE = DATA / "scannet" / "scene0011_00"


@pytest.fixture(scope="module")
def scene():
    load = [np.load(require(SCENE / f"{name}.npy")) for name in ("coord", "color", "instance", "segment20")]
    return tuple(load)


def test_every_object_of_a_scannet_scene_to_the_last_point(scene, tmp_path):
    xyz, rgb, instance, segment = scene
    cmap = PRESETS["scannet20"]()
    ids = np.array([e.id for e in cmap.entries])
    s = AnnotationSession.open(None, xyz, tmp_path / "scene.json", class_map=cmap)
    gt = np.unique(instance[instance >= 0])
    assert len(xyz) == 237_360 and len(gt) > 30
    for k in gt:
        points = np.flatnonzero(instance == k)
        c = int(segment[points[0]])
        label = cmap.entries[c].name if c >= 0 else "unknown"
        if k == gt[0]:  # a sloppy lasso: too much, fixed afterwards on the object with the brush
            sloppy = np.union1d(points, np.flatnonzero(instance == -1)[:500])
            s.edit(sloppy, tool="lasso")
            obj = s.accept(None, label, overlap="keep")
            s.edit(np.setdiff1d(sloppy, points), add=False, target=obj.id, tool="brush")
            assert np.array_equal(s.objects[obj.id].indices, points)
            continue
        s.edit(points, tool="lasso")
        s.accept(None, label, overlap="keep")

    want_class = np.where(instance >= 0, np.where(segment >= 0, ids[np.clip(segment, 0, None)], -2), -1)
    unknown = s.class_ids().get("unknown", -2)
    plan = export_session(s, PointCloud(xyz=xyz, rgb=rgb), tmp_path / "out", "scene0011_00")
    label = np.load(plan["label_npy"])
    assert np.array_equal(label, np.where(want_class == -2, unknown, want_class))  # every point, exactly
    inst = np.load(plan["instance_npy"])
    for k in gt:  # thing classes: one object per instance; stuff (wall, floor): one object per class
        points = instance == k
        assert len(np.unique(inst[points])) == 1 and inst[points][0] > 0
    walls = np.unique(inst[(instance >= 0) & (segment == 0)])
    assert len(walls) == 1 and len(np.unique(instance[(instance >= 0) & (segment == 0)])) > 1
    chairs = np.unique(inst[(instance >= 0) & (segment == 4)])
    assert len(chairs) == len(np.unique(instance[(instance >= 0) & (segment == 4)])) > 1

    again = AnnotationSession.open(None, xyz, s.path)
    assert np.array_equal(again.instance_labels(), s.instance_labels())
    assert np.array_equal(again.class_labels(), s.class_labels())
