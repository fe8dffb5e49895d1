"""IoU@k / NoC evaluation: metric arithmetic, a perfect and a constant predictor, reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pointsam import PointSAMConfig, build_model
from pointsam.data.dataset import LabelledCloud
from pointsam.evaluation.interactive import (
    ObjectResult,
    evaluate_interactive,
    number_of_clicks,
    summarize,
)
from pointsam.evaluation.report import write_report
from pointsam.predictor import PointCloudPredictor

from conftest import TINY_CONFIG_KW, tiny_model


def test_number_of_clicks():
    assert number_of_clicks([0.5, 0.81, 0.9], 0.8) == 2
    assert number_of_clicks([0.5, 0.81, 0.9], 0.9) == 3
    assert number_of_clicks([0.5, 0.6], 0.9) == 2  # capped at the number of clicks


def test_summarize_by_hand():
    res = [
        ObjectResult("a", 0, "x", "cat1", 10, 3, [0.5, 1.0]),
        ObjectResult("a", 1, "y", "cat1", 10, 3, [0.7, 0.7]),
        ObjectResult("b", 0, "z", "cat2", 10, 3, [0.9, 0.9]),
    ]
    s = summarize(res)
    assert s["per_object_mean"]["IoU@1"] == pytest.approx(70.0)
    assert s["per_object_mean"]["IoU@2"] == pytest.approx(260 / 3)
    assert s["per_class"]["cat1"]["IoU@1"] == pytest.approx(60.0)
    assert s["per_class_mean"]["IoU@1"] == pytest.approx(75.0)  # (60 + 90) / 2
    assert s["per_object_mean"]["NoC@80"] == pytest.approx((2 + 2 + 1) / 3)
    assert "IoU@3" not in s["per_object_mean"]


class _ConstantModel(torch.nn.Module):
    """Predicts every point as foreground whatever the prompt."""

    def __init__(self, real):
        super().__init__()
        self.real = real
        self.config = real.config

    def encode(self, *a, **k):
        return self.real.encode(*a, **k)

    def decode(self, cloud, prompt_coords, prompt_labels, prompt_masks=None, multimask_output=True,
               chunk_size=0):
        p, n = prompt_coords.shape[0], cloud.coords.shape[1]
        c = 3 if multimask_output else 1
        return torch.ones(p, c, n), torch.zeros(p, c)


def _toy_cloud():
    rng = np.random.default_rng(0)
    xyz = np.concatenate([rng.normal(size=(150, 3)), rng.normal(size=(50, 3)) + 6]).astype(np.float32)
    return LabelledCloud(xyz=xyz, masks=[np.arange(150), np.arange(150, 200)], category="toy", name="t")


def test_constant_predictor_iou_is_mask_fraction(tmp_path):
    real = tiny_model()
    predictor = PointCloudPredictor(_ConstantModel(real))
    results = evaluate_interactive(predictor, [_toy_cloud()], max_clicks=3)
    assert [r.mask_points for r in results] == [150, 50]
    np.testing.assert_allclose(results[0].ious, [0.75] * 3)  # 150 / 200 every click
    np.testing.assert_allclose(results[1].ious, [0.25] * 3)
    s = summarize(results)
    assert s["per_object_mean"]["IoU@1"] == pytest.approx(50.0)
    assert s["per_object_mean"]["NoC@80"] == 3
    files = write_report(results, s, tmp_path / "out", title="toy")
    assert {f.name for f in files} >= {"results.json", "report.md"}
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(data["objects"]) == 2
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| | masks | IoU@1 |" in report and "| toy | 2 |" in report and "mean over masks" in report
    with pytest.raises(FileExistsError):
        write_report(results, s, tmp_path / "out")


def test_report_without_matplotlib_skips_the_plot_with_a_note(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    results = [ObjectResult("a", 0, "x", "cat", 10, 3, [0.5, 1.0])]
    notes: list[str] = []
    files = write_report(results, summarize(results), tmp_path / "out", note=notes.append)
    assert [f.name for f in files] == ["results.json", "report.md"]
    assert not (tmp_path / "out" / "iou_vs_clicks.png").exists()
    assert len(notes) == 1 and "pip install" in notes[0] and "matplotlib" in notes[0]
    assert notes[0] in (tmp_path / "out" / "report.md").read_text()
    with pytest.warns(UserWarning, match="matplotlib"):
        write_report(results, summarize(results), tmp_path / "out2")


def test_real_model_runs_on_shared_partnet(data_dir):
    """A random model on a real PartNet-Mobility object gives valid IoUs for every mask."""
    pts = sorted((data_dir / "partnet_mobility").glob("Faucet/*/point_sample/pts-10000.txt"))
    if not pts:
        pytest.skip("no PartNet-Mobility point sample in the shared data")
    xyz = np.loadtxt(pts[0], dtype=np.float32)[::5]
    labels = np.loadtxt(pts[0].parent / "label-10000.txt", dtype=np.int64)[::5]
    masks = [np.flatnonzero(labels == v) for v in np.unique(labels)]
    cloud = LabelledCloud(xyz=xyz, masks=masks, category="Faucet", name=pts[0].parent.parent.name)
    model = build_model(PointSAMConfig.base(**{**TINY_CONFIG_KW, "num_patches": 64}))
    results = evaluate_interactive(PointCloudPredictor(model), [cloud], max_clicks=4)
    assert len(results) == len(masks)
    assert all(len(r.ious) == 4 and all(0 <= v <= 1 for v in r.ious) for r in results)


def test_eval_command_end_to_end(tmp_path, capsys):
    from pointsam.checkpoint import save_model
    from pointsam.cli import main
    from pointsam.data.dataset import DatasetWriter

    with DatasetWriter(tmp_path / "ds", name="toy") as writer:
        writer.add(_toy_cloud(), split="val")
        writer.add(_toy_cloud(), split="train")
    ckpt = save_model(tiny_model(), tmp_path / "m.safetensors")
    out = tmp_path / "report"
    assert main(["eval", str(tmp_path / "ds"), "--split", "val", "--checkpoint", str(ckpt),
                 "--out", str(out), "--max-clicks", "3"]) == 0
    data = json.loads((out / "results.json").read_text())
    assert len(data["objects"]) == 2 and len(data["objects"][0]["ious"]) == 3
    assert (out / "iou_vs_clicks.png").stat().st_size > 1000
    assert "mean over classes" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "ds"), "--checkpoint", str(ckpt), "--out", str(out),
                 "--max-clicks", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "ds"), "--categories", "nope", "--checkpoint", str(ckpt),
                 "--out", str(tmp_path / "r2")]) == 2
