"""`pointsam train`: config file, fine-tuning official-format weights, exact resume, no overwrite."""

from __future__ import annotations

import json

import numpy as np

from pointsam import PointSAMConfig, build_model
from pointsam.cli import main
from pointsam.data.dataset import DatasetWriter, LabelledCloud

from conftest import TINY_CONFIG_KW


def _dataset(root):
    rng = np.random.default_rng(0)
    with DatasetWriter(root, name="blobs") as writer:
        for i in range(2):
            xyz = np.concatenate([rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 6])
            writer.add(LabelledCloud(xyz=xyz.astype(np.float32),
                                     masks=[np.arange(200), np.arange(200, 400)], name=f"c{i}"))
    return root


def test_train_resume_and_finetune(tmp_path, capsys):
    from safetensors.torch import save_file

    data = _dataset(tmp_path / "ds")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": "large", "model_overrides": TINY_CONFIG_KW, "num_points": 256,
                               "prompt_iters": 3, "lr": 1e-4, "warmup_steps": 2, "batch_size": 1,
                               "max_steps": 2, "log_every": 1, "ckpt_every": 1}))
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--data", str(data), "--out-dir", str(run), "--device", "cpu"]) == 0
    assert (run / "model.safetensors").exists()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    # An existing run is never overwritten; --resume continues it.
    assert main(["train", str(cfg), "--data", str(data), "--out-dir", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(cfg), "--data", str(data), "--out-dir", str(run), "--resume",
                 "--max-steps", "3", "--device", "cpu"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    # Fine-tuning from an official-format file (bare state dict, no metadata).
    official = tmp_path / "official.safetensors"
    model = build_model(PointSAMConfig.base(**TINY_CONFIG_KW))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(official))
    assert main(["train", str(cfg), "--data", str(data), "--out-dir", str(tmp_path / "ft"), "--init",
                 str(official), "--device", "cpu"]) == 0
    assert (tmp_path / "ft" / "model.safetensors").exists()


def test_train_never_overwrites_a_users_model_or_metrics(tmp_path, capsys):
    data = _dataset(tmp_path / "ds")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model_overrides": TINY_CONFIG_KW, "num_points": 128, "prompt_iters": 1,
                               "batch_size": 1, "max_steps": 1, "tensorboard": False}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "metrics.jsonl").write_text("{}\n")
    assert main(["train", str(cfg), "--data", str(data), "--out-dir", str(run), "--device", "cpu"]) == 2
    assert "model.safetensors, metrics.jsonl" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == b"weights"
    assert (run / "metrics.jsonl").read_text() == "{}\n"


def test_train_bad_inputs(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.json"), "--data", str(tmp_path)]) == 2
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"lr": -1}))
    assert main(["train", str(cfg), "--data", str(tmp_path)]) == 2
    assert "lr" in capsys.readouterr().err
