"""Hostile and careless inputs to the dataset format, the dataset writer and the SAM loader (issue 13).

Each case is a small generated file; the expected outcome is a clear error (FileFormatError,
CheckpointError) or the user's files left alone, never a traceback, an exhausted memory or a file
opened outside the dataset folder.
"""

from __future__ import annotations

import json
import os
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import pointsam.data.dataset as dataset_module
from pointsam.data import DatasetWriter, LabelledCloud, PointCloudDataset
from pointsam.errors import CheckpointError, FileFormatError


def _cloud(n: int = 20, seed: int = 0, name: str = "c") -> LabelledCloud:
    xyz = np.random.default_rng(seed).normal(size=(n, 3))
    return LabelledCloud(xyz=xyz, masks=[np.arange(n // 2)], names=["half"], name=name, category="Toy")


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A .npy v1.0 header for `shape` (the data after it is whatever the caller appends)."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin1")
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return path


def _good_members() -> dict[str, bytes]:
    return {"mask_indices": _npy_header((1,), "<i4") + np.zeros(1, "<i4").tobytes(),
            "mask_offsets": _npy_header((2,), "<i8") + np.array([0, 1], "<i8").tobytes()}


# ------------------------------------------------------------------------------ npz size bombs


def test_npz_claiming_300m_points_is_refused_before_inflating(tmp_path):
    """A 300M x 3 float32 xyz (3.6 GB) announced in the header: refused from the header alone."""
    bomb = _write_npz(tmp_path / "bomb.npz", {"xyz": _npy_header((300_000_000, 3)) + bytes(4096),
                                              **_good_members()})
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"bomb.npz: 300,000,000 points; .*at most"):
            LabelledCloud.load(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024**2  # numpy's allocations are traced: nothing near 3.6 GB was reserved


def test_real_deflated_zeros_over_the_byte_limit_are_refused(tmp_path, monkeypatch):
    """A genuine deflate bomb in miniature: 12 MB of zeros in a ~12 kB file, limit lowered to 4 MB."""
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, xyz=np.zeros((1_000_000, 3), np.float32), mask_indices=np.zeros(1, np.int32),
                        mask_offsets=np.array([0, 1]))
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(dataset_module, "MAX_CLOUD_BYTES", 4 * 1024**2)
    with pytest.raises(FileFormatError, match=r"zeros.npz: its arrays would take .* at most"):
        LabelledCloud.load(path)
    monkeypatch.setattr(dataset_module, "MAX_CLOUD_BYTES", 64 * 1024**2)
    monkeypatch.setattr(dataset_module, "MAX_POINTS", 999_999)
    with pytest.raises(FileFormatError, match="1,000,000 points"):
        LabelledCloud.load(path)
    monkeypatch.setattr(dataset_module, "MAX_POINTS", 1_000_000)
    assert LabelledCloud.load(path).num_points == 1_000_000  # at the limits: read


def test_unknown_huge_members_are_never_inflated(tmp_path):
    """Keys the format does not use are ignored without reading them, whatever they claim."""
    path = _write_npz(tmp_path / "extra.npz", {
        "xyz": _npy_header((1, 3)) + np.zeros(3, "<f4").tobytes(), **_good_members(),
        "junk": _npy_header((10**12,)) + bytes(16)})
    cloud = LabelledCloud.load(path)
    assert cloud.num_points == 1 and cloud.num_masks == 1


@pytest.mark.parametrize("payload, what", [
    (b"not a zip at all", "not a zip"),
    (b"PK\x03\x04" + bytes(40), "zip header only"),
])
def test_garbage_npz_gives_a_clear_error(tmp_path, payload, what):
    path = tmp_path / "bad.npz"
    path.write_bytes(payload)
    with pytest.raises(FileFormatError, match="bad.npz: not a readable .npz"):
        LabelledCloud.load(path)


def test_npz_with_a_corrupt_deflate_stream(tmp_path):
    path = tmp_path / "flipped.npz"
    np.savez_compressed(path, xyz=np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32),
                        mask_indices=np.arange(10, dtype=np.int32), mask_offsets=np.array([0, 10]))
    data = bytearray(path.read_bytes())
    data[200:260] = bytes(60)  # inside the deflated xyz data
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="flipped.npz"):
        LabelledCloud.load(path)


# ------------------------------------------------------------------------------ dataset.json


def _dataset(root: Path, count: int = 2) -> Path:
    with DatasetWriter(root, name="toy") as writer:
        for i in range(count):
            writer.add(_cloud(seed=i, name=f"c{i}"), split="train")
    return root


def _edit_index(root: Path, **changes) -> None:
    meta = json.loads((root / "dataset.json").read_text())
    meta.update(changes)
    (root / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("file", ["../outside.npz", "sub/../../outside.npz", "/etc/passwd",
                                  "C:\\x.npz", "..\\outside.npz"])
def test_dataset_entries_may_not_escape_the_folder(tmp_path, file):
    root = _dataset(tmp_path / "ds")
    _cloud(name="outside").save(tmp_path / "outside.npz")  # a valid cloud the index must not reach
    meta = json.loads((root / "dataset.json").read_text())
    meta["clouds"][0]["file"] = file
    meta["splits"] = {"train": [file]}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match="points outside the dataset folder"):
        PointCloudDataset(root)


@pytest.mark.parametrize("change, message", [
    ({"clouds": [{"file": 5}]}, r"clouds\[0\].file must be a non-empty string"),
    ({"clouds": [{"file": None}]}, r"clouds\[0\].file must be a non-empty string"),
    ({"clouds": [{"file": ["c0.npz"]}]}, r"clouds\[0\].file must be a non-empty string"),
    ({"clouds": [{"file": "c0.npz", "category": {"a": 1}}]}, r"category must be a string"),
    ({"splits": ["train"]}, "'splits' must be an object"),
    ({"splits": {"train": "c0.npz"}}, "split 'train' must be a list"),
    ({"splits": {"train": [3]}}, "split 'train' must be a list"),
    ({"splits": {"train": ["nope.npz"]}}, "split 'train' names file.*nope.npz"),
    ({"num_clouds": "2"}, "num_clouds='2'"),
    ({"format_version": True}, "unsupported format_version True"),
    ({"format_version": 0}, "unsupported format_version 0"),
    ({"name": ["x"]}, "'name' must be a string"),
    ({"clouds": [{"file": "c0.npz"}, {"file": "c0.npz"}], "num_clouds": 2}, "listed twice"),
])
def test_dataset_index_type_errors_are_clear(tmp_path, change, message):
    root = _dataset(tmp_path / "ds")
    if "clouds" in change and "num_clouds" not in change:
        change["num_clouds"] = len(change["clouds"])
    if "clouds" in change and "splits" not in change:
        change["splits"] = {}
    _edit_index(root, **change)
    with pytest.raises(FileFormatError, match=message):
        PointCloudDataset(root, split="train")


def test_deeply_nested_index_json(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FileFormatError, match="dataset.json"):
        PointCloudDataset(root)


# ------------------------------------------------------------------------------ --overwrite


def test_overwrite_replaces_only_what_the_dataset_owns(tmp_path):
    root = _dataset(tmp_path / "ds", count=3)
    (root / "notes.txt").write_text("my notes")
    (root / "renders").mkdir()
    (root / "renders" / "a.png").write_bytes(b"png")
    _cloud(name="mine").save(root / "c0_mine.npz")  # the user's own cloud, not in dataset.json
    (root / "c0.npz").rename(root / "kept.npz")  # ... and one renamed away from the index
    meta = json.loads((root / "dataset.json").read_text())
    meta["clouds"][0]["file"] = "kept.npz"
    meta["splits"]["train"][0] = "kept.npz"
    (root / "dataset.json").write_text(json.dumps(meta))
    with DatasetWriter(root, name="new", overwrite=True) as writer:
        assert writer.add(_cloud(seed=7, name="c0_mine")) == "c0_mine_1.npz"  # never takes a user's name
        writer.add(_cloud(seed=8, name="c1"))
    assert (root / "notes.txt").read_text() == "my notes"
    assert (root / "renders" / "a.png").read_bytes() == b"png"
    assert LabelledCloud.load(root / "c0_mine.npz").num_points == 20
    assert not (root / "kept.npz").exists() and not (root / "c2.npz").exists()  # the old dataset's
    data = PointCloudDataset(root)
    assert data.files == ["c0_mine_1.npz", "c1.npz"] and data.meta["name"] == "new"
    assert np.allclose(data[1].xyz, _cloud(seed=8).xyz)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temporary or backup folders left


def test_overwrite_refuses_a_folder_that_is_not_a_pointsam_dataset(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.json").write_text(json.dumps({"format": "coco", "images": []}))
    (other / "data.npz").write_bytes(b"theirs")
    with pytest.raises(FileExistsError, match="not a pointsam dataset"):
        DatasetWriter(other, name="x", overwrite=True)
    assert (other / "data.npz").read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_overwrite_into_an_empty_folder_and_a_corrupt_index(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _dataset(empty)
    assert len(PointCloudDataset(empty)) == 2
    root = _dataset(tmp_path / "ds")
    meta = json.loads((root / "dataset.json").read_text())
    meta["clouds"] = "garbled"
    (root / "dataset.json").write_text(json.dumps(meta))
    with DatasetWriter(root, name="again", overwrite=True) as writer:  # owns only its dataset.json now
        assert writer.add(_cloud(name="c0")) == "c0_1.npz"
    assert (root / "c0.npz").exists() and PointCloudDataset(root).files == ["c0_1.npz"]


# ------------------------------------------------------------------------------ SAM folder


def test_sam_folder_with_a_pickled_weights_file(tmp_path):
    from pointsam.engine.sam2d import load_sam, tiny_sam

    folder = tmp_path / "sam"
    tiny_sam().config.save_pretrained(folder)
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": Payload()}))
    with pytest.raises(CheckpointError, match="pickled Python objects") as info:
        load_sam(folder)
    assert "weights_only=False" not in str(info.value)
    assert not marker.exists()
    (folder / "pytorch_model.bin").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="sam"):
        load_sam(folder)
