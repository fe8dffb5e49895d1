"""Training loop: sample preparation, the iterative rollout with autograd, over-fitting, resume, config."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from pointsam.checkpoint import load_model
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError
from pointsam.train.config import TrainConfig
from pointsam.train.loop import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE, Trainer, lr_factor, train_step
from pointsam.train.monitor import format_duration, status_line
from pointsam.train.run_dir import check_run_dir
from pointsam.train.sampling import collate, make_sample, rotation_matrix

from conftest import TINY_CONFIG_KW, tiny_model


def blobs(seed: int, k: int, n: int = 512, rgb: bool = True) -> LabelledCloud:
    """A cloud of `k` well separated Gaussian blobs, one mask per blob."""
    r = np.random.default_rng(seed)
    per = n // k
    centers = r.normal(size=(k, 3)) * 3
    xyz = np.concatenate([c + r.normal(size=(per, 3)) * 0.4 for c in centers]).astype(np.float32)
    masks = [np.arange(i * per, (i + 1) * per) for i in range(k)]
    colours = r.integers(0, 256, size=(len(xyz), 3)).astype(np.uint8) if rgb else None
    return LabelledCloud(xyz=xyz, masks=masks, rgb=colours)


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(model="base", model_overrides=dict(TINY_CONFIG_KW), num_points=256, prompt_iters=3, lr=1e-4,
                weight_decay=0.0, warmup_steps=2, milestones=[1000], batch_size=2, max_steps=4,
                log_every=1, ckpt_every=100, out_dir=str(tmp_path / "run"), seed=0, tensorboard=False)
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- sampling


def test_sample_shapes_and_ranges():
    cloud = blobs(0, 3)
    s = make_sample(cloud, 300, 2, np.random.default_rng(0))
    assert s.coords.shape == (300, 3) and s.coords.dtype == torch.float32
    assert s.features.shape == (300, 3) and s.gt.shape == (2, 300) and s.gt.dtype == torch.bool
    assert s.coords.norm(dim=1).max() <= 1.0 + 1e-5
    assert s.features.min() >= -1.0 and s.features.max() <= 1.0
    assert s.gt.any(dim=1).all()
    # Deterministic given the generator, different with another seed.
    again = make_sample(cloud, 300, 2, np.random.default_rng(0))
    assert torch.equal(s.coords, again.coords) and torch.equal(s.gt, again.gt)
    other = make_sample(cloud, 300, 2, np.random.default_rng(1))
    assert not torch.equal(s.coords, other.coords)


def test_sample_without_augmentation_is_unit_sphere_normalised():
    cloud = blobs(1, 2, rgb=False)
    s = make_sample(cloud, 512, 2, np.random.default_rng(0), augment=False)
    assert s.coords.norm(dim=1).max() == pytest.approx(1.0, abs=1e-5)
    assert s.coords.double().mean(0).abs().max() < 1e-5  # all points kept: centred
    assert torch.equal(s.features, torch.zeros(512, 3))  # no colours -> grey


def test_sample_with_replacement_and_duplicate_masks():
    cloud = LabelledCloud(xyz=np.random.default_rng(0).normal(size=(100, 3)), masks=[np.arange(10)])
    s = make_sample(cloud, 1000, 3, np.random.default_rng(0))
    assert s.coords.shape == (1000, 3) and s.gt.shape == (3, 1000)
    assert torch.equal(s.gt[0], s.gt[1]) and torch.equal(s.gt[0], s.gt[2])
    assert 0 < s.gt[0].sum() < 1000


def test_sample_keeps_tiny_masks_non_empty():
    cloud = LabelledCloud(xyz=np.random.default_rng(0).normal(size=(5000, 3)),
                          masks=[np.array([7]), np.array([4000, 4001])])
    for seed in range(5):
        s = make_sample(cloud, 20, 2, np.random.default_rng(seed))
        assert s.gt.any(dim=1).all()
    s = make_sample(cloud, 2, 2, np.random.default_rng(0))  # no background left: both slots are masks
    assert s.gt.any(dim=1).all()


def test_sample_rejects_cloud_without_masks():
    cloud = LabelledCloud(xyz=np.zeros((10, 3)), masks=[])
    with pytest.raises(InputError, match="no masks"):
        make_sample(cloud, 10, 2, np.random.default_rng(0))


def test_rotation_matrix_is_orthonormal_and_y_rotation_keeps_y():
    ax, ay, az = 0.1, -0.2, 0.15
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    np.testing.assert_allclose(rotation_matrix(np.array([ax, ay, az])), rx @ ry @ rz, atol=1e-12)
    r = rotation_matrix(np.array([0.1, -0.2, 0.15]))
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    ry = rotation_matrix(np.array([0.0, 1.0, 0.0]))
    assert np.allclose((np.array([[0.3, 0.5, -0.2]]) @ ry.T)[0, 1], 0.5)


def test_lr_factor_warmup_and_decay():
    assert lr_factor(0, 10, [20, 30], 0.1) == pytest.approx(0.001)
    assert lr_factor(5, 10, [20, 30], 0.1) == pytest.approx(0.5005)
    assert lr_factor(10, 10, [20, 30], 0.1) == 1.0
    assert lr_factor(25, 10, [20, 30], 0.1) == pytest.approx(0.1)
    assert lr_factor(30, 10, [20, 30], 0.1) == pytest.approx(0.01)
    assert lr_factor(0, 0, [], 0.1) == 1.0


# ----------------------------------------------------------------------------- rollout


def test_train_step_rollout_shapes_and_gradients(tmp_path):
    cfg = tiny_cfg(tmp_path, prompt_iters=4)
    trainer = Trainer(None, [blobs(0, 2, n=256), blobs(1, 3, n=256)], cfg)
    out = train_step(trainer.model, trainer.next_batch(), cfg, np.random.default_rng(0))
    assert len(out.iou) == 4 and out.total.requires_grad
    assert out.chosen[0].shape == (4,)  # P = B * M prompt sets
    out.total.backward()
    grads = [p.grad for p in trainer.model.mask_decoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.pc_encoder.parameters())


def two_blobs() -> LabelledCloud:
    """Two round blobs of 128 points at x = -1 and x = +1, one mask each."""
    r = np.random.default_rng(0)
    centres = np.repeat([[-1.0, 0, 0], [1.0, 0, 0]], 128, axis=0)
    xyz = centres + r.normal(size=(256, 3)) * 0.3
    return LabelledCloud(xyz=xyz.astype(np.float32), masks=[np.arange(128), np.arange(128, 256)])


def test_tiny_model_overfits_one_batch():
    """The rollout loss trains the model: from an untrained mask (IoU <= 0.5) to the left blob.

    One mask, so the answer does not depend on which blob is clicked (a click-dependent answer
    needs many more steps: see the slow test below); any initialisation gets there in ~20 steps.
    """
    blob = two_blobs()
    cloud = LabelledCloud(xyz=blob.xyz, masks=blob.masks[:1])
    batch = collate([make_sample(cloud, 256, 1, np.random.default_rng(0), augment=False)])
    cfg = TrainConfig(model="base", model_overrides=dict(TINY_CONFIG_KW), prompt_iters=1)
    model = tiny_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    losses, ious = [], []
    for _ in range(24):
        out = train_step(model, batch, cfg, np.random.default_rng(0))
        optimizer.zero_grad()
        out.total.backward()
        optimizer.step()
        losses.append(out.total.item())
        ious.append(out.iou[0].item())
    assert ious[0] <= 0.5  # an untrained model marks both blobs, or nothing
    assert min(losses[-4:]) < 0.25 * losses[0]
    assert max(ious[-4:]) > 0.95


def test_fit_logs_checkpoints_and_saves_the_trained_weights(tmp_path):
    cfg = tiny_cfg(tmp_path, max_steps=3, log_every=2, prompt_iters=2)
    trainer = Trainer(None, [blobs(0, 2, n=256), blobs(1, 3, n=256)], cfg)
    history = trainer.fit()
    assert [h["step"] for h in history] == [1, 2, 3]
    lines = [json.loads(s) for s in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    assert [m["step"] for m in lines] == [2, 3]  # every log_every steps and the last one
    assert {"loss", "loss_mask", "loss_iou", "iou", "lr", "time_s"} <= set(lines[0])
    assert len(lines[0]["iou"]) == 2
    assert (tmp_path / "run" / CHECKPOINT_FILE).is_file()
    model = load_model(tmp_path / "run" / MODEL_FILE, device="cpu")
    ref = trainer.model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_tiny_model_overfits_two_clouds(tmp_path):
    """End to end: 50 Trainer steps on two clouds lower the loss and raise the IoU."""
    cfg = tiny_cfg(tmp_path, max_steps=50, augment=False, log_every=10, lr=1e-3, warmup_steps=0)
    trainer = Trainer(None, [blobs(0, 2), blobs(1, 3)], cfg)
    history = trainer.fit()
    assert len(history) == 50
    losses = [h["loss"] for h in history]
    ious = [float(np.mean(h["iou"])) for h in history]
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    assert np.mean(ious[-5:]) > np.mean(ious[:5]) + 0.1
    lines = [json.loads(s) for s in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    assert [m["step"] for m in lines] == [10, 20, 30, 40, 50]


def test_resume_reproduces_the_next_step(tmp_path):
    data = [blobs(0, 2, n=128), blobs(1, 3, n=128), blobs(2, 2, n=128)]
    kw = dict(grad_accum=2, batch_size=1, prompt_iters=2, num_points=128)
    first = Trainer(None, data, tiny_cfg(tmp_path, **kw))
    first.fit(max_steps=2)  # the second step starts the second pass over the 3 clouds
    expected = first.train_one_step()

    second = Trainer(None, data, tiny_cfg(tmp_path, seed=5, **kw))
    assert second.resume() == 2
    got = second.train_one_step()
    assert got["step"] == expected["step"] == 3
    assert got["lr"] == expected["lr"]
    assert got["loss"] == pytest.approx(expected["loss"], abs=1e-6)  # bitwise here on CPU
    assert got["iou"] == pytest.approx(expected["iou"], abs=1e-6)
    for (k, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k


def test_resume_without_checkpoint(tmp_path):
    trainer = Trainer(None, [blobs(0, 2)], tiny_cfg(tmp_path))
    with pytest.raises(FileNotFoundError):
        trainer.resume()


# ----------------------------------------------------------------------------- run folder, progress


def quick_cfg(tmp_path, **kw) -> TrainConfig:
    return tiny_cfg(tmp_path, num_points=128, prompt_iters=1, batch_size=1, max_steps=1, **kw)


def test_new_run_refuses_another_runs_files_and_overwrite_replaces_only_them(tmp_path):
    data = [blobs(0, 2, n=128)]
    run = tmp_path / "run"
    run.mkdir()
    (run / MODEL_FILE).write_bytes(b"the user's weights")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="model.safetensors.*--resume.*--overwrite"):
        Trainer(None, data, quick_cfg(tmp_path)).fit()
    assert (run / MODEL_FILE).read_bytes() == b"the user's weights" and not (run / METRICS_FILE).exists()
    (run / MODEL_FILE).unlink()
    (run / METRICS_FILE).write_text('{"step": 7, "loss": 1.0}\n')
    with pytest.raises(FileExistsError, match="metrics.jsonl"):
        Trainer(None, data, quick_cfg(tmp_path)).fit()
    with pytest.raises(FileExistsError, match="metrics.jsonl"):
        Trainer(None, data, quick_cfg(tmp_path)).save_checkpoint()
    (run / MODEL_FILE).write_bytes(b"the user's weights")
    Trainer(None, data, quick_cfg(tmp_path), overwrite=True).fit()
    assert [json.loads(s)["step"] for s in (run / METRICS_FILE).read_text().splitlines()] == [1]
    assert load_model(run / MODEL_FILE, device="cpu") is not None
    assert (run / "notes.txt").read_text() == "mine"  # not a run file: kept
    # A folder with other files only is fine.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    check_run_dir(other)
    with pytest.raises(FileNotFoundError, match="--resume"):
        check_run_dir(other, resume=True)
    with pytest.raises(FileExistsError, match="pass one of them"):
        check_run_dir(run, resume=True, overwrite=True)


def test_resume_drops_metrics_logged_after_the_checkpoint_and_prints_progress(tmp_path, capsys):
    data = [blobs(0, 2, n=128)]
    Trainer(None, data, quick_cfg(tmp_path)).fit()  # checkpoint at step 1
    log = tmp_path / "run" / METRICS_FILE
    log.write_text(log.read_text() + '{"step": 2, "loss": 9}\n{"step": 3, "loss": 9}\n')  # then a crash
    trainer = Trainer(None, data, quick_cfg(tmp_path))
    assert trainer.resume() == 1
    trainer.fit(max_steps=3, progress=True, status_every_s=1e9)
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3] and lines[1]["loss"] != 9
    err = capsys.readouterr().err.splitlines()  # not a terminal: status lines, no bar
    assert len(err) == 2 and err[0].startswith("step 2/3 (67%) loss ") and "/step, ETA" in err[0]
    assert err[1].startswith("step 3/3 (100%)") and err[1].endswith("ETA 0.0s")


def test_format_duration_and_status_line():
    assert [format_duration(s) for s in (12.34, 185, 3725)] == ["12.3s", "3m 05s", "1h 02m"]
    line = status_line({"step": 10, "loss": 0.5, "iou": [0.2, 0.4]}, 100, 10, 20.0)
    assert line == "step 10/100 (10%) loss 0.5000 iou 0.400 | 2.0s/step, ETA 3m 00s"


def test_collate_rejects_mismatched_samples():
    a = make_sample(blobs(0, 2), 100, 2, np.random.default_rng(0))
    b = make_sample(blobs(0, 2), 120, 2, np.random.default_rng(0))
    with pytest.raises(InputError, match="differ"):
        collate([a, b])


# ----------------------------------------------------------------------------- config


def test_config_defaults_follow_official_large():
    cfg = TrainConfig().validate()
    assert (cfg.num_points, cfg.masks_per_cloud, cfg.prompt_iters) == (10000, 2, 5)
    assert (cfg.lr, cfg.weight_decay, cfg.gamma, cfg.clip_value) == (3e-4, 0.1, 0.1, 1.0)
    assert cfg.model_config().vit_depth == 24


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(lr=0), "lr must be positive"),
        (dict(lr=-1.0), "lr must be a non-negative"),
        (dict(num_points=0), "num_points"),
        (dict(grad_accum=1.5), "grad_accum"),
        (dict(milestones=[5, 3]), "strictly increasing"),
        (dict(milestones=[0]), "positive integers"),
        (dict(clip_value=0), "clip_value"),
        (dict(model="huge"), "model must be one of"),
        (dict(model_overrides={"no_such_field": 1}), "model_overrides"),
        (dict(prompt_iters=True), "prompt_iters"),
    ],
)
def test_config_validation_errors(kw, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kw).validate()


def test_config_from_file(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"lr": 1e-4, "milestones": [10, 20], "model_overrides": TINY_CONFIG_KW}))
    cfg = TrainConfig.from_file(path).validate()
    assert cfg.lr == 1e-4 and cfg.milestones == [10, 20] and cfg.model_config().vit_width == 64
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    path.write_text(json.dumps({"learning_rate": 1.0}))
    with pytest.raises(InputError, match="unknown TrainConfig fields"):
        TrainConfig.from_file(path)
    yml = tmp_path / "cfg.yaml"
    yml.write_text("lr: 0.001\nprompt_iters: 3\n")
    pytest.importorskip("yaml")
    assert TrainConfig.from_file(yml).prompt_iters == 3
    yml.write_text("lr: [0.001\n")
    with pytest.raises(InputError, match="invalid YAML"):
        TrainConfig.from_file(yml)


def test_yaml_config_without_pyyaml_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # import fails
    yml = tmp_path / "cfg.yml"
    yml.write_text("lr: 0.001\n")
    with pytest.raises(InputError, match="needs PyYAML.*pip install pyyaml.*as .json"):
        TrainConfig.from_file(yml)
