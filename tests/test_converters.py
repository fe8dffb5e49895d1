"""Dataset converters on the shared real data and on small synthetic files of the raw formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pointsam.cli import main
from pointsam.data import LabelledCloud, PointCloudDataset
from pointsam.data.converters import (
    ConversionReport,
    convert_partnet,
    convert_ply,
    convert_s3dis,
    convert_scannet,
    convert_scannet_pointcept,
    convert_semantickitti,
    convert_shapenet_part,
    from_instance_labels,
    partnet_object,
    scene_blocks,
)
from pointsam.errors import InputError
from pointsam.io import write_ply

from conftest import DATA, require

PARTNET = DATA / "partnet_mobility"
SCENE = DATA / "scannet" / "scene0011_00"


def need(path: Path) -> Path:
    return require(path)


# ------------------------------------------------------------------------------ real data


def _nodes(nodes: list[dict], prefix: str = "", level: int = 0) -> list[tuple[str, int, set[int]]]:
    """(path name, depth, leaf ids below) of every node of a PartNet hierarchy."""
    out = []
    for node in nodes:
        name = f"{prefix}/{node['name']}" if prefix else node["name"]
        children = node.get("children") or []
        below = _nodes(children, name, level + 1)
        direct = [ids for _, lv, ids in below if lv == level + 1]
        leaves = set().union(*direct) if children else {node["id"]}
        out += [(name, level, leaves), *below]
    return out


@pytest.mark.parametrize("obj", ["Faucet/1280", "StorageFurniture/45261", "Table/26608"])
def test_partnet_hierarchy_masks(obj):
    folder = need(PARTNET / obj)
    if not (folder / "point_sample").is_dir():
        pytest.skip(f"{obj} has no point sample")
    cloud = partnet_object(folder, category="X")
    labels = np.loadtxt(folder / "point_sample" / "label-10000.txt", dtype=np.int64)
    nodes = _nodes(json.loads((folder / "result.json").read_text()))
    assert cloud.num_points == 10000 and cloud.num_masks >= 2
    dense = cloud.dense_masks()
    assert len({m.tobytes() for m in dense}) == cloud.num_masks  # identical masks kept once
    node_masks = [(name, level, np.isin(labels, list(ids))) for name, level, ids in nodes]
    tree = dense[cloud.levels >= 0]
    for name, mask, level in zip(cloud.names, dense, cloud.levels, strict=True):
        if level >= 0:
            assert any(n == name and lv == level and np.array_equal(m, mask) for n, lv, m in node_masks)
        else:  # a mobility link: the union of its parts, different from every hierarchy mask
            assert name.startswith("link:") and not any(np.array_equal(mask, t) for t in tree)
    # every non-empty node mask (the union of its leaves' points) is represented exactly once
    assert {m.tobytes() for _, _, m in node_masks if m.any()} == {m.tobytes() for m in tree}
    assert dense[0].all() and cloud.levels[0] == 0  # the whole object comes first


def test_partnet_category_folder_and_index():
    faucets = need(PARTNET / "Faucet")
    conversion = convert_partnet(faucets)
    clouds = list(conversion)
    assert clouds and all(c.category == "Faucet" for c in clouds)
    assert conversion.report.converted == len(clouds)
    assert all(reason.startswith("no point_sample") for _, reason in conversion.report.skipped)
    assert len({c.name for c in clouds}) == len(clouds)


def test_scannet_pointcept_scene_and_blocks():
    need(SCENE)
    conversion = convert_scannet_pointcept(SCENE)
    (cloud,) = list(conversion)
    instance = np.load(SCENE / "instance.npy")
    ids = np.unique(instance[instance >= 0])
    assert cloud.num_masks == len(ids) and cloud.num_points == len(instance)
    assert cloud.rgb is not None and "chair" in cloud.names
    sizes = sorted(int((instance == i).sum()) for i in ids)
    assert sorted(len(m) for m in cloud.masks) == sizes
    report = ConversionReport()
    blocks = scene_blocks(cloud, block=3.0, stride=1.5, min_points=1000, min_mask_points=20, report=report)
    assert len(blocks) > 4
    lo = cloud.xyz[:, :2].min(axis=0)
    for block in blocks:
        extent = block.xyz[:, :2].max(axis=0) - block.xyz[:, :2].min(axis=0)
        assert np.all(extent <= 3.0 + 1e-5) and block.num_points >= 1000
        start = block.xyz[:, :2].min(axis=0) - lo  # blocks start on the 1.5 m grid
        assert np.all(start >= -1e-5)
        assert min(len(m) for m in block.masks) >= 20
        assert set(block.names) <= set(cloud.names)
    assert all("min_mask_points=20" in reason for _, reason in report.dropped_masks)


def test_scene_blocks_restrict_masks():
    xs, ys = np.meshgrid(np.arange(0, 6, 0.1), np.arange(0, 3, 0.1))
    xyz = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)]).astype(np.float32)
    labels = (xyz[:, 0] // 1).astype(int)  # one instance per metre in x
    labels[0] = -1
    cloud = from_instance_labels(xyz, None, labels, name="toy")
    report = ConversionReport()
    blocks = scene_blocks(cloud, block=3.0, stride=1.5, min_points=10, min_mask_points=31, report=report)
    assert [b.name for b in blocks] == ["toy_block_0_0", "toy_block_1_0", "toy_block_2_0"]
    for block in blocks:
        x0 = block.xyz[:, 0].min()
        for name, mask in zip(block.names, block.masks, strict=True):
            inst = int(name)
            expect = np.flatnonzero(block.xyz[:, 0] // 1 == inst)
            if inst == 0:
                expect = expect[~np.all(block.xyz[expect] == 0, axis=1)]
            np.testing.assert_array_equal(mask, expect)
        assert block.xyz[:, 0].max() <= x0 + 3.0 + 1e-6
    # the 30 points at x = 3.0 in the first block form a too-small piece of instance 3
    assert blocks[0].names == ["0", "1", "2"]
    assert any("toy_block_0_0: 3" in item for item, _ in report.dropped_masks)


# ------------------------------------------------------------------------ synthetic files


def test_from_instance_labels_and_ply(tmp_path):
    xyz = np.random.default_rng(0).normal(size=(30, 3))
    labels = np.repeat([-1, 4, 7], 10)
    cloud = from_instance_labels(xyz, None, labels, label_names={4: "cup"})
    assert cloud.names == ["cup", "7"] and [m.tolist() for m in cloud.masks] == [
        list(range(10, 20)), list(range(20, 30))]
    with pytest.raises(InputError, match="29 labels for 30 points"):
        from_instance_labels(xyz, None, labels[:29])
    write_ply(tmp_path / "a.ply", xyz, fields={"instance": labels.astype(np.int32)})
    write_ply(tmp_path / "b.ply", xyz, fields={"intensity": np.ones(30, np.float32)})
    conversion = convert_ply(tmp_path)
    (got,) = list(conversion)
    assert got.num_masks == 2 and got.name == "a"
    (item, reason), = conversion.report.skipped
    assert item.endswith("b.ply") and "no label field" in reason
    (other,) = list(convert_ply(tmp_path / "b.ply", field="intensity", ignore=-1))
    assert other.num_masks == 1


def test_shapenet_part(tmp_path):
    root = tmp_path / "shapenetcore_partanno_v0"
    (root / "03001627" / "points").mkdir(parents=True)
    (root / "03001627" / "points_label").mkdir()
    (root / "synsetoffset2category.txt").write_text("Chair\t03001627\nTable\t04379243\n")
    xyz = np.random.default_rng(1).normal(size=(12, 3))
    np.savetxt(root / "03001627" / "points" / "abc.pts", xyz, fmt="%.6f")
    np.savetxt(root / "03001627" / "points_label" / "abc.seg", np.repeat([1, 2, 3], 4), fmt="%d")
    np.savetxt(root / "03001627" / "points" / "nolabel.pts", xyz, fmt="%.6f")
    (root / "04379243").mkdir()
    rows = np.column_stack([xyz, np.zeros((12, 3)), np.repeat([0, 5], 6)])
    np.savetxt(root / "04379243" / "def.txt", rows, fmt="%.6f")
    conversion = convert_shapenet_part(root)
    clouds = {c.name: c for c in conversion}
    assert set(clouds) == {"Chair_abc", "Table_def"}
    assert clouds["Chair_abc"].names == ["1", "2", "3"] and clouds["Chair_abc"].category == "Chair"
    assert clouds["Table_def"].masks[1].tolist() == list(range(6, 12))
    assert [Path(i).name for i, _ in conversion.report.skipped] == ["nolabel.pts"]


def make_scannet_raw(root: Path) -> Path:
    scan = root / "scans" / "scene0000_00"
    scan.mkdir(parents=True)
    xyz = np.random.default_rng(2).uniform(0, 4, size=(40, 3))
    write_ply(scan / "scene0000_00_vh_clean_2.ply", xyz, np.full((40, 3), 200, np.uint8))
    seg = np.repeat([10, 11, 12, 13], 10)
    (scan / "scene0000_00_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"params": {}, "sceneId": "scene0000_00", "segIndices": seg.tolist()}))
    groups = [{"id": 0, "objectId": 0, "segments": [10, 12], "label": "chair"},
              {"id": 1, "objectId": 1, "segments": [13], "label": "table"},
              {"id": 2, "objectId": 2, "segments": [99], "label": "ghost"}]
    (scan / "scene0000_00.aggregation.json").write_text(
        json.dumps({"sceneId": "scannet.scene0000_00", "appId": "x", "segGroups": groups,
                    "segmentsFile": "scannet.scene0000_00_vh_clean_2.0.010000.segs.json"}))
    broken = root / "scans" / "scene0001_00"
    broken.mkdir()
    write_ply(broken / "scene0001_00_vh_clean_2.ply", xyz)
    return root


def test_scannet_raw(tmp_path):
    conversion = convert_scannet(make_scannet_raw(tmp_path))
    (cloud,) = list(conversion)
    assert cloud.name == "scene0000_00" and cloud.names == ["chair", "table"]
    assert cloud.masks[0].tolist() == [*range(0, 10), *range(20, 30)]
    assert cloud.masks[1].tolist() == list(range(30, 40)) and cloud.rgb[0].tolist() == [200] * 3
    assert "ghost" in conversion.report.dropped_masks[0][0]
    assert "scene0001_00" in conversion.report.skipped[0][0]
    assert "missing" in conversion.report.skipped[0][1]


def make_s3dis(root: Path) -> Path:
    ann = root / "Area_1" / "office_1" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "chair_1.txt").write_text("1.0 2.0 3.0 10 20 30\n1.5 2.5 3.5 11 21 31\n")
    (ann / "table_1.txt").write_text("0.0 0.0 0.5 100 100 100\n0.1 0.0 0.5 100 100 100\n"
                                     "0.2 0.0 0.5 10\x10 100 100\n0.3 0.0 0.5 100 100 100\n")
    (ann / "clutter_2.txt").write_text("")
    return root


def test_s3dis(tmp_path):
    conversion = convert_s3dis(make_s3dis(tmp_path))
    (cloud,) = list(conversion)
    assert cloud.name == "Area_1_office_1" and cloud.category == "Area_1"
    assert cloud.names == ["chair", "table"] and cloud.num_points == 5
    assert cloud.masks[1].tolist() == [2, 3, 4] and cloud.rgb[0].tolist() == [10, 20, 30]
    reasons = [reason for _, reason in conversion.report.dropped_masks]
    assert "skipped 1 malformed line(s)" in reasons and "no points" in reasons


def make_kitti(root: Path) -> Path:
    seq = root / "sequences" / "08"
    (seq / "velodyne").mkdir(parents=True)
    (seq / "labels").mkdir()
    points = np.random.default_rng(3).normal(size=(20, 4)).astype("<f4")
    points.tofile(seq / "velodyne" / "000000.bin")
    semantic = np.repeat([10, 10, 40, 30], 5).astype(np.uint32)
    instance = np.repeat([1, 2, 0, 1], 5).astype(np.uint32)
    (semantic | instance << 16).astype("<u4").tofile(seq / "labels" / "000000.label")
    points.tofile(seq / "velodyne" / "000001.bin")
    return root


def test_semantickitti(tmp_path):
    conversion = convert_semantickitti(make_kitti(tmp_path))
    (cloud,) = list(conversion)
    assert cloud.name == "08_000000" and cloud.num_points == 20
    assert cloud.names == ["car", "car", "person"]  # road (instance 0) has no instance mask
    assert [m.tolist() for m in cloud.masks] == [list(range(0, 5)), list(range(5, 10)),
                                                 list(range(15, 20))]
    assert conversion.report.skipped[0][0].endswith("000001.bin")


# ----------------------------------------------------------------------------------- CLI


def test_cli_convert(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["convert", "s3dis", str(make_s3dis(tmp_path / "src")), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 clouds with 2 masks" in printed and "malformed" in printed
    assert PointCloudDataset(out)[0].names == ["chair", "table"]
    assert main(["convert", "s3dis", str(tmp_path / "src"), "--out", str(out)]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert main(["convert", "semantickitti", str(make_kitti(tmp_path / "k")), "--out", str(out),
                 "--overwrite"]) == 0
    assert len(PointCloudDataset(out)) == 1
    assert main(["convert", "scannet", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_cli_convert_partnet_splits(tmp_path, capsys):
    need(PARTNET / "Faucet")
    out = tmp_path / "pm"
    src = tmp_path / "pm_src"
    src.mkdir()
    for cat, obj in (("Faucet", "1280"), ("Bottle", "3558")):
        (src / cat).mkdir()
        (src / cat / obj).symlink_to(need(PARTNET / cat / obj), target_is_directory=True)
    assert main(["convert", "partnet", str(src), "--out", str(out), "--val-categories", "Faucet"]) == 0
    capsys.readouterr()
    val = PointCloudDataset(out, split="val")
    assert val.categories == ["Faucet"] and PointCloudDataset(out, split="train").categories == ["Bottle"]
    cloud = val[0]
    assert isinstance(cloud, LabelledCloud) and cloud.names[0] == "faucet"
