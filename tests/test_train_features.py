"""bf16 autocast, TensorBoard, progress bar, Uni3D initialisation and the new `pointsam train` options."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam import PointSAMConfig, build_model
from pointsam.cli import main
from pointsam.data.converters import partnet_object
from pointsam.data.dataset import DatasetWriter, PointCloudDataset
from pointsam.errors import CheckpointError
from pointsam.train import monitor
from pointsam.train.config import TrainConfig
from pointsam.train.loop import METRICS_FILE, Trainer, resolve_precision, train_step
from pointsam.train.uni3d import load_uni3d

from conftest import TINY_CONFIG_KW

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OBJECTS = ["Faucet/1280", "Bottle/3558"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("feat") / "pm"
    if not (DATA / "partnet_mobility").is_dir():
        pytest.skip(f"shared data not found: {DATA} (expected ../shared/data beside the repo)")
    with DatasetWriter(root, name="pm") as writer:
        for obj in OBJECTS:
            writer.add(partnet_object(DATA / "partnet_mobility" / obj, category=obj.split("/")[0]))
    return root


def cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(model_overrides=dict(TINY_CONFIG_KW), num_points=512, prompt_iters=2, batch_size=1, lr=1e-4,
                warmup_steps=0, milestones=[1000], max_steps=2, log_every=1, tensorboard=False, seed=0,
                out_dir=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- precision


def test_precision_resolution():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"


def test_bf16_autocast_keeps_losses_in_fp32(dataset, tmp_path):
    data = PointCloudDataset(dataset)
    base = Trainer(None, data, cfg(tmp_path))
    batch = base.next_batch()
    losses = {}
    for precision in ("auto", "fp32", "bf16"):
        model = build_model(PointSAMConfig.base(**TINY_CONFIG_KW))
        model.load_state_dict(base.model.state_dict())
        out = train_step(model, batch, cfg(tmp_path, precision=precision), np.random.default_rng(0))
        assert out.total.dtype == torch.float32 and torch.isfinite(out.total)
        out.total.backward()
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
        assert model.mask_decoder.iou_token.weight.grad.abs().sum() > 0
        losses[precision] = out.total.item()
    assert losses["auto"] == losses["fp32"]  # auto is fp32 on CPU: the unchanged path
    assert losses["bf16"] != losses["fp32"]  # autocast really ran in bfloat16 ...
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)  # ... and stays close


# ----------------------------------------------------------------------------- logging


def test_tensorboard_mirrors_the_jsonl_log_and_progress_bar(dataset, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(None, PointCloudDataset(dataset), cfg(tmp_path, tensorboard=True))
    trainer.fit(progress=True)
    assert "2/2" in capsys.readouterr().err  # tqdm bar on stderr
    run = Path(trainer.out_dir)
    lines = [json.loads(s) for s in (run / METRICS_FILE).read_text().splitlines()]
    events = EventAccumulator(str(run / monitor.TENSORBOARD_DIR))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/iou_iter_0", "train/iou_iter_1"} <= set(scalars)
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [m["step"] for m in lines] == [1, 2]
    assert [e.value for e in loss] == pytest.approx([m["loss"] for m in lines], rel=1e-6)


def test_missing_tensorboard_warns_once_and_keeps_jsonl(dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.setattr(monitor, "_warned", False)
    with pytest.warns(UserWarning, match="TensorBoard logging is off"):
        assert monitor.open_tensorboard(tmp_path / "tb") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(None, PointCloudDataset(dataset), cfg(tmp_path, tensorboard=True, max_steps=1)).fit()
    assert len((tmp_path / "run" / METRICS_FILE).read_text().splitlines()) == 1
    assert not (tmp_path / "run" / monitor.TENSORBOARD_DIR).exists()


# ----------------------------------------------------------------------------- Uni3D


def uni3d_file(path: Path, source) -> Path:
    """A Uni3D-layout checkpoint holding `source`'s ViT, projection and position MLP."""
    names = {"patch_proj.": "point_encoder.encoder2trans.", "pos_embed.": "point_encoder.pos_embed.",
             "transformer.": "point_encoder.visual."}
    state = {}
    for key, value in source.pc_encoder.state_dict().items():
        for ours, theirs in names.items():
            if key.startswith(ours):
                state[theirs + key[len(ours):]] = value.clone()
    state["point_encoder.encoder.first_conv.1.running_mean"] = torch.zeros(128)  # BatchNorm: not ours
    state["logit_scale"] = torch.tensor(2.0)
    state["point_encoder.visual.head.weight"] = torch.zeros(7, 64)  # another head: skipped
    torch.save({"module": state, "epoch": 3}, path)
    return path


def test_load_uni3d_maps_the_vit_and_reports(tmp_path):
    source = build_model(PointSAMConfig.base(**TINY_CONFIG_KW))
    target = build_model(PointSAMConfig.base(**TINY_CONFIG_KW))
    report = load_uni3d(target, uni3d_file(tmp_path / "uni3d.pt", source))
    src, dst = source.pc_encoder.state_dict(), target.pc_encoder.state_dict()
    assert {"patch_proj.weight", "pos_embed.0.weight"} <= set(report.loaded)
    assert any(k.startswith("transformer.blocks.0.attn.") for k in report.loaded)
    for key in report.loaded:
        assert torch.equal(src[key], dst[key])
    assert not torch.equal(src["patch_embed.patch_encoder.conv1.0.weight"],
                           dst["patch_embed.patch_encoder.conv1.0.weight"])  # PointNet stays random
    # Uni3D's classifier head has no counterpart (Point-SAM keeps no image-ViT head): skipped, reported
    assert "logit_scale" in report.unused and "transformer.head.weight" in report.unused
    assert not any(k.startswith("transformer.head") for k in report.loaded)
    assert "loaded" in report.summary()
    with pytest.raises(CheckpointError, match="no Uni3D tensor"):
        load_uni3d(target, {"something.else": torch.zeros(3)})


# ----------------------------------------------------------------------------- command line


def test_cli_mixture_config_bf16_uni3d(dataset, tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({
        "model_overrides": TINY_CONFIG_KW, "num_points": 256, "prompt_iters": 2, "batch_size": 1,
        "max_steps": 1, "warmup_steps": 0, "tensorboard": False,
        "datasets": [{"path": str(dataset), "weight": 2}, {"path": str(dataset), "perturb": False}],
    }))
    uni = uni3d_file(tmp_path / "uni3d.pt", build_model(PointSAMConfig.base(**TINY_CONFIG_KW)))
    run = tmp_path / "run"
    args = ["train", str(config), "--out-dir", str(run), "--device", "cpu", "--precision", "bf16",
            "--no-progress", "--init-uni3d", str(uni)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Uni3D: loaded" in err and "bf16" in err and "2 clouds" not in err and "4 clouds" in err
    assert json.loads((run / METRICS_FILE).read_text())["step"] == 1
    # Errors: no data at all; --init with --init-uni3d.
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"model_overrides": TINY_CONFIG_KW}))
    assert main(["train", str(bare), "--out-dir", str(tmp_path / "r2")]) == 2
    assert "no training data" in capsys.readouterr().err
    assert main(["train", str(bare), "--data", str(dataset), "--out-dir", str(tmp_path / "r3"),
                 "--init", str(uni), "--init-uni3d", str(uni)]) == 2
    assert "pass one of them" in capsys.readouterr().err
