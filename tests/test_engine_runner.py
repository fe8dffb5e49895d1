"""Engine runs: mesh discovery, sharding over ranks, resume after a stop, failures, the dataset index."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from pointsam.data.dataset import LabelledCloud, PointCloudDataset
from pointsam.engine.lifting import LiftSettings
from pointsam.engine.runner import (
    EngineOutput,
    EngineSettings,
    MeshItem,
    dist_rank,
    find_meshes,
    run_shard,
    shard,
)
from pointsam.engine.sam2d import Masks2D
from pointsam.errors import InputError


class WholeObject2D:
    """2D proposals: the object's silhouette; prompts answered with it too."""

    def set_images(self, images):
        self.fg = (images < 250).any(-1)

    def predict(self, view, points, labels, mask_input=None, multimask=True):
        return Masks2D(np.where(self.fg[view], 5.0, -5.0)[None].astype(np.float32), np.ones(1))

    def generate(self, view):
        return [(self.fg[view], 0.9)]


class WholeCloud3D:
    """Point-SAM stand-in: every prompt selects every point; can fail or stop on chosen calls."""

    def __init__(self, fail_on: int | None = None, interrupt_on: int | None = None):
        self.clouds = 0
        self.fail_on, self.interrupt_on = fail_on, interrupt_on

    def set_point_cloud(self, xyz, rgb=None):
        self.clouds += 1
        if self.clouds == self.fail_on:
            raise ValueError("broken mesh")
        if self.clouds == self.interrupt_on:
            raise KeyboardInterrupt
        self.n = len(xyz)

    def predict(self, point_coords=None, point_labels=None, mask_input=None, multimask_output=True, *,
                point_indices=None):
        logits = np.full((3 if multimask_output else 1, self.n), 3.0, np.float32)
        return logits > 0, np.ones(len(logits), np.float32), logits


@pytest.fixture()
def meshes(tmp_path):
    root = tmp_path / "meshes"
    for i, (cat, shape) in enumerate([("Box", (1, 2, 1)), ("Box", (1, 1, 3)), ("Ball", None)]):
        (root / cat).mkdir(parents=True, exist_ok=True)
        mesh = trimesh.creation.icosphere(2) if shape is None else trimesh.creation.box(extents=shape)
        mesh.export(root / cat / f"m{i}.obj")
    obj = root / "Lamp" / "77" / "textured_objs"
    obj.mkdir(parents=True)
    trimesh.creation.box(extents=(1, 1, 1)).export(obj / "a.obj")
    trimesh.creation.cylinder(0.2, 2).export(obj / "b.obj")
    return root


SETTINGS = EngineSettings(views=3, image_size=32, num_points=300, lift=LiftSettings(min_pixels=8))


def test_find_meshes_and_shards(meshes, monkeypatch):
    items = find_meshes(meshes)
    assert [i.id for i in items] == ["Ball_m2", "Box_m0", "Box_m1", "Lamp_77"]
    assert [i.category for i in items] == ["Ball", "Box", "Box", "Lamp"]
    assert items[-1].path == meshes / "Lamp" / "77"  # an object folder is one item
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(i.id for p in parts for i in p) == sorted(i.id for i in items)
    assert not set(parts[0]) & set(parts[1])
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert dist_rank() == (2, 3)
    with pytest.raises(InputError, match="rank"):
        shard(items, 3, 3)
    with pytest.raises(InputError, match="no meshes"):
        find_meshes(_empty(meshes))


def _empty(root):
    path = root.parent / "empty"
    path.mkdir()
    return path


def test_two_ranks_resume_and_failures(meshes, tmp_path):
    items = find_meshes(meshes)
    out = EngineOutput(tmp_path / "ds")
    out.prepare(SETTINGS.to_dict())
    # rank 0 is stopped (Ctrl-C) on its second mesh
    with pytest.raises(KeyboardInterrupt):
        run_shard(shard(items, 0, 2), out, WholeCloud3D(interrupt_on=2), WholeObject2D(), SETTINGS, False)
    assert [r["id"] for r in out.records()] == ["Ball_m2"]
    # rank 1: its first mesh fails, the run goes on
    log = []
    stats = run_shard(shard(items, 1, 2), out, WholeCloud3D(fail_on=1), WholeObject2D(), SETTINGS, False,
                      log.append)
    assert stats == {"skipped_done": 0, "done": 1, "failed": 1, "masks": 1}
    assert "Box_m0" in log[0] and "broken mesh" in log[0]
    assert out.records("failed")[0]["error"] == "ValueError: broken mesh"
    # resume: finished meshes are not redone, the interrupted and the failed ones are
    again = EngineOutput(tmp_path / "ds")
    again.prepare(SETTINGS.to_dict())
    predictor = WholeCloud3D()
    stats = run_shard(items, again, predictor, WholeObject2D(), SETTINGS, False)
    assert stats["skipped_done"] == 2 and stats["done"] == 2 and predictor.clouds == 2
    assert again.records("failed") == []
    meta = again.write_index("pseudo")
    data = PointCloudDataset(tmp_path / "ds")
    assert len(data) == meta["num_clouds"] == 4
    cloud = data[data.files.index("Lamp_77.npz")]
    assert cloud.category == "Lamp" and cloud.num_masks == 1 and cloud.num_points == 300
    assert cloud.masks[0].size == 300  # the whole object
    with np.load(tmp_path / "ds" / "Lamp_77.npz") as npz:
        assert set(npz.files) >= {"mask_view", "mask_proposal", "mask_iou", "mask_sam_score"}
    record = json.loads((tmp_path / "ds" / ".engine" / "done" / "Lamp_77.json").read_text())
    assert record["mesh"].endswith("77") and record["masks"][0]["view"] == 0


def test_output_folder_rules(meshes, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a `pointsam engine` output"):
        EngineOutput(other).prepare(SETTINGS.to_dict())
    out = EngineOutput(tmp_path / "ds")
    out.prepare(SETTINGS.to_dict())
    out.start()
    changed = EngineSettings(views=4, image_size=32, num_points=300).to_dict()
    with pytest.raises(InputError, match="other settings.*views"):
        EngineOutput(tmp_path / "ds").prepare(changed)
    with pytest.raises(InputError, match="several ranks"):
        EngineOutput(tmp_path / "ds").prepare(changed, overwrite=True, may_reset=False)
    out.save(MeshItem("x", tmp_path / "x.obj", ""), LabelledCloud(xyz=np.zeros((3, 3)), masks=[[0]]), [], 1.0)
    LabelledCloud(xyz=np.ones((3, 3)), masks=[[1]]).save(tmp_path / "ds" / "mine.npz")
    (tmp_path / "ds" / "notes.txt").write_text("also mine")
    fresh = EngineOutput(tmp_path / "ds")
    fresh.prepare(changed, overwrite=True)
    assert (tmp_path / "ds" / "x.npz").exists()  # nothing is reset before the run starts
    fresh.start()
    assert not (tmp_path / "ds" / "x.npz").exists() and not fresh.records("done")
    assert (tmp_path / "ds" / "notes.txt").read_text() == "also mine"  # only the run's own files go
    assert LabelledCloud.load(tmp_path / "ds" / "mine.npz").num_masks == 1
    assert json.loads((tmp_path / "ds" / ".engine" / "settings.json").read_text()) == changed
    assert (other / "notes.txt").read_text() == "mine"  # the foreign folder was left alone


def test_a_start_that_fails_before_the_run_leaves_nothing(tmp_path):
    """Issue 16: prepare() only checks; a failed model load after it must not block a corrected rerun."""
    root = tmp_path / "ds"
    out = EngineOutput(root)
    out.prepare(SETTINGS.to_dict())  # ... then loading the SAM folder fails: the run never starts
    assert not root.exists()
    corrected = EngineSettings(views=2, image_size=32, num_points=300, models={"sam": "the right one"})
    again = EngineOutput(root)
    again.prepare(corrected.to_dict())
    stats = run_shard([], again, WholeCloud3D(), WholeObject2D(), corrected, False)
    assert stats["done"] == 0
    assert json.loads((root / ".engine" / "settings.json").read_text())["models"] == {"sam": "the right one"}
    with pytest.raises(RuntimeError, match="prepare"):
        EngineOutput(tmp_path / "other").start()
