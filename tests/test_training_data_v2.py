"""tools/train_default_model.py: the data v2 it builds (held-out data never in training), the varied point
counts and grouping it trains with, exact resume, and the smoke pipeline end to end (slow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from pointsam.data.dataset import PointCloudDataset, read_index
from pointsam.predictor import choose_grouping
from pointsam.train.config import TrainConfig
from tests.conftest import DATA

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
pytest.importorskip("default_model_recipe")
import default_model_data  # noqa: E402
import default_model_recipe as recipe  # noqa: E402
import train_default_model as tool  # noqa: E402

pytestmark = pytest.mark.skipif(not (DATA / "partnet_mobility").is_dir() or not (DATA / "scannet").is_dir(),
                                reason="needs ../shared/data (partnet_mobility and scannet)")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    work = tmp_path_factory.mktemp("smoke")
    return work, default_model_data.prepare(work, smoke=True)


def test_held_out_categories_and_scene_never_reach_training(smoke):
    _, folders = smoke
    entries = tool.mixture_entries(folders, smoke=True)
    assert {Path(e["path"]).name for e in entries} >= {"partnet", "mobility_2000", "synthetic",
                                                      "scannet_blocks", "scannet_crops"}
    mixture_names = {Path(e["path"]).name for e in entries}
    assert "scannet_eval" not in mixture_names
    for entry in entries:
        clouds = PointCloudDataset(entry["path"], split=entry.get("split"))
        cats = {c.category for c in clouds}
        assert not cats & set(recipe.VAL_CATEGORIES), entry
        assert all(recipe.EVAL_SCENE not in c.name and recipe.EVAL_SCENE not in c.source for c in clouds)
    # The held-out objects are there, in the val split only.
    for name in ("partnet", "mobility_2000"):
        val = PointCloudDataset(folders[name], split="val")
        assert len(val) == 1 and {c.category for c in val} == {"Faucet"}
    (scene,) = PointCloudDataset(folders["scannet_eval"])
    assert scene.name == recipe.EVAL_SCENE and scene.num_masks > 20


def test_prepare_only_prints_every_dataset_with_its_size(smoke, capsys):
    work, folders = smoke
    tool.main(["--work", str(work), "--smoke", "--prepare-only"])
    table = capsys.readouterr().out
    rows = default_model_data.sizes(folders)
    crops = next(r for r in rows if r["dataset"] == "scannet_crops")
    assert crops["clouds"] == recipe.SMOKE_MAX_CROPS and crops["points"] > 0
    assert crops["clouds"] == read_index(folders["scannet_crops"])["num_clouds"]
    for r in rows:
        assert f"| {r['dataset']} | {r['split']} | {r['clouds']} |" in table


def test_batches_vary_point_count_capped_by_cloud_and_grouped_like_the_predictor(smoke, tmp_path):
    work, folders = smoke
    cfg = TrainConfig(**{**recipe.SMOKE_TRAIN, "out_dir": str(tmp_path / "run"),
                         "datasets": tool.mixture_entries(folders, smoke=True)})
    counts = {512: 0.3, 1024: 0.3, 100_000: 0.4}  # 100k: more than any smoke cloud has
    trainer = tool.VariedTrainer(None, None, cfg, counts)
    mc = trainer.model.config
    seen = set()
    for _ in range(12):
        batch = trainer.next_batch()
        n = batch.coords.shape[1]
        seen.add(n)
        assert n in counts or n <= 100_000 and n not in (512, 1024)
        assert trainer.grouped.grouping == choose_grouping(n, n, mc.num_patches, mc.patch_size)
        assert batch.gt.any(dim=2).all()
    assert {512, 1024} <= seen and len(seen) >= 3  # a large draw became the cloud's own size


@pytest.mark.slow
def test_resumed_run_ends_with_the_same_weights(smoke):
    work, folders = smoke
    straight, split = work / "straight", work / "split"
    for w in (straight, split):
        w.mkdir()
    tool.train(straight, folders, smoke=True, resume=False, max_steps=None, init=None)
    tool.train(split, folders, smoke=True, resume=False, max_steps=2, init=None)
    tool.train(split, folders, smoke=True, resume=True, max_steps=None, init=None)
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(split / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    metrics = [json.loads(line) for line in (split / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == recipe.SMOKE_TRAIN["max_steps"]
    _, hours = tool.training_hours(split)
    assert 0 < hours < 1


@pytest.mark.slow
def test_smoke_pipeline_evaluates_and_ships_with_thresholds(smoke):
    work, _ = smoke
    tool.main(["--work", str(work), "--smoke"])
    tool.main(["--work", str(work), "--smoke", "--calibrate", "--evaluate", "--ship"])
    report = json.loads((work / "eval" / "report.json").read_text())
    curve = report["partnet"]["per_category"]["Faucet"]["curve"]
    assert len(curve) == recipe.SMOKE_CLICKS and all(0 <= v <= 100 for v in curve)
    assert 0 <= report["partnet"]["all"]["selection_accuracy"] <= 100
    assert report["partnet"]["all"]["iou1_oracle"] >= report["partnet"]["all"]["iou1_argmax"]
    from pointsam.amg_defaults import amg_defaults

    shipped = work / "assets" / "default_model.safetensors"
    assert amg_defaults(shipped) == json.loads((work / "amg.json").read_text())["thresholds"]
    card = (work / "assets" / "MODEL_CARD.md").read_text()
    assert "| Faucet |" in card and "recall@50" in card and "(-0.25, 0.91, 0.1), returns" in card
    assert all(np.isfinite(v) and v > 0 for v in report["click_ms_10k"].values())
    # the comparison with an earlier model (here: the same weights) on the same held-out data
    tool.main(["--work", str(work), "--smoke", "--baseline", str(work / "model.safetensors"), "--ship"])
    baseline = json.loads((work / "eval_baseline" / "report.json").read_text())
    assert baseline["partnet"]["all"]["curve"] == report["partnet"]["all"]["curve"]
    card = (work / "assets" / "MODEL_CARD.md").read_text()
    assert "Against the first bundled model" in card and "| first model |" in card
