"""The `pointsam segment` command end to end, on the bundled example and shared data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData

from pointsam.checkpoint import save_model
from pointsam.cli import main

from conftest import tiny_model

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "pointsam" / "assets" / "example_table.ply"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_model(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_segment_example_writes_ply_mask(ckpt, tmp_path, capsys):
    out = tmp_path / "mask.ply"
    rc = main(["segment", str(EXAMPLE), "--point", "-0.25", "0.91", "0.1", "--negative", "0",
               "0.75", "0", "--checkpoint", str(ckpt), "--out", str(out), "--all-masks"])
    assert rc == 0
    v = PlyData.read(str(out))["vertex"]
    src = PlyData.read(str(EXAMPLE))["vertex"]
    assert len(v) == len(src)
    np.testing.assert_array_equal(v["x"], src["x"])
    np.testing.assert_array_equal(v["red"], src["red"])
    assert set(np.unique(v["mask"])) <= {0, 1}
    assert "mask_0" in v.data.dtype.names  # two clicks -> one mask
    assert "predicted IoU" in capsys.readouterr().out


def test_segment_npy_and_index_prompt(ckpt, tmp_path):
    out = tmp_path / "mask.npy"
    assert main(["segment", str(EXAMPLE), "--point-index", "10", "--checkpoint", str(ckpt),
                 "--out", str(out), "--all-masks"]) == 0
    masks = np.load(out)
    assert masks.shape == (3, 10800) and masks.dtype == bool


def test_segment_shared_scannet_scene(ckpt, tmp_path, data_dir):
    scene = data_dir / "scannet" / "scene0011_00"
    xyz = np.load(scene / "coord.npy")
    rgb = np.load(scene / "color.npy")
    cloud = tmp_path / "scene.npy"
    np.save(cloud, np.concatenate([xyz, rgb.astype(np.float32)], axis=1)[::4])
    out = tmp_path / "scene_mask.ply"
    assert main(["segment", str(cloud), "--point-index", "0", "--checkpoint", str(ckpt),
                 "--out", str(out), "--num-patches", "128", "--patch-size", "32"]) == 0
    assert len(PlyData.read(str(out))["vertex"]) == len(xyz[::4])


def test_refuses_to_overwrite_and_reports_errors(ckpt, tmp_path, capsys):
    out = tmp_path / "m.ply"
    out.write_text("precious")
    assert main(["segment", str(EXAMPLE), "--point-index", "1", "--checkpoint", str(ckpt),
                 "--out", str(out)]) == 2
    assert out.read_text() == "precious"
    assert "--overwrite" in capsys.readouterr().err
    assert main(["segment", str(EXAMPLE), "--point", "50", "50", "50", "--checkpoint",
                 str(ckpt), "--out", str(tmp_path / "x.ply")]) == 2
    assert "outside the point cloud" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "missing.ply"), "--point-index", "1", "--checkpoint",
                 str(ckpt), "--out", str(tmp_path / "y.ply")]) == 2
    assert main(["segment", str(EXAMPLE), "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "z.ply")]) == 2
    assert "at least one click" in capsys.readouterr().err
    assert main(["segment", str(EXAMPLE), "--point-index", "1", "--checkpoint",
                 str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "z.ply")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_runs(ckpt, tmp_path):
    out = tmp_path / "cli.npy"
    res = subprocess.run(
        [sys.executable, "-m", "pointsam.cli", "segment", str(EXAMPLE), "--point-index", "5",
         "--checkpoint", str(ckpt), "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "encoding 10,800 points" in res.stderr
    assert np.load(out).shape == (10800,)


def test_segment_mesh_writes_labelled_faces(ckpt, tmp_path, data_dir):
    import trimesh

    objs = sorted((data_dir / "partnet_mobility").glob("*/*/textured_objs/*.obj"))
    if not objs:
        pytest.skip("no PartNet-Mobility OBJ in the shared data")
    src = objs[0]
    out = tmp_path / "labelled.glb"
    assert main(["segment", str(src), "--point-index", "0", "--mesh-samples", "3000",
                 "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    from pointsam.io import read_mesh

    mesh = trimesh.load(out, force="mesh")
    assert len(mesh.faces) == len(read_mesh(src).faces)


def test_missing_checkpoint_says_where_to_get_it(tmp_path, capsys):
    assert main(["segment", str(EXAMPLE), "--point-index", "1", "--checkpoint",
                 str(tmp_path / "model.safetensors"), "--out", str(tmp_path / "o.ply")]) == 2
    assert "yuchen0187/Point-SAM" in capsys.readouterr().err


def test_old_everything_module_still_imports():
    import importlib

    from pointsam.command import run_everything

    sys.modules.pop("pointsam.automatic_command", None)
    with pytest.warns(DeprecationWarning, match="pointsam.command"):
        old = importlib.import_module("pointsam.automatic_command")
    assert old.run_everything is run_everything


def test_segment_keeps_every_input_field(ckpt, tmp_path):
    """PLY normals/intensity/label and LAS classification + extra dims survive `segment`."""
    import laspy

    from test_io_fields import _rich_las, _rich_ply

    src = _rich_ply(tmp_path / "rich.ply")
    out = tmp_path / "rich_mask.ply"
    assert main(["segment", str(src), "--point-index", "3", "--checkpoint", str(ckpt),
                 "--out", str(out)]) == 0
    before, after = PlyData.read(str(src))["vertex"].data, PlyData.read(str(out))["vertex"].data
    for name in before.dtype.names:
        np.testing.assert_array_equal(after[name], before[name])
    assert "mask" in after.dtype.names and len(after) == len(before)

    las = _rich_las(tmp_path / "rich.las")
    out_las = tmp_path / "rich_mask.las"
    assert main(["segment", str(las), "--point-index", "3", "--checkpoint", str(ckpt),
                 "--out", str(out_las)]) == 0
    a, b = laspy.read(las), laspy.read(out_las)
    np.testing.assert_array_equal(b.classification, a.classification)  # untouched unless asked
    np.testing.assert_array_equal(b["confidence"], a["confidence"])
    np.testing.assert_array_equal(b["tree_id"], a["tree_id"])
    mask = np.asarray(b["mask"]).astype(bool)
    out2 = tmp_path / "rich_cls.las"
    assert main(["segment", str(las), "--point-index", "3", "--checkpoint", str(ckpt),
                 "--out", str(out2), "--classification-value", "6"]) == 0
    c = laspy.read(out2)
    np.testing.assert_array_equal(np.asarray(c.classification)[mask], 6)
    np.testing.assert_array_equal(np.asarray(c.classification)[~mask], np.asarray(a.classification)[~mask])


def test_segment_local_mode_equals_global_on_a_small_cloud(ckpt, tmp_path):
    outs = {}
    for mode in ("global", "local"):
        outs[mode] = tmp_path / f"{mode}.npy"
        assert main(["segment", str(EXAMPLE), "--point-index", "10", "--checkpoint", str(ckpt),
                     "--mode", mode, "--region-points", "20000", "--out", str(outs[mode])]) == 0
    np.testing.assert_array_equal(np.load(outs["global"]), np.load(outs["local"]))
    assert main(["segment", str(EXAMPLE), "--point-index", "10", "--region-points", "3",
                 "--out", str(tmp_path / "x.npy")]) == 2
