"""Hostile and careless command lines: each gives one `pointsam: error:` line and exit code 2 before
anything slow runs, or the documented behaviour (issues 13 and 16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam.cli import COMMANDS, build_parser, main

from conftest import REPO, tiny_model

EXAMPLE = REPO / "src" / "pointsam" / "assets" / "example_table.ply"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    from pointsam.checkpoint import save_model

    return save_model(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def tripwire(monkeypatch):
    """Make reading an input, loading a dataset or a model fail loudly: the error must come first."""
    import pointsam.checkpoint
    import pointsam.data.dataset
    import pointsam.io

    def boom(*args, **kwargs):
        raise AssertionError("loaded or read something before checking the command line")

    monkeypatch.setattr(pointsam.io, "read_point_cloud", boom)
    monkeypatch.setattr(pointsam.checkpoint, "load_model", boom)
    monkeypatch.setattr(pointsam.data.dataset, "PointCloudDataset", boom)


def error_line(capsys) -> str:
    """The single stderr line of a refused command."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pointsam: error: "), lines
    return lines[0]


def segment(tmp_path: Path, *extra: str) -> list[str]:
    return ["segment", str(EXAMPLE), "--out", str(tmp_path / "m.ply"), *extra]


@pytest.mark.parametrize("device, words", [("bogus", "not a device"), ("cuda:x", "not a device"),
                                           ("meta", "runs on cpu, cuda or mps")])
def test_bad_device_refused_before_loading(tmp_path, capsys, tripwire, device, words):
    assert main(segment(tmp_path, "--point-index", "1", "--device", device)) == 2
    assert words in error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys, tripwire):
    assert main(segment(tmp_path, "--point-index", "1", "--device", "cuda")) == 2
    assert "CUDA is not available" in error_line(capsys)
    assert main(["train", str(tmp_path / "cfg.json"), "--device", "cuda"]) == 2
    assert "--device cuda" in error_line(capsys)


def test_unknown_config_refused_before_loading(tmp_path, capsys, tripwire):
    assert main(segment(tmp_path, "--point-index", "1", "--config", "bogus")) == 2
    assert "large, giant, base, auto" in error_line(capsys)


@pytest.mark.parametrize("out, extra, words", [
    ("m.gltf", [], "unknown extension"),             # was listed as a mesh output, then refused late
    ("m.obj", [], "needs a mesh input"),             # the example PLY has no faces
    ("m.foo", [], "unknown extension"),
    ("m", [], "unknown extension"),
    ("m.las", ["--all-masks"], "--all-masks needs a .ply or .npy"),
    ("m.txt", ["--all-masks"], "--all-masks needs a .ply or .npy"),
])
def test_unwritable_output_refused_before_compute(tmp_path, capsys, tripwire, out, extra, words):
    argv = ["segment", str(EXAMPLE), "--point-index", "1", "--out", str(tmp_path / out), *extra]
    assert main(argv) == 2
    assert words in error_line(capsys)
    assert not any(tmp_path.iterdir())


def test_output_folder_refused(tmp_path, capsys, tripwire):
    (tmp_path / "m.ply").mkdir()
    assert main(segment(tmp_path, "--point-index", "1", "--overwrite")) == 2
    assert "folder" in error_line(capsys)


def test_negative_point_index_refused(tmp_path, capsys, tripwire):
    assert main(segment(tmp_path, "--point-index", "-1")) == 2
    assert "[0, N)" in error_line(capsys)
    assert main(segment(tmp_path, "--point-index", "3", "--negative-index", "-5")) == 2
    assert "-5" in error_line(capsys)


def test_thousand_clicks_refused_at_once(tmp_path, capsys, tripwire):
    clicks = [a for i in range(1000) for a in ("--point-index", str(i))]
    assert main(segment(tmp_path, *clicks)) == 2
    assert "at most 100" in error_line(capsys)


def test_threads_option_and_env(tmp_path, capsys, tripwire, monkeypatch):
    assert main(segment(tmp_path, "--point-index", "1", "--threads", "0")) == 2
    assert "--threads must be at least 1" in error_line(capsys)
    monkeypatch.setenv("POINTSAM_THREADS", "many")
    assert main(segment(tmp_path, "--point-index", "1")) == 2
    assert "$POINTSAM_THREADS" in error_line(capsys)
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("POINTSAM_THREADS", "1")
        main(segment(tmp_path, "--point-index", "-1"))  # refused after the common options are applied
        assert torch.get_num_threads() == 1
        main(segment(tmp_path, "--point-index", "-1", "--threads", "2"))
        assert torch.get_num_threads() == 2  # the option wins over the environment
    finally:
        torch.set_num_threads(before)


def test_automatic_thread_count_is_within_the_usable_cores(monkeypatch):
    from pointsam.utils.threads import choose_threads, physical_cores, usable_cpus

    for var in ("POINTSAM_THREADS", "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    cores = physical_cores()
    assert 1 <= cores <= len(usable_cpus())
    assert 1 <= choose_threads() <= cores
    monkeypatch.setattr("os.getloadavg", lambda: (1000.0, 0.0, 0.0))  # a very busy machine: still 1
    assert choose_threads() == 1
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    assert choose_threads() == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores + 1))  # torchrun ranks share the cores
    assert choose_threads() == 1
    assert choose_threads(3) == 3


def test_every_command_has_the_common_options(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            build_parser(name).parse_args([name, "--help"])
        text = capsys.readouterr().out
        assert "--threads N" in text, name
        if name != "convert":
            assert "--device" in text, name
        if name not in ("convert", "train"):
            assert "--checkpoint" in text and "--config" in text, name


def test_help_and_import_do_not_import_torch():
    code = ("import sys, pointsam; assert 'torch' not in sys.modules, 'import pointsam'\n"
            "from pointsam.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, '--help'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "segment" in res.stdout and "engine" in res.stdout
    import pointsam
    from pointsam import AutomaticMaskGenerator, PointCloudPredictor, load_model  # loaded on first use
    from pointsam.automatic import AutomaticMaskGenerator as Generator
    from pointsam.checkpoint import load_model as load

    assert AutomaticMaskGenerator is Generator and load_model is load and PointCloudPredictor
    assert {"load_model", "PointSAMConfig", "build_model"} <= set(dir(pointsam))
    with pytest.raises(AttributeError):
        pointsam.no_such_name  # noqa: B018


def _toy_dataset(root: Path) -> Path:
    from pointsam.data.dataset import DatasetWriter, LabelledCloud

    rng = np.random.default_rng(1)
    xyz = np.concatenate([rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 5]).astype(np.float32)
    with DatasetWriter(root, name="toy") as writer:
        writer.add(LabelledCloud(xyz=xyz, masks=[np.arange(100), np.arange(100, 200)],
                                 names=["a", "b"], name="c"))
    return root


@pytest.mark.parametrize("proposals, existing", [(False, "iou_vs_clicks.png"),
                                                 (True, "proposals.md")])
def test_eval_existing_report_refused_before_compute(tmp_path, capsys, tripwire, proposals, existing):
    out = tmp_path / "report"
    out.mkdir()
    (out / existing).write_text("precious")
    argv = ["eval", str(tmp_path / "ds"), "--out", str(out)] + (["--proposals"] if proposals else [])
    assert main(argv) == 2
    assert "--overwrite" in error_line(capsys)
    assert (out / existing).read_text() == "precious"
    (tmp_path / "file").write_text("x")
    assert main(["eval", str(tmp_path / "ds"), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in error_line(capsys)


def test_eval_proposals_thresholds_and_zero_recall_note(tmp_path, ckpt, capsys):
    ds = _toy_dataset(tmp_path / "ds")
    argv = ["eval", str(ds), "--proposals", "--checkpoint", str(ckpt), "--out", str(tmp_path / "r"),
            "--num-prompts", "8", "--points-per-batch", "8", "--min-proposal-points", "1"]
    assert main([*argv, "--pred-iou-thresh", "1", "--stability-thresh", "1"]) == 0  # nothing kept
    err = capsys.readouterr().err
    assert "AR is 0" in err and "0 proposals" in err and "--pred-iou-thresh 1.0" in err
    assert json.loads((tmp_path / "r" / "proposals.json").read_text())["clouds"][0]["num_proposals"] == 0
    assert main([*argv, "--pred-iou-thresh", "0", "--stability-thresh", "0", "--nms-thresh", "1",
                 "--overwrite"]) == 0  # everything kept
    rows = json.loads((tmp_path / "r" / "proposals.json").read_text())["clouds"]
    assert rows[0]["num_proposals"] > 0


def test_failed_engine_start_leaves_nothing_behind(tmp_path, capsys):
    import trimesh

    mesh = tmp_path / "box.obj"
    trimesh.creation.box().export(mesh)
    (tmp_path / "sam").mkdir()  # a folder, but not a SAM checkpoint
    out = tmp_path / "pseudo"
    assert main(["engine", str(mesh), "--sam-checkpoint", str(tmp_path / "sam"), "--out", str(out)]) == 2
    assert "not a SAM checkpoint folder" in error_line(capsys)
    assert not out.exists()  # no settings written that would block the corrected rerun


def test_missing_optional_package_names_its_extra(tmp_path, capsys, monkeypatch):
    import pointsam.command

    def needs_matplotlib(args):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(pointsam.command, "run_segment", needs_matplotlib)
    assert main(segment(tmp_path, "--point-index", "1")) == 2
    assert 'pip install "pointsam[plot]"' in error_line(capsys)
