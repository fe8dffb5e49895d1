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
    assert len(scannet) == 20 and len(kitti) == 34 and len(asprs) == 17
    assert scannet.get("chair").id == 4 and scannet.get("otherfurniture").id == 19  # segment20 ids
    assert scannet.get("floor").stuff and not scannet.get("chair").stuff
    assert kitti.get("car").id == 10 and kitti.get("road").stuff and not kitti.get("person").stuff
    assert asprs.get("ground").id == 2 and asprs.get("building").id == 6
    assert asprs.get("ground").key == "2" and asprs.get("ground").stuff and not asprs.get("building").stuff
    assert kitti.get("car").key == "1" and kitti.get("unlabeled").id == 0 and kitti.get("bus").key == ""
    assert [e.key for e in scannet.entries[:10]] == list("1234567890") and scannet.entries[10].key == ""
    assert resolve_class_map("ScanNet20").to_list() == scannet.to_list()
    assert resolve_class_map("semantic-kitti").get("car").color == (100, 150, 245)
    with pytest.raises(InputError, match="no such file, and not a preset"):
        resolve_class_map("nuscenes")


def test_class_map_file_round_trip_and_refusals(tmp_path):
    path = tmp_path / "classes.json"
    cmap = PRESETS["semantickitti"]()
    save_class_map(cmap, path)
    assert json.loads(path.read_text())["format"] == "pointsam-classmap"
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
           ({"classes": "chair"}, "must be a list"), ([1, 2], "class 1 must be an object with")]
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
    assert s.class_ids() == {"chair": 4, "pipe": 20}
    plan = export_session(s, cloud, tmp_path / "out", "tiko")
    label = np.load(plan["label_npy"])
    assert (label[:100] == 4).all() and (label[100:200] == 20).all() and (label[200:] == -1).all()
    exported = load_class_map(plan["classes"])
    assert exported.get("chair").id == 4 and exported.get("pipe").id == 20 and len(exported) == 21
    assert json.loads(s.path.read_text())["class_map"][-1]["name"] == "pipe"

    # reopened with another class map: the file's classes that it lacks are added, nothing is lost
    other = ClassMap([ClassEntry(7, "chair", (1, 2, 3), key="1")])
    again = AnnotationSession.open(predictor, cloud.xyz, s.path, class_map=other)
    assert again.unknown_classes == ["pipe"] and again.class_ids() == {"chair": 7, "pipe": 8}
    assert again.state()["unknown_classes"] == ["pipe"]
    assert np.array_equal(again.instance_labels(), s.instance_labels())
    resumed = AnnotationSession.open(predictor, cloud.xyz, s.path)  # no map given: the saved one
    assert resumed.class_ids() == {"chair": 4, "pipe": 20} and not resumed.unknown_classes


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


# ------------------------------------------------------------------ exports read back by pointsam.io


def test_semantickitti_and_pcd_exports_read_back_with_their_class_map(predictor, cloud, tmp_path):
    from pointsam.io.labelformats import read_label_files
    from pointsam.io.semantickitti import read_kitti_labels

    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "a.json")  # no map: ids 1, 2 by first use
    accept_region(s, np.arange(0, 300), "chair")
    accept_region(s, np.arange(300, 350), "chair")
    accept_region(s, np.arange(1000, 1400), "table")
    label, instance = s.class_labels(), s.instance_labels()
    assert (label == -1).any() and len(np.unique(instance)) == 4
    plan = export_session(s, cloud, tmp_path / "out", "tiko")
    assert plan["semantickitti"].name == "tiko.label" and plan["pcd"].name == "tiko.labels.pcd"
    assert sorted(p.name for p in (tmp_path / "out").glob("*classes*")) == ["tiko.classes.json"]  # one map

    raw = np.fromfile(plan["semantickitti"], dtype="<u4")
    assert ((raw & 0xFFFF) == np.where(label < 0, 0, label)).all()  # -1 is SemanticKITTI's 0
    assert ((raw >> 16) == instance + 1).all()  # instance in the high 16 bits, 0 = none
    semantic, inst = read_kitti_labels(plan["semantickitti"], num_points=len(label))
    assert (semantic[label >= 0] == label[label >= 0]).all() and (inst - 1 == instance).all()
    for fmt in ("semantickitti", "pcd"):
        back = read_label_files(fmt, tmp_path / "out", "tiko", num_points=len(label))
        assert (back.labels == label).all() and (back.instance == instance).all(), fmt
        assert back.class_map.ids == [1, 2] and back.class_map.names == ["chair", "table"]
    assert np.allclose(back.xyz, cloud.xyz)  # the PCD keeps the points


def test_semantickitti_export_left_out_when_class_0_is_a_real_class(predictor, cloud, tmp_path):
    from pointsam.io.labelformats import read_label_files

    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "a.json", class_map=PRESETS["scannet20"]())
    accept_region(s, np.arange(0, 500), "wall")  # ScanNet20 id 0; the other points stay unlabelled
    accept_region(s, np.arange(500, 600), "chair")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiko.label").write_bytes(b"old")  # a stale export of older labels
    plan = export_session(s, cloud, out, "tiko", overwrite=True)
    assert "semantickitti" not in plan and not (out / "tiko.label").exists()
    doc = json.loads(plan["json"].read_text())
    assert "'wall'" in doc["not_written"]["semantickitti"] and "tiko.label" not in doc["files"].values()
    back = read_label_files("pcd", out, "tiko", num_points=cloud.xyz.shape[0])
    assert (back.labels == s.class_labels()).all() and back.class_map.get("wall").id == 0
    assert back.class_map.get("wall").stuff and back.class_map.get("chair").key == "5"

    full = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "b.json", class_map=PRESETS["scannet20"]())
    accept_region(full, np.arange(0, 500), "wall")
    accept_region(full, np.arange(500, len(cloud.xyz)), "floor")  # every point labelled: 0 is only wall
    plan = export_session(full, cloud, tmp_path / "full", "tiko")
    back = read_label_files("semantickitti", tmp_path / "full", "tiko", num_points=len(cloud.xyz))
    assert (back.labels == full.class_labels()).all() and (back.labels[:500] == 0).all()


def test_semantickitti_preset_writes_unlabelled_as_its_unlabeled_class(predictor, cloud, tmp_path):
    from pointsam.io.labelformats import read_label_files

    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "k.json",
                               class_map=PRESETS["semantickitti"]())
    accept_region(s, np.arange(0, 200), "car")
    accept_region(s, np.arange(200, 900), "road")
    plan = export_session(s, cloud, tmp_path / "out", "000000")
    back = read_label_files("semantickitti", tmp_path / "out", "000000", num_points=len(cloud.xyz))
    label = s.class_labels()
    assert (back.labels == np.where(label < 0, 0, label)).all()  # 0 = 'unlabeled', as in SemanticKITTI
    assert back.class_map.by_id(0).name == "unlabeled" and back.class_map.by_id(10).name == "car"
    assert plan["classes"].name == "000000.classes.json"


def test_las_export_uses_the_class_maps_codes(predictor, cloud, tmp_path):
    from pointsam.io import write_labels
    from pointsam.io.las_labels import read_las_classes

    las_path = tmp_path / "tiko.las"
    write_labels(las_path, cloud.xyz, np.full(len(cloud.xyz), 2), cloud.rgb)
    las_cloud = read_point_cloud(las_path)
    s = AnnotationSession.open(predictor, las_cloud.xyz, tmp_path / "a.json",
                               class_map=PRESETS["scannet20"]())
    accept_region(s, np.arange(0, 500), "wall")  # id 0: the LAS code must not be 0 ('never classified')
    accept_region(s, np.arange(500, 600), "chair")
    plan = export_session(s, las_cloud, tmp_path / "out", "tiko")
    codes = read_point_cloud(plan["las"]).extra["classification"]
    assert (codes[:500] == 64).all() and (codes[500:600] == 68).all() and (codes[600:] == 0).all()
    _, back = read_las_classes(plan["las"], load_class_map(plan["classes"]))
    assert np.array_equal(back, s.class_labels())

    a = AnnotationSession.open(predictor, las_cloud.xyz, tmp_path / "b.json", class_map=PRESETS["asprs"]())
    accept_region(a, np.arange(0, 300), "ground")
    accept_region(a, np.arange(300, 400), "building")
    plan = export_session(a, las_cloud, tmp_path / "asprs", "tiko")
    codes = read_point_cloud(plan["las"]).extra["classification"]
    assert (codes[:300] == 2).all() and (codes[300:400] == 6).all()  # ASPRS ground, building
