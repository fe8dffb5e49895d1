"""The bundled default model (a small trained model shipped in the package), on categories it never saw
in training: clicks only improve the mask on average, and segment-everything reads the thresholds stored
in the checkpoint (issue 10)."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam import load_model
from pointsam.amg_defaults import PAPER_AMG_DEFAULTS, amg_defaults
from pointsam.automatic import AutomaticMaskGenerator
from pointsam.checkpoint import default_model_path
from pointsam.data.converters.partnet_mobility import mobility_object
from pointsam.evaluation.interactive import evaluate_interactive
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require

HELD_OUT = ("Safe", "KitchenPot", "Oven")  # tools/default_model_recipe.py: never trained on
CLICKS = 8


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def held_out_objects():
    root = require(DATA / "partnet_mobility")
    clouds = []
    for category in HELD_OUT:
        for folder in sorted(p for p in (root / category).iterdir() if (p / "mobility.urdf").is_file())[:2]:
            clouds.append(mobility_object(folder, points=5000, category=category))
    return clouds


@pytest.mark.slow
def test_clicks_only_improve_on_held_out_categories(model, held_out_objects):
    results = evaluate_interactive(PointCloudPredictor(model), held_out_objects, max_clicks=CLICKS)
    curve = np.array([r.ious for r in results]).mean(axis=0) * 100
    assert len(results) >= 20, "too few held-out masks to say anything"
    assert np.all(np.diff(curve) >= 0), f"mean IoU falls at some click: {np.round(curve, 1).tolist()}"
    assert curve[4] >= curve[0] + 10  # and it rises for real, not flat


def test_the_checkpoint_recommends_its_own_everything_thresholds(model):
    stored = amg_defaults(default_model_path())
    assert set(stored) >= {"pred_iou_thresh", "stability_score_thresh"}
    assert stored != PAPER_AMG_DEFAULTS  # the small model's calibrated values, not the paper's
    generator = AutomaticMaskGenerator(model)
    assert generator.pred_iou_thresh == stored["pred_iou_thresh"]
    assert generator.stability_score_thresh == stored["stability_score_thresh"]
    assert generator.predictor.views == stored.get("views", 1)
