"""Class maps: presets, JSON/YAML files (incl. SemanticKITTI's config), LAS codes, bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointsam.errors import FileFormatError, InputError
from pointsam.io.classmap import ClassEntry, ClassMap, load_class_map


def test_presets_have_the_published_ids_and_names():
    scannet = load_class_map("scannet20")
    assert len(scannet) == 20 and scannet.by_id(0).name == "wall"
    assert scannet.by_id(19).name == "otherfurniture"
    # the ids of the ScanNet scenes' segment20.npy (-1 = unlabelled): class i is the i-th ScanNet20 class
    assert scannet.names[:5] == ["wall", "floor", "cabinet", "bed", "chair"]
    assert scannet.ids == list(range(20))
    kitti = load_class_map("SemanticKITTI")
    assert kitti.by_name("car").id == 10 and kitti.by_id(259).name == "moving-other-vehicle"
    assert kitti.by_name("car").color == (100, 150, 245)  # semantic-kitti.yaml's BGR [245,150,100]
    assert kitti.by_name("building").las == 6 and kitti.by_name("road").las == 11
    las = load_class_map("asprs")
    assert las.by_name("ground").id == 2 == las.by_name("ground").las


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_file_round_trip(tmp_path, suffix):
    cmap = ClassMap([ClassEntry(0, "ground", (10, 20, 30), 2, key="q", stuff=True),
                     ClassEntry(5, "car", (1, 2, 3), key="1"), ClassEntry(7, "pole", (4, 5, 6))], name="mine")
    path = cmap.save(tmp_path / f"labels{suffix}")
    again = load_class_map(path)
    assert again == cmap and again.name == "mine"
    assert again.by_id(0).key == "q" and again.by_id(0).stuff and again.by_id(0).las == 2
    with pytest.raises(FileExistsError):
        cmap.save(path)


def test_semantickitti_yaml_is_read_with_bgr_colours(tmp_path):
    path = tmp_path / "semantic-kitti.yaml"
    path.write_text("labels:\n  0: unlabeled\n  10: car\ncolor_map:\n  0: [0, 0, 0]\n  10: [245, 150, 100]\n")
    cmap = load_class_map(path)
    assert cmap.ids == [0, 10] and cmap.by_id(10).color == (100, 150, 245)
    path.write_text("labels:\n  0: unlabeled\ncolor_map:\n  0: [0, 0, 0]\n  12: [245, 150, 100]\n")
    with pytest.raises(FileFormatError, match="color_map has class id.*12.*'labels' does not list"):
        load_class_map(path)


def test_las_codes_round_trip_and_user_codes():
    cmap = ClassMap([{"id": 0, "name": "ground", "las": 2}, {"id": 1, "name": "car"},
                     {"id": 2, "name": "tree", "las": 5}, {"id": 3, "name": "bench"}])
    labels = np.array([-1, 0, 1, 2, 3, 3, 1])
    codes = cmap.to_las(labels)
    assert codes.tolist() == [0, 2, 64, 5, 65, 65, 64]
    assert cmap.from_las(codes).tolist() == labels.tolist()
    assert cmap.colors(labels).shape == (7, 3)


def test_unknown_labels_and_names_are_named():
    cmap = load_class_map("scannet20")
    with pytest.raises(InputError, match="42"):
        cmap.colors(np.array([0, 42]))
    with pytest.raises(InputError, match="nosuch"):
        cmap.by_name("nosuch")


def test_duplicate_ids_names_and_codes_are_refused(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps({"classes": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}))
    with pytest.raises(FileFormatError, match="class id 1 is used twice"):
        load_class_map(path)
    with pytest.raises(InputError, match="class name 'a' is used twice"):
        ClassMap([{"id": 1, "name": "a"}, {"id": 2, "name": "a"}])
    with pytest.raises(InputError, match="LAS code 2 is used twice"):
        ClassMap([{"id": 1, "name": "a", "las": 2}, {"id": 2, "name": "b", "las": 2}])


@pytest.mark.parametrize("text, match", [
    ("{", "not valid JSON"),
    ('{"classes": [{"id": "one", "name": "a"}]}', "id must be an integer"),
    ('{"classes": [{"id": 1, "name": "a", "color": [1, 2]}]}', "color must be"),
    ('{"classes": [{"id": 1, "name": "a", "las": 300}]}', "las code"),
    ('{"stuff": 1}', "needs a 'classes' list"),
])
def test_bad_files_give_clear_errors(tmp_path, text, match):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=match):
        load_class_map(path)


def test_missing_file_names_the_presets(tmp_path):
    with pytest.raises(FileFormatError, match="scannet20"):
        load_class_map(tmp_path / "nope.yaml")


def test_the_app_format_is_read_and_the_map_grows_checked(tmp_path):
    path = tmp_path / "old.json"  # written by the annotation app before the class map moved to pointsam.io
    path.write_text(json.dumps({"format": "pointsam-classes", "version": 1, "classes": [
        {"id": 5, "name": "chair", "color": [188, 189, 34], "key": "5", "stuff": False},
        {"id": 2, "name": "floor", "color": [152, 223, 138], "key": "", "stuff": True}]}))
    cmap = load_class_map(path)
    assert cmap.get("floor").stuff and cmap.get("chair").key == "5" and cmap.get("nothing") is None
    added = cmap.extend(["chair", "pipe", "rail"])  # new names: ids above the highest
    assert [(e.id, e.name) for e in added] == [(6, "pipe"), (7, "rail")] and len(cmap) == 4
    before = cmap.entries
    with pytest.raises(InputError, match="key '5' is used twice"):
        cmap.add(ClassEntry(9, "sofa", (1, 2, 3), key="5"))
    with pytest.raises(InputError, match="key must be one character that is not"):
        cmap.add({"id": 9, "name": "sofa", "key": "z"})  # the app's own shortcut
    with pytest.raises(InputError, match="class id 6 is used twice"):
        cmap.entries = [*before, ClassEntry(6, "sofa", (1, 2, 3))]
    assert cmap.entries == before  # a refused change leaves the map as it was
    with pytest.raises(InputError, match="class 1: id must be an integer in 0..65535"):
        ClassMap([{"id": 70000, "name": "big"}])
