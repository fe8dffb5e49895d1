"""Label formats labellers use: SemanticKITTI .label, PCD label/instance, LAS via a class map, ScanNet
segs/aggregation JSON. Each is written and read back with the real labels of a ScanNet scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointsam.errors import FileFormatError, InputError
from pointsam.io.classmap import load_class_map
from pointsam.io.las_labels import read_las_classes, write_las_classes
from pointsam.io.pcd_labels import read_pcd_labels, write_pcd_labels
from pointsam.io.scannet_labels import read_scannet_labels, scannet_paths, write_scannet_labels
from pointsam.io.semantickitti import (
    read_kitti_labels,
    read_kitti_scan,
    write_kitti_labels,
    write_kitti_scan,
)


@pytest.fixture(scope="module")
def scene(data_dir):
    """A real ScanNet scene (20k points of it): xyz, rgb, ScanNet20 class, instance (-1 = none)."""
    root = data_dir / "scannet" / "scene0011_00"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    keep = slice(0, None, 9)
    return {k: np.load(root / f"{f}.npy")[keep] for k, f in
            (("xyz", "coord"), ("rgb", "color"), ("label", "segment20"), ("instance", "instance"))}


def test_scene_has_unlabelled_points_and_many_objects(scene):
    assert (scene["label"] == -1).any() and len(np.unique(scene["instance"])) > 20


def test_semantickitti_round_trip(tmp_path, scene):
    path = write_kitti_labels(tmp_path / "000000.label", scene["label"], scene["instance"])
    assert path.stat().st_size == 4 * len(scene["label"])
    raw = np.fromfile(path, dtype="<u4")
    assert ((raw & 0xFFFF) == np.where(scene["label"] < 0, 0, scene["label"])).all()
    semantic, instance = read_kitti_labels(path, num_points=len(scene["xyz"]))
    # SemanticKITTI has no -1: unlabelled is class 0 / instance 0, so shift our ids by one to keep them.
    path2 = write_kitti_labels(tmp_path / "000001.label", scene["label"] + 1, scene["instance"] + 1)
    semantic, instance = read_kitti_labels(path2)
    assert (semantic - 1 == scene["label"]).all() and (instance - 1 == scene["instance"]).all()
    scan = write_kitti_scan(tmp_path / "000000.bin", scene["xyz"], intensity=scene["rgb"][:, 0] / 255)
    xyz, intensity = read_kitti_scan(scan)
    assert np.array_equal(xyz, scene["xyz"].astype(np.float32)) and intensity.shape == (len(xyz),)


def test_semantickitti_bad_files(tmp_path, scene):
    path = write_kitti_labels(tmp_path / "a.label", scene["label"] + 1)
    data = path.read_bytes()
    path.write_bytes(data[:-2])
    with pytest.raises(FileFormatError, match="truncated"):
        read_kitti_labels(path)
    path.write_bytes(data[:-4])
    with pytest.raises(FileFormatError, match=f"{len(scene['label']) - 1} labels but the scan has"):
        read_kitti_labels(path, num_points=len(scene["label"]))
    with pytest.raises(InputError, match="16 bits"):
        write_kitti_labels(tmp_path / "b.label", np.array([70000]))
    with pytest.raises(FileExistsError):
        write_kitti_labels(path, scene["label"] + 1)
    (tmp_path / "c.bin").write_bytes(b"\0" * 20)
    with pytest.raises(FileFormatError, match="16 bytes"):
        read_kitti_scan(tmp_path / "c.bin")


@pytest.mark.parametrize("binary", [True, False])
def test_pcd_round_trip(tmp_path, scene, binary):
    path = write_pcd_labels(tmp_path / "s.pcd", scene["xyz"], scene["label"], scene["instance"], scene["rgb"],
                            binary=binary)
    cloud, label, instance = read_pcd_labels(path)
    assert (label == scene["label"]).all() and (instance == scene["instance"]).all()
    assert (cloud.rgb == scene["rgb"]).all()
    assert np.allclose(cloud.xyz, scene["xyz"], atol=1e-6)
    header = path.read_bytes()[:200].decode("ascii", "replace")
    assert "FIELDS x y z rgb label instance" in header


def test_pcd_without_label_field_is_refused(tmp_path, scene):
    path = write_pcd_labels(tmp_path / "s.pcd", scene["xyz"], scene["label"])
    cloud, label, instance = read_pcd_labels(path)
    assert instance is None and (label == scene["label"]).all()
    with pytest.raises(FileFormatError, match="no 'semantic' field"):
        read_pcd_labels(path, field="semantic")
    with pytest.raises(InputError, match="labels must be"):
        write_pcd_labels(tmp_path / "t.pcd", scene["xyz"], scene["label"][:-1])


@pytest.mark.parametrize("suffix", [".las", ".laz"])
def test_las_round_trip_through_a_class_map(tmp_path, scene, suffix):
    cmap = load_class_map("scannet20")
    path = write_las_classes(tmp_path / f"s{suffix}", scene["xyz"], scene["label"], cmap, scene["rgb"])
    cloud, label = read_las_classes(path, cmap)
    assert (label == scene["label"]).all()
    # ScanNet20 has no ASPRS codes: its classes take user codes 64.. in class-map order.
    assert set(np.unique(cloud.extra["classification"])) <= {0, *range(64, 84)}


def test_las_uses_asprs_codes_where_a_class_maps(tmp_path, scene):
    kitti = load_class_map("semantickitti")
    ids = np.array(kitti.ids)
    labels = ids[np.abs(scene["instance"]) % len(ids)]
    path = write_las_classes(tmp_path / "k.las", scene["xyz"], labels, kitti)
    cloud, back = read_las_classes(path, kitti)
    assert (back == labels).all()
    codes = cloud.extra["classification"]
    assert (codes[labels == kitti.by_name("building").id] == 6).all()
    assert (codes[labels == kitti.by_name("vegetation").id] == 5).all()
    with pytest.raises(InputError, match="not in class map"):
        write_las_classes(tmp_path / "bad.las", scene["xyz"], labels + 1000, kitti)


def test_scannet_json_round_trip(tmp_path, scene):
    cmap = load_class_map("scannet20")
    segs, agg = write_scannet_labels(tmp_path, "scene0011_00", scene["instance"], scene["label"], cmap)
    assert segs.name == "scene0011_00_vh_clean_2.0.010000.segs.json"
    assert agg.name == "scene0011_00.aggregation.json"
    assert scannet_paths(tmp_path, "scene0011_00") == (segs, agg)
    back = read_scannet_labels(segs, agg, num_points=len(scene["xyz"]), class_map=cmap)
    assert (back.instance == scene["instance"]).all()
    # Each object is named by the class of most of its points: compare per object.
    for obj in np.unique(scene["instance"][scene["instance"] >= 0]):
        values, counts = np.unique(scene["label"][scene["instance"] == obj], return_counts=True)
        majority = values[np.argmax(counts)]
        if majority >= 0:
            assert back.object_names[int(obj)] == cmap.by_id(int(majority)).name
            assert (back.semantic[scene["instance"] == obj] == majority).all()
    groups = json.loads(agg.read_text())["segGroups"]
    objects = np.unique(scene["instance"][scene["instance"] >= 0])
    assert {g["objectId"] for g in groups} == set(objects.tolist())


def test_scannet_json_with_an_over_segmentation(tmp_path, scene):
    inst = scene["instance"]
    segments = np.where(inst >= 0, inst * 2 + (np.arange(len(inst)) % 2), 10_000)
    segs, agg = write_scannet_labels(tmp_path, "s", inst, segments=segments)
    back = read_scannet_labels(segs, agg)
    assert (back.instance == inst).all() and set(back.object_names.values()) == {"object"}
    mixed = segments.copy()
    mixed[np.flatnonzero(inst == inst.max())[0]] = segments[np.flatnonzero(inst == 0)[0]]
    with pytest.raises(InputError, match="whole segments"):
        write_scannet_labels(tmp_path / "m", "s", inst, segments=mixed)


def test_scannet_json_bad_files(tmp_path, scene):
    segs, agg = write_scannet_labels(tmp_path, "s", scene["instance"])
    with pytest.raises(FileFormatError, match="points"):
        read_scannet_labels(segs, agg, num_points=5)
    agg.write_text('{"segGroups": [{"objectId": 1}]}')
    with pytest.raises(FileFormatError, match="segGroup 0 needs 'segments'"):
        read_scannet_labels(segs, agg)
    segs.write_text("[1, 2")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        read_scannet_labels(segs, agg)


# ------------------------------------------------------------------------ one entry point per format


@pytest.mark.parametrize("fmt", ["semantickitti", "pcd", "las", "scannet"])
def test_label_files_round_trip_with_their_class_map(tmp_path, scene, fmt):
    from pointsam.io.labelformats import read_label_files, write_label_files

    # ScanNet20 ids shifted by one so id 0 is free for SemanticKITTI's 'unlabeled'.
    cmap = load_class_map("scannet20")
    cmap = type(cmap)([{"id": e.id + 1, "name": e.name, "color": e.color} for e in cmap], name="scannet20+1")
    labels = np.where(scene["label"] >= 0, scene["label"] + 1, -1)
    paths = write_label_files(fmt, tmp_path, "scan", scene["xyz"], labels, scene["instance"], cmap,
                              scene["rgb"])
    assert all(p.is_file() for p in paths) and paths[-1].name == "scan.classes.yaml"
    back = read_label_files(fmt, tmp_path, "scan", num_points=len(labels))
    assert back.class_map == cmap
    if fmt == "scannet":  # objects carry the class of most of their points; unlabelled points: -1
        assert (back.instance == scene["instance"]).all()
        assert (back.labels[scene["instance"] < 0] == -1).all()
        for obj in np.unique(scene["instance"][scene["instance"] >= 0]):
            values, counts = np.unique(labels[scene["instance"] == obj], return_counts=True)
            assert (back.labels[scene["instance"] == obj] == values[np.argmax(counts)]).all()
    else:
        assert (back.labels == labels).all()
        if fmt != "las":  # LAS classification holds classes only
            assert (back.instance == scene["instance"]).all()
    with pytest.raises(FileExistsError, match="scan"):
        write_label_files(fmt, tmp_path, "scan", scene["xyz"], labels, scene["instance"], cmap)


def test_label_files_refuse_what_the_format_cannot_hold(tmp_path, scene):
    from pointsam.io.labelformats import read_label_files, write_label_files

    cmap = load_class_map("scannet20")  # id 0 is 'wall'
    with pytest.raises(InputError, match="unlabelled points as class 0"):
        write_label_files("semantickitti", tmp_path, "s", scene["xyz"], scene["label"], scene["instance"],
                          cmap)
    with pytest.raises(InputError, match="unknown label format"):
        write_label_files("ply2", tmp_path, "s", scene["xyz"], scene["label"], scene["instance"], cmap)
    with pytest.raises(FileFormatError, match="missing label file"):
        read_label_files("pcd", tmp_path, "s")
