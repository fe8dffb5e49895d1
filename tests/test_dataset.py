"""The labelled-cloud .npz format, the dataset writer and reader, and their error messages."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from pointsam.data import DatasetWriter, LabelledCloud, PointCloudDataset
from pointsam.errors import FileFormatError, InputError


def make_cloud(n: int = 50, seed: int = 0, category: str = "Chair", name: str = "c") -> LabelledCloud:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    masks = [np.arange(n), np.array([3, 1, 2]), np.arange(0, n, 7)]
    return LabelledCloud(xyz=xyz, masks=masks, rgb=rgb, names=["all", "leg", "seat/back"],
                         levels=np.array([0, 1, 2]), category=category, source="test", name=name)


def test_round_trip(tmp_path):
    cloud = make_cloud()
    path = tmp_path / "one.npz"
    cloud.save(path)
    back = LabelledCloud.load(path)
    np.testing.assert_array_equal(back.xyz, cloud.xyz)
    np.testing.assert_array_equal(back.rgb, cloud.rgb)
    assert back.names == ["all", "leg", "seat/back"]
    assert back.levels.tolist() == [0, 1, 2]
    assert back.category == "Chair" and back.source == "test" and back.name == "one"
    assert [m.tolist() for m in back.masks] == [m.tolist() for m in cloud.masks]
    assert back.masks[1].tolist() == [1, 2, 3]  # sorted on construction
    dense = back.dense_masks()
    assert dense.shape == (3, 50) and dense.dtype == bool and dense[1].sum() == 3
    with np.load(path, allow_pickle=False) as npz:
        assert npz["xyz"].dtype == np.float32 and npz["rgb"].dtype == np.uint8
        assert npz["mask_indices"].dtype == np.int32 and npz["mask_offsets"].dtype == np.int64
        assert npz["mask_offsets"].tolist() == [0, 50, 53, 53 + len(range(0, 50, 7))]
        assert npz["mask_names"].dtype.kind == "U" and npz["category"].shape == ()


def test_minimal_hand_written_file(tmp_path):
    path = tmp_path / "hand.npz"
    np.savez(path, xyz=np.zeros((4, 3), np.float32), mask_indices=np.array([0, 2, 1], np.int32),
             mask_offsets=np.array([0, 2, 3], np.int64))
    cloud = LabelledCloud.load(path)
    assert cloud.num_masks == 2 and cloud.rgb is None and cloud.names is None
    assert cloud.dense_masks().tolist() == [[True, False, True, False], [False, True, False, False]]


def test_save_refuses_to_overwrite(tmp_path):
    path = tmp_path / "one.npz"
    make_cloud().save(path)
    with pytest.raises(FileExistsError, match="already exists"):
        make_cloud(seed=1).save(path)
    make_cloud(seed=1).save(path, overwrite=True)
    assert np.allclose(LabelledCloud.load(path).xyz, make_cloud(seed=1).xyz)


def test_validation_errors():
    xyz = np.zeros((5, 3), np.float32)
    with pytest.raises(InputError, match=r"outside \[0, 5\)"):
        LabelledCloud(xyz=xyz, masks=[np.array([0, 5])])
    bad = xyz.copy()
    bad[2, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        LabelledCloud(xyz=bad, masks=[])
    with pytest.raises(InputError, match="rgb"):
        LabelledCloud(xyz=xyz, masks=[], rgb=np.zeros((4, 3), np.uint8))
    with pytest.raises(InputError, match="mask names"):
        LabelledCloud(xyz=xyz, masks=[np.array([1])], names=["a", "b"])
    cloud = LabelledCloud(xyz=xyz, masks=[np.array([1]), np.array([], np.int64)], names=["a", "b"])
    assert cloud.num_masks == 1 and cloud.names == ["a"] and cloud.dropped_empty == 1


def test_corrupt_and_invalid_files(tmp_path):
    truncated = tmp_path / "trunc.npz"
    make_cloud().save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(FileFormatError, match="corrupt"):
        LabelledCloud.load(truncated)
    missing = tmp_path / "missing.npz"
    np.savez(missing, xyz=np.zeros((3, 3), np.float32))
    with pytest.raises(FileFormatError, match="missing required array.*mask_indices"):
        LabelledCloud.load(missing)
    out_of_range = tmp_path / "range.npz"
    np.savez(out_of_range, xyz=np.zeros((3, 3), np.float32), mask_indices=np.array([0, 9], np.int32),
             mask_offsets=np.array([0, 2]))
    with pytest.raises(FileFormatError, match=r"range.npz: mask 0 has point indices outside"):
        LabelledCloud.load(out_of_range)
    offsets = tmp_path / "offsets.npz"
    np.savez(offsets, xyz=np.zeros((3, 3), np.float32), mask_indices=np.array([0, 1], np.int32),
             mask_offsets=np.array([0, 5]))
    with pytest.raises(FileFormatError, match="mask_offsets"):
        LabelledCloud.load(offsets)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, xyz=np.zeros((3, 3), np.float32), mask_indices=np.array([0], np.int32),
             mask_offsets=np.array([0, 1]), mask_names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FileFormatError, match="pickled.npz: holds object"):
        LabelledCloud.load(pickled)
    empty = tmp_path / "empty.npz"
    np.savez(empty, xyz=np.zeros((3, 3), np.float32), mask_indices=np.array([0], np.int32),
             mask_offsets=np.array([0, 0, 1]))
    with pytest.warns(UserWarning, match="skipped 1 empty mask"):
        assert LabelledCloud.load(empty).num_masks == 1
    with pytest.raises(FileFormatError, match="no such file"):
        LabelledCloud.load(tmp_path / "nope.npz")


def write_dataset(root, overwrite=False, count=4):
    with DatasetWriter(root, name="toy", source="unit test", licence="CC0", overwrite=overwrite) as w:
        for i in range(count):
            cat = ["Chair", "Table"][i % 2]
            w.add(make_cloud(seed=i, category=cat, name=f"{cat}/{i}"),
                  split="val" if cat == "Table" else "train")
    return w


def test_writer_and_reader(tmp_path):
    root = tmp_path / "ds"
    writer = write_dataset(root)
    assert writer.num_masks == 12
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["format"] == "pointsam-dataset" and meta["format_version"] == 1
    assert meta["num_clouds"] == 4 and meta["licence"] == "CC0" and meta["source"] == "unit test"
    assert meta["clouds"][0]["file"] == "Chair_0.npz"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    ds = PointCloudDataset(root)
    assert len(ds) == 4 and ds.categories == ["Chair", "Table", "Chair", "Table"]
    np.testing.assert_array_equal(ds[1].xyz, make_cloud(seed=1).xyz)
    assert ds[3].category == "Table" and sum(1 for _ in ds) == 4
    train, val = ds.split_by_category(["Table"])
    assert len(train) == 2 and len(val) == 2 and set(val.categories) == {"Table"}
    assert PointCloudDataset(root, split="val").files == val.files
    with pytest.raises(InputError, match="unknown categories"):
        ds.split_by_category(["Sofa"])
    with pytest.raises(InputError, match="no split"):
        PointCloudDataset(root, split="test")


def test_writer_refuses_to_overwrite(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, count=2)
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        DatasetWriter(root, name="again")
    write_dataset(root, overwrite=True, count=3)
    assert len(PointCloudDataset(root)) == 3
    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a pointsam dataset"):
        DatasetWriter(other, name="x", overwrite=True)
    assert (other / "keep.jpg").exists()


def test_writer_failure_leaves_old_dataset(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, count=2)
    with pytest.raises(RuntimeError):
        with DatasetWriter(root, name="broken", overwrite=True) as w:
            w.add(make_cloud())
            raise RuntimeError("conversion failed")
    assert len(PointCloudDataset(root)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_invalid_dataset_index(tmp_path):
    with pytest.raises(FileFormatError, match="not a pointsam dataset"):
        PointCloudDataset(tmp_path)
    root = tmp_path / "ds"
    write_dataset(root, count=2)
    (root / "Table_1.npz").unlink()
    with pytest.raises(FileFormatError, match="missing cloud file.*Table_1.npz"):
        PointCloudDataset(root)
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        PointCloudDataset(root)
    (root / "dataset.json").write_text(json.dumps({"format": "pointsam-dataset", "format_version": 99}))
    with pytest.raises(FileFormatError, match="unsupported format_version 99"):
        PointCloudDataset(root)


def test_writer_counts_empty_masks(tmp_path):
    cloud = LabelledCloud(xyz=np.zeros((3, 3)), masks=[np.array([0]), np.zeros(0, np.int64)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with DatasetWriter(tmp_path / "ds", name="e") as w:
            w.add(cloud)
    assert w.dropped_empty == 1 and any("1 empty mask" in str(c.message) for c in caught)
