"""Dataset mixtures (real PartNet objects + a ScanNet scene) and the new TrainConfig fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam.data.converters import partnet_object, pointcept_scene
from pointsam.data.dataset import DatasetWriter, PointCloudDataset
from pointsam.errors import InputError
from pointsam.train import loop
from pointsam.train.config import TrainConfig
from pointsam.train.loop import Trainer
from pointsam.train.mixture import DatasetMixture, MixturePart, load_mixture

from conftest import TINY_CONFIG_KW

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OBJECTS = ["Faucet/1280", "Bottle/3558", "Table/26608"]
SCENE = "scene0011_00"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> tuple[Path, Path]:
    """A PartNet objects dataset (train/val splits) and a one-scene ScanNet dataset."""
    root = tmp_path_factory.mktemp("mix")
    with DatasetWriter(root / "pm", name="pm") as writer:
        for i, obj in enumerate(OBJECTS):
            cloud = partnet_object(need(DATA / "partnet_mobility" / obj), category=obj.split("/")[0])
            writer.add(cloud, split="val" if i == 0 else "train")
    with DatasetWriter(root / "scenes", name="scenes") as writer:
        writer.add(pointcept_scene(need(DATA / "scannet" / SCENE)))
    return root / "pm", root / "scenes"


def cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(model_overrides=dict(TINY_CONFIG_KW), num_points=512, prompt_iters=2, batch_size=1, lr=1e-4,
                warmup_steps=0, milestones=[1000], max_steps=1, tensorboard=False, seed=0,
                out_dir=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def test_mixture_draws_by_weight_with_per_dataset_perturb(datasets, tmp_path, monkeypatch):
    pm, scenes = datasets
    entries = [{"path": str(pm), "split": "train", "weight": 3}, {"path": str(scenes), "perturb": False}]
    trainer = Trainer(None, None, cfg(tmp_path, datasets=entries))
    mix = trainer.dataset
    assert isinstance(mix, DatasetMixture) and len(mix) == 3  # 2 train objects + 1 scene
    assert [len(p.clouds) for p in mix.parts] == [2, 1] and [p.perturb for p in mix.parts] == [True, False]
    assert mix[2].name == mix.parts[1].clouds[0].name and mix[-1].name == mix[2].name
    draws = [trainer._next_cloud() for _ in range(200)]
    from_scene = [perturb is False for _, perturb in draws]
    assert all((c.name == mix[2].name) == s for (c, _), s in zip(draws, from_scene, strict=True))
    assert 0.15 < np.mean(from_scene) < 0.35  # weight 1 of 4
    # Each dataset is walked in shuffled passes: the first two object draws are the two objects.
    objects = [c.name for c, p in draws if p]
    assert sorted(objects[:2]) == sorted(c.name for c in mix.parts[0].clouds)
    # The per-dataset flag reaches the augmentation.
    seen = []
    real = loop.make_sample
    monkeypatch.setattr(loop, "make_sample", lambda *a, **k: seen.append(k["perturb"]) or real(*a, **k))
    for _ in range(12):
        trainer.next_batch()
    assert True in seen and False in seen


def test_mixture_resume_restores_every_dataset_order(datasets, tmp_path):
    pm, scenes = datasets
    entries = [{"path": str(pm), "weight": 3.0}, {"path": str(scenes), "weight": 1.0, "perturb": False}]
    first = Trainer(None, None, cfg(tmp_path, datasets=entries, batch_size=2))
    first.fit()
    orders = [list(o) for o in first._orders]
    expected = first.next_batch()
    second = Trainer(None, load_mixture(entries), cfg(tmp_path, datasets=entries, batch_size=2, seed=9))
    assert second.resume() == 1 and second._orders == orders and any(orders)
    got = second.next_batch()
    assert torch.equal(got.coords, expected.coords) and torch.equal(got.gt, expected.gt)


def test_mixture_errors(datasets, tmp_path):
    pm, _ = datasets
    with pytest.raises(InputError, match="no split 'test'"):
        load_mixture([{"path": str(pm), "split": "test"}])
    with pytest.raises(InputError, match="no training data"):
        Trainer(None, None, cfg(tmp_path))
    with pytest.raises(InputError, match="weight must be a positive"):
        DatasetMixture([MixturePart(PointCloudDataset(pm), weight=0)])
    with pytest.raises(InputError, match="no clouds"):
        DatasetMixture([MixturePart([], name="empty")])
    with pytest.raises(InputError, match="at least one"):
        DatasetMixture([])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(datasets={"path": "x"}), "datasets must be a list"),
        (dict(datasets=["x"]), r"datasets\[0\] must be a mapping"),
        (dict(datasets=[{"split": "train"}]), r"datasets\[0\]: 'path'"),
        (dict(datasets=[{"path": "a"}, {"path": "b", "weight": -1}]), r"datasets\[1\]: 'weight'"),
        (dict(datasets=[{"path": "a", "weight": float("nan")}]), "'weight'"),
        (dict(datasets=[{"path": "a", "perturb": "no"}]), "'perturb' must be true or false"),
        (dict(datasets=[{"path": "a", "repeats": 2}]), "unknown keys"),
        (dict(precision="fp16"), "precision must be one of"),
        (dict(tensorboard="yes"), "tensorboard must be true or false"),
    ],
)
def test_new_config_fields_validate(kw, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kw).validate()


def test_new_config_fields_have_defaults_and_round_trip(tmp_path):
    c = TrainConfig().validate()
    assert (c.precision, c.tensorboard, c.datasets) == ("auto", True, [])
    c = TrainConfig(datasets=[{"path": tmp_path / "ds", "perturb": False}], precision="bf16").validate()
    assert TrainConfig.from_dict(c.to_dict()).datasets == [{"path": str(tmp_path / "ds"), "perturb": False}]
