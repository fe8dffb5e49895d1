"""`pointsam engine` end to end on a shared mesh with a tiny random SAM and Point-SAM, resumed; and
`pointsam eval --baseline mv-sam` on a tiny dataset."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pointsam.checkpoint import save_model
from pointsam.cli import main
from pointsam.data.dataset import DatasetWriter, LabelledCloud, PointCloudDataset
from pointsam.engine.sam2d import tiny_sam

from conftest import DATA, require, tiny_model

MESH = DATA / "partnet_mobility" / "Faucet" / "1280"
# a random SAM and Point-SAM agree on nothing: accept every consistent-enough proposal
LENIENT = ["--pred-iou-thresh", "-100", "--stability-thresh", "0", "--iou-threshold", "0",
           "--refine-threshold", "0", "--min-on-object", "0", "--min-pixels", "4"]
SMALL = ["--views", "3", "--image-size", "48", "--num-points", "512", "--points-per-side", "2",
         "--max-prompts", "2", "--no-progress"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_model(tiny_model(seed=0), root / "psam.safetensors")
    tiny_sam(seed=0).save_pretrained(root / "sam")
    return root


@pytest.mark.slow
def test_engine_end_to_end_and_resume(models, tmp_path, capsys):
    meshes = tmp_path / "meshes" / "Faucet"
    meshes.mkdir(parents=True)
    (meshes / "1280").symlink_to(require(MESH))
    out = tmp_path / "pseudo"
    args = ["engine", str(tmp_path / "meshes"), "--sam-checkpoint", str(models / "sam"), "--checkpoint",
            str(models / "psam.safetensors"), "--config", "auto", "--out", str(out), *SMALL, *LENIENT]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "1 meshes labelled" in first and "1/1 meshes done" in first
    data = PointCloudDataset(out)
    assert data.files == ["Faucet_1280.npz"] and data.categories == ["Faucet"]
    cloud = data[0]
    assert cloud.num_points == 512 and cloud.rgb is not None and cloud.num_masks >= 1
    assert all(name.startswith("view") for name in cloud.names)
    with np.load(out / "Faucet_1280.npz") as npz:
        assert len(npz["mask_view"]) == cloud.num_masks and (npz["mask_iou"] > 0).all()
    from pointsam.train.sampling import make_sample  # what the training command does with a cloud

    sample = make_sample(cloud, 256, 2, np.random.default_rng(0))
    assert sample.gt.shape == (2, 256) and sample.gt.any(axis=1).all()
    assert main(args) == 0  # resumed: nothing to redo
    assert "0 meshes labelled" in capsys.readouterr().out
    changed = [a if a != "512" else "600" for a in args]
    assert main(changed) == 2
    assert "other settings" in capsys.readouterr().err


def test_engine_needs_a_local_sam(tmp_path, capsys):
    out = tmp_path / "o"
    mesh = str(require(MESH))
    assert main(["engine", mesh, "--sam-checkpoint", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not a SAM checkpoint folder" in capsys.readouterr().err
    assert not out.exists()  # a failed start leaves nothing that would block the corrected rerun
    pickled = tmp_path / "pickled"
    tiny_sam().config.save_pretrained(pickled)
    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": _Payload()}))
    assert main(["engine", mesh, "--sam-checkpoint", str(pickled), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickled Python objects" in err and "weights_only" not in err
    assert not out.exists()


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_eval_mv_sam_baseline(models, tmp_path, capsys):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(800, 3))
    masks = [np.flatnonzero(xyz[:, 0] > 0), np.flatnonzero(xyz[:, 1] > 0.5)]
    with DatasetWriter(tmp_path / "ds", name="blobs") as writer:
        writer.add(LabelledCloud(xyz=xyz, rgb=(rng.random((800, 3)) * 255).astype(np.uint8), masks=masks,
                                 name="blob", category="Blob"))
    out = tmp_path / "report"
    assert main(["eval", str(tmp_path / "ds"), "--baseline", "mv-sam", "--sam-checkpoint",
                 str(models / "sam"), "--out", str(out), "--max-clicks", "2"]) == 0
    import json

    report = json.loads((out / "results.json").read_text())
    assert len(report["objects"]) == 2 and all(len(o["ious"]) == 2 for o in report["objects"])
    assert all(0.0 <= v <= 1.0 for o in report["objects"] for v in o["ious"])
    assert "MV-SAM" in (out / "report.md").read_text()
    assert main(["eval", str(tmp_path / "ds"), "--baseline", "mv-sam", "--out", str(tmp_path / "r2")]) == 2
    assert "needs --sam-checkpoint" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "ds"), "--baseline", "mv-sam", "--sam-checkpoint",
                 str(models / "sam"), "--views", "2", "--out", str(tmp_path / "r3")]) == 2
    assert "--views is for Point-SAM models" in capsys.readouterr().err
