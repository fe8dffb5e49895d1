"""Object-proposal recall: IoU matching and AR metrics on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam.data.dataset import LabelledCloud
from pointsam.evaluation.proposals import best_iou_per_gt, evaluate_proposals, recall_metrics

from conftest import tiny_model


def test_best_iou_by_hand():
    gt = [np.arange(0, 10), np.arange(10, 20), np.arange(20, 24)]
    pred = [np.arange(0, 10), np.arange(10, 15), np.arange(50, 60)]
    np.testing.assert_allclose(best_iou_per_gt(pred, gt, 100), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(best_iou_per_gt([], gt, 100), [0, 0, 0])


def test_recall_metrics():
    m = recall_metrics(np.array([1.0, 0.5, 0.3, 0.0]))
    assert m["AR@25"] == pytest.approx(75.0)
    assert m["AR@50"] == pytest.approx(50.0)
    # IoU 1.0 counts at all 10 thresholds, 0.5 only at 0.5: (10 + 1) / 10 / 4
    assert m["AR"] == pytest.approx(27.5)


class _Oracle:
    """A generator that proposes the ground truth of the cloud it is given, plus noise."""

    def __init__(self, cloud):
        self.cloud = cloud

    def generate(self, xyz, rgb=None):
        return [{"indices": m} for m in self.cloud.masks] + [{"indices": np.arange(3)}]


def test_evaluate_proposals_ignores_floor():
    xyz = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    cloud = LabelledCloud(xyz=xyz, masks=[np.arange(10), np.arange(10, 40)],
                          names=["chair", "floor"], name="s", category="scene")
    rows, pooled = evaluate_proposals(_Oracle(cloud), [cloud])
    assert rows[0]["num_gt"] == 1 and rows[0]["num_proposals"] == 3
    assert pooled["AR@50"] == 100.0


def test_eval_proposals_command(tmp_path, capsys):
    import json

    from pointsam.checkpoint import save_model
    from pointsam.cli import main
    from pointsam.data.dataset import DatasetWriter

    rng = np.random.default_rng(1)
    xyz = np.concatenate([rng.normal(size=(100, 3)), rng.normal(size=(100, 3)) + 5]).astype(np.float32)
    with DatasetWriter(tmp_path / "ds", name="toy") as writer:
        writer.add(LabelledCloud(xyz=xyz, masks=[np.arange(100), np.arange(100, 200)],
                                 names=["a", "b"], name="c"))
    ckpt = save_model(tiny_model(), tmp_path / "m.safetensors")
    assert main(["eval", str(tmp_path / "ds"), "--proposals", "--num-prompts", "8", "--checkpoint",
                 str(ckpt), "--out", str(tmp_path / "r")]) == 0
    data = json.loads((tmp_path / "r" / "proposals.json").read_text())
    assert data["clouds"][0]["num_gt"] == 2 and 0 <= data["pooled"]["AR@25"] <= 100
    assert "AR@50" in capsys.readouterr().out
