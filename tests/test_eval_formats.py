"""The paper's evaluation sets in their published layouts, as fixtures built from real data:
AGILE3D benchmark folders (scans/ + val_list.json, single/crops), ScanObjectNN h5 with masks,
PartNet-Mobility fused 12-view clouds, and the Table 3 layout of the results."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import trimesh
from plyfile import PlyData, PlyElement
from scipy.spatial import cKDTree

from pointsam.data.converters.agile3d import convert_agile3d, kitti_to_y_up, read_agile3d_ply
from pointsam.data.converters.scanobjectnn import CLASSES, convert_scanobjectnn
from pointsam.data.dataset import DatasetWriter, PointCloudDataset
from pointsam.errors import FileFormatError, InputError

SCENE = "scene0011_00"


@pytest.fixture(scope="module")
def scene(data_dir):
    """Every 25th point of a real ScanNet scene: xyz, rgb, ScanNet20 class, instance (-1 = none)."""
    root = data_dir / "scannet" / SCENE
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    keep = slice(0, None, 25)
    return {k: np.load(root / f"{f}.npy")[keep] for k, f in
            (("xyz", "coord"), ("rgb", "color"), ("label", "segment20"), ("instance", "instance"))}


def write_agile3d_ply(path, xyz, rgb, label):
    """An AGILE3D PLY: binary little-endian x y z (float) R G B (uchar) label (int)."""
    vertex = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("R", "u1"), ("G", "u1"),
                                       ("B", "u1"), ("label", "i4")])
    for i, c in enumerate("xyz"):
        vertex[c] = xyz[:, i]
    for i, c in enumerate("RGB"):
        vertex[c] = rgb[:, i]
    vertex["label"] = label
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(path))


def big_objects(scene, n):
    """`n` furniture-sized objects: the largest after the walls and floors (crops stay small)."""
    ids, counts = np.unique(scene["instance"][scene["instance"] >= 0], return_counts=True)
    return [int(i) for i in ids[np.argsort(-counts)][6:6 + n]]


@pytest.fixture(scope="module")
def agile3d(tmp_path_factory, scene):
    """A benchmark folder in AGILE3D's published layout, built from the real scene."""
    root = tmp_path_factory.mktemp("bench") / "S3DIS"
    label = np.where(scene["instance"] >= 0, scene["instance"] + 1, -1)  # ids from 1; -1 = none
    write_agile3d_ply(root / "scans" / f"{SCENE}.ply", scene["xyz"], scene["rgb"], label)
    chosen = [i + 1 for i in big_objects(scene, 3)]
    (root / "val_list.json").write_text(json.dumps({
        f"{SCENE}_obj_3": {"obj": {"1": chosen[0], "2": chosen[1], "3": chosen[2]},
                           "clicks": {"1": [0], "2": [1], "3": [2]}},
        f"{SCENE}_obj_all": {},
    }))
    ids, classes = [], []
    for obj in chosen:
        inside = label == obj
        lo, hi = scene["xyz"][inside].min(0) - 0.5, scene["xyz"][inside].max(0) + 0.5
        crop = np.flatnonzero(((scene["xyz"] >= lo) & (scene["xyz"] <= hi)).all(axis=1))
        write_agile3d_ply(root / "single" / "crops" / SCENE / f"{SCENE}_crop_{obj}.ply",
                          scene["xyz"][crop], scene["rgb"][crop], inside[crop].astype(np.int32))
        ids.append([SCENE, str(obj)])
        values, counts = np.unique(scene["label"][inside], return_counts=True)
        classes.append(f"class{values[np.argmax(counts)]}")
    np.save(root / "single" / "object_ids.npy", np.array(ids))
    (root / "single" / "object_classes.txt").write_text("\n".join(classes) + "\n")
    return root, label, chosen, classes


def test_agile3d_multi_object_samples(agile3d, scene):
    root, label, chosen, _ = agile3d
    conversion = convert_agile3d(root)  # val_list.json present: the multi-object setup
    clouds = list(conversion)
    assert [c.name for c in clouds] == [f"{SCENE}_obj_3", f"{SCENE}_obj_all"]
    picked, everything = clouds
    assert np.array_equal(picked.xyz, scene["xyz"].astype(np.float32))
    assert np.array_equal(picked.rgb, scene["rgb"])
    assert [np.flatnonzero(label == o).tolist() for o in chosen] == [m.tolist() for m in picked.masks]
    assert everything.num_masks == len(np.unique(label[label > 0]))
    assert picked.category == "S3DIS" and conversion.report.converted == 2


def test_agile3d_single_object_crops(agile3d):
    root, _, chosen, classes = agile3d
    clouds = list(convert_agile3d(root, setup="single"))
    assert [c.name for c in clouds] == [f"{SCENE}_crop_{o}" for o in chosen]
    for cloud, cls, obj in zip(clouds, classes, chosen, strict=True):
        _, _, crop_label = read_agile3d_ply(root / "single" / "crops" / SCENE / f"{SCENE}_crop_{obj}.ply")
        assert cloud.num_masks == 1 and cloud.masks[0].tolist() == np.flatnonzero(crop_label).tolist()
        assert cloud.category == cls and cloud.names == [cls]
        assert cloud.num_masks < cloud.num_points  # a crop holds context around the object


def test_agile3d_kitti_rotation_makes_z_up_data_y_up(agile3d):
    root = agile3d[0]
    plain = next(iter(convert_agile3d(root, setup="single")))
    rotated = next(iter(convert_agile3d(root, setup="single", y_up=True)))
    assert np.allclose(rotated.xyz, plain.xyz @ kitti_to_y_up().T, atol=1e-5)
    assert np.allclose(rotated.xyz[:, 1], plain.xyz[:, 2], atol=1e-5)  # old z is the new y


def test_agile3d_bad_inputs(tmp_path, agile3d):
    root = agile3d[0]
    bad = tmp_path / "bad"
    (bad / "single" / "crops" / SCENE).mkdir(parents=True)
    (bad / "val_list.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="val_list.json: not valid JSON"):
        list(convert_agile3d(bad))
    crop = bad / "single" / "crops" / SCENE / f"{SCENE}_crop_1.ply"
    vertex = np.zeros(4, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(crop))
    conversion = convert_agile3d(bad, setup="single")
    assert list(conversion) == [] and "no label field" in conversion.report.skipped[0][1]
    (bad / "single" / "object_ids.npy").write_bytes((root / "single" / "object_ids.npy").read_bytes())
    (bad / "single" / "object_classes.txt").write_text("chair\n")
    with pytest.raises(FileFormatError, match="1 classes for 3 objects"):
        list(convert_agile3d(bad, setup="single"))
    with pytest.raises(InputError, match="setup must be"):
        convert_agile3d(root, setup="both")


# ----------------------------------------------------------------------------------- ScanObjectNN


@pytest.fixture(scope="module")
def scanobjectnn(tmp_path_factory, scene):
    """main_split/test_objectdataset.h5: data (S, 2048, 3), label (S,), mask (S, 2048; -1 = background)."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    data, labels, masks = [], [], []
    for k, obj in enumerate(big_objects(scene, 3)):
        inside = scene["instance"] == obj
        lo, hi = scene["xyz"][inside].min(0) - 0.3, scene["xyz"][inside].max(0) + 0.3
        crop = np.flatnonzero(((scene["xyz"] >= lo) & (scene["xyz"] <= hi)).all(axis=1))
        pick = rng.choice(crop, 2048, replace=len(crop) < 2048)
        data.append(scene["xyz"][pick])
        masks.append(np.where(inside[pick], obj, -1))
        labels.append(k + 4)
    path = tmp_path_factory.mktemp("sonn") / "main_split" / "test_objectdataset.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as h5:
        h5["data"] = np.array(data, np.float32)
        h5["label"] = np.array(labels, np.uint8)
        h5["mask"] = np.array(masks, np.int64)
    return path, np.array(data, np.float32), np.array(masks), labels


def test_scanobjectnn_h5_with_masks(scanobjectnn):
    path, data, masks, labels = scanobjectnn
    clouds = list(convert_scanobjectnn(path.parent.parent))  # a folder: every *.h5 under it
    assert len(clouds) == 3
    for cloud, pts, mask, label in zip(clouds, data, masks, labels, strict=True):
        assert np.array_equal(cloud.xyz, pts) and cloud.num_masks == 1
        assert cloud.masks[0].tolist() == np.flatnonzero(mask >= 0).tolist()
        assert cloud.category == CLASSES[label] and cloud.names == [CLASSES[label]]
    assert len(list(convert_scanobjectnn(path, limit=2))) == 2


def test_scanobjectnn_bad_inputs(tmp_path, scanobjectnn, monkeypatch):
    import h5py

    nomask = tmp_path / "nomask.h5"
    with h5py.File(nomask, "w") as h5:
        h5["data"] = scanobjectnn[1]
        h5["label"] = np.zeros(3, np.int64)
    with pytest.raises(FileFormatError, match="no per-point 'mask'"):
        list(convert_scanobjectnn(nomask))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(FileFormatError, match="not a readable HDF5"):
        list(convert_scanobjectnn(tmp_path / "junk.h5"))
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(InputError, match="needs h5py"):
        list(convert_scanobjectnn(scanobjectnn[0]))


# ------------------------------------------------------------------------- PartNet-Mobility eval clouds


def test_mobility_eval_cloud_labels_each_point_with_its_link(data_dir, tmp_path):
    from pointsam.data.converters.partnet_mobility import link_transforms, posed_mesh, read_urdf
    from pointsam.engine.evalclouds import convert_mobility_eval, mobility_eval_cloud

    obj = data_dir / "partnet_mobility" / "Faucet" / "1280"
    if not (obj / "mobility.urdf").is_file():
        pytest.skip(f"{obj} not found")
    cloud = mobility_eval_cloud(obj, num_points=1500, image_size=96, category="Faucet")
    assert cloud.num_points == 1500 and cloud.rgb is not None
    assert cloud.names == ["link_0:switch", "link_1:switch", "link_2:faucet_base"]
    owners = np.concatenate(cloud.masks)
    assert len(owners) == len(np.unique(owners)) == 1500  # every point in exactly one link mask
    # Each point lies on the surface of its own link: compare with dense samples of every link.
    urdf = read_urdf(obj / "mobility.urdf")
    mesh, link_of_face, _, links, _ = posed_mesh(urdf, link_transforms(urdf))
    scale = float(np.ptp(mesh.vertices, axis=0).max())
    surfaces = {}
    for name in cloud.names:
        part = mesh.submesh([np.flatnonzero(link_of_face == links.index(name.split(":")[0]))], append=True)
        surfaces[name] = cKDTree(trimesh.sample.sample_surface(part, 100_000, seed=0)[0])
    for name, idx in zip(cloud.names, cloud.masks, strict=True):
        own = surfaces[name].query(cloud.xyz[idx])[0]
        assert np.median(own) < 3e-3 * scale
        for other, tree in surfaces.items():
            if other != name:
                assert np.median(tree.query(cloud.xyz[idx])[0]) > 3 * np.median(own)
    # As a conversion: only the asked categories, written as a pointsam dataset.
    root = tmp_path / "pm"
    (root / "Faucet").mkdir(parents=True)
    (root / "Faucet" / "1280").symlink_to(obj)
    conversion = convert_mobility_eval(root, categories=["faucet"], points=800, image_size=64)
    with DatasetWriter(tmp_path / "eval", name="pm-eval", source=conversion.report.source) as writer:
        for c in conversion:
            writer.add(c)
    dataset = PointCloudDataset(tmp_path / "eval")
    assert len(dataset) == 1 and dataset[0].num_points == 800 and dataset[0].category == "Faucet"
    assert not conversion.report.skipped and "12 fused views" in dataset.meta["source"]
    with pytest.raises(InputError, match="no object of the categories"):
        list(convert_mobility_eval(root))  # the paper's held-out categories are not in this folder


# ----------------------------------------------------------------------------------- Table 3 layout


def test_agile3d_set_evaluates_into_a_table3_row(agile3d, tmp_path):
    import torch

    from pointsam.evaluation.interactive import evaluate_interactive, summarize
    from pointsam.evaluation.paper import TABLE3, table3_markdown, table3_row
    from pointsam.predictor import PointCloudPredictor

    from conftest import tiny_model

    with DatasetWriter(tmp_path / "s3dis", name="s3dis-single") as writer:
        for cloud in convert_agile3d(agile3d[0], setup="single"):
            writer.add(cloud)
    torch.manual_seed(0)
    dataset = PointCloudDataset(tmp_path / "s3dis")
    assert len(dataset) == 3
    results = evaluate_interactive(PointCloudPredictor(tiny_model()), dataset.subset([0, 2]), max_clicks=10)
    assert len(results) == 2 and all(len(r.ious) == 10 for r in results)
    summary = summarize(results)
    row = table3_row(summary)
    expected = [100 * np.mean([r.ious[k - 1] for r in results]) for k in (1, 3, 5, 7, 10)]
    assert np.allclose(row, expected)
    table = table3_markdown({"S3DIS": {"Point-SAM (tiny, random)": summary}})
    assert "| S3DIS | InterObject3D++ (paper) | 32.7 | 69.0 | 80.8 | - | 89.2 |" in table
    assert f"|  | **Point-SAM (tiny, random)** (this run) | {row[0]:.1f} |" in table
    assert "KITTI360" not in table and len(TABLE3) == 4 and len(table.splitlines()) == 2 + 4 + 1
