"""The annotation app's class palette: presets, class-map files (and their refusals), ids in exports, unknown
classes of a resumed file, semantic (stuff) mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointsam.app.classes import (
    PRESETS,
    ClassEntry,
    ClassMap,
    load_class_map,
    resolve_class_map,
    save_class_map,
)
from pointsam.app.export import export_session
from pointsam.app.session import AnnotationSession
from pointsam.errors import FileFormatError, InputError
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"


@pytest.fixture(scope="module")
def cloud():
    return read_point_cloud(require(SAMPLE))


@pytest.fixture(scope="module")
def predictor(cloud):
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(cloud.xyz, cloud.rgb)
    return p


def test_presets():
    scannet, kitti, asprs = (PRESETS[k]() for k in ("scannet20", "semantickitti", "asprs"))
    assert len(scannet) == 20 and len(kitti) == 19 and len(asprs) == 16
    assert scannet.get("chair").id == 5 and scannet.get("otherfurniture").id == 39
    assert scannet.get("floor").stuff and not scannet.get("chair").stuff
    assert kitti.get("car").id == 10 and kitti.get("road").stuff and not kitti.get("person").stuff
    assert asprs.get("ground").id == 2 and asprs.get("building").id == 6
    assert [e.key for e in scannet.entries[:10]] == list("1234567890") and scannet.entries[10].key == ""
    assert resolve_class_map("ScanNet20").to_list() == scannet.to_list()
    assert resolve_class_map("semantic-kitti").get("car").color == (100, 150, 245)
    with pytest.raises(InputError, match="no such file, and not a preset"):
        resolve_class_map("nuscenes")


def test_class_map_file_round_trip_and_refusals(tmp_path):
    path = tmp_path / "classes.json"
    cmap = PRESETS["semantickitti"]()
    save_class_map(cmap, path)
    assert json.loads(path.read_text())["format"] == "pointsam-classes"
    assert load_class_map(path).to_list() == cmap.to_list()
    assert resolve_class_map(path).to_list() == cmap.to_list()
    path.write_text(json.dumps({"classes": [{"id": 3, "name": "pipe"}]}))  # colour and key optional
    assert load_class_map(path).entries == [ClassEntry(3, "pipe", (214, 39, 40))]  # palette colour
    bad = [({"classes": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}, "class id 1 is used twice"),
           ({"classes": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]}, "name 'a' is used twice"),
           ({"classes": [{"id": 1, "name": "a", "key": "1"}, {"id": 2, "name": "b", "key": "1"}]},
            "key '1' is used twice"),
           ({"classes": [{"id": -1, "name": "a"}]}, "class 1: id must be an integer in 0..65535"),
           ({"classes": [{"id": 1, "name": ""}]}, "name must be text"),
           ({"classes": [{"id": 1, "name": "a", "color": [0, 0, 256]}]}, r"color must be \[r, g, b\]"),
           ({"classes": [{"id": 1, "name": "a", "key": "z"}]}, "key must be one character that is not"),
           ({"classes": [{"id": 1, "name": "a", "stuff": "yes"}]}, "stuff must be true or false"),
           ({"classes": "chair"}, "must be a list"), ([1, 2], "a JSON object with a \"classes\" list")]
    for doc, message in bad:
        path.write_text(json.dumps(doc))
        with pytest.raises(FileFormatError, match=message):
            load_class_map(path)
    path.write_text("{not json")
    with pytest.raises(FileFormatError, match="not a readable class map"):
        load_class_map(path)


def accept_region(s: AnnotationSession, indices, label: str, **kw):
    s.edit(indices, tool="lasso")
    return s.accept(None, label, **kw)


def test_class_map_ids_in_exports_and_unknown_classes_kept(predictor, cloud, tmp_path):
    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "a.json", class_map=PRESETS["scannet20"]())
    accept_region(s, np.arange(0, 100), "chair")
    accept_region(s, np.arange(100, 200), "pipe")  # free text: added to the palette with a new id
    assert s.class_ids() == {"chair": 5, "pipe": 40}
    plan = export_session(s, cloud, tmp_path / "out", "tiko")
    label = np.load(plan["label_npy"])
    assert (label[:100] == 5).all() and (label[100:200] == 40).all() and (label[200:] == -1).all()
    exported = load_class_map(plan["classes"])
    assert exported.get("chair").id == 5 and exported.get("pipe").id == 40 and len(exported) == 21
    assert json.loads(s.path.read_text())["class_map"][-1]["name"] == "pipe"

    # reopened with another class map: the file's classes that it lacks are added, nothing is lost
    other = ClassMap([ClassEntry(7, "chair", (1, 2, 3), "1")])
    again = AnnotationSession.open(predictor, cloud.xyz, s.path, class_map=other)
    assert again.unknown_classes == ["pipe"] and again.class_ids() == {"chair": 7, "pipe": 8}
    assert again.state()["unknown_classes"] == ["pipe"]
    assert np.array_equal(again.instance_labels(), s.instance_labels())
    resumed = AnnotationSession.open(predictor, cloud.xyz, s.path)  # no map given: the saved one
    assert resumed.class_ids() == {"chair": 5, "pipe": 40} and not resumed.unknown_classes


def test_stuff_classes_have_one_object(predictor, cloud, tmp_path):
    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "a.json", class_map=PRESETS["scannet20"]())
    floor = accept_region(s, np.arange(0, 50), "floor")
    assert floor.name == "floor"
    again = accept_region(s, np.arange(40, 120), "floor")  # joins the floor (its own points overlap)
    assert again.id == floor.id and np.array_equal(s.objects[floor.id].indices, np.arange(120))
    c1 = accept_region(s, np.arange(200, 210), "chair")
    c2 = accept_region(s, np.arange(210, 220), "chair")  # a thing class: a new instance
    assert c1.id != c2.id and len(s.objects) == 3

    sem = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "b.json", semantic=True)
    a = accept_region(sem, np.arange(0, 10), "road")
    b = accept_region(sem, np.arange(10, 20), "road")
    assert a.id == b.id and sem.objects[a.id].indices.size == 20 and sem.state()["mode"] == "semantic"
    with pytest.raises(Exception, match="overlaps"):
        accept_region(sem, np.arange(5, 30), "car")
    sem.clear()
    resumed = AnnotationSession.open(predictor, cloud.xyz, sem.path)
    assert resumed.semantic and accept_region(resumed, np.arange(30, 40), "road").id == a.id
