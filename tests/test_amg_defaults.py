"""Segment-everything thresholds stored in (and read back from) checkpoint metadata."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from pointsam.amg_defaults import (
    AMG_METADATA_KEY,
    PAPER_AMG_DEFAULTS,
    amg_defaults,
    amg_metadata,
    parse_amg_metadata,
    write_amg_metadata,
)
from pointsam.checkpoint import CONFIG_METADATA_KEY, load_model, save_model
from pointsam.errors import CheckpointError, InputError
from tests.conftest import tiny_model


def test_written_thresholds_are_read_back_and_the_model_still_loads(tmp_path):
    path = save_model(tiny_model(), tmp_path / "m.safetensors")
    assert amg_defaults(path) == PAPER_AMG_DEFAULTS  # nothing stored: the paper's defaults
    write_amg_metadata(path, {"pred_iou_thresh": 0.45, "stability_score_thresh": 0.6})
    assert amg_defaults(path) == {"pred_iou_thresh": 0.45, "stability_score_thresh": 0.6}
    assert amg_defaults(str(path))["pred_iou_thresh"] == 0.45
    with safe_open(str(path), framework="pt") as f:
        assert CONFIG_METADATA_KEY in f.metadata()  # the config survives the rewrite
    load_model(path, device="cpu")


def test_partial_recommendation_keeps_the_other_paper_default():
    meta = amg_metadata({"pred_iou_thresh": 0.5})
    assert json.loads(meta[AMG_METADATA_KEY]) == {"pred_iou_thresh": 0.5}
    got = amg_defaults(meta)
    paper_stability = PAPER_AMG_DEFAULTS["stability_score_thresh"]
    assert got == {"pred_iou_thresh": 0.5, "stability_score_thresh": paper_stability}


def test_model_metadata_attribute_and_plain_model():
    model = tiny_model()
    assert amg_defaults(model) == PAPER_AMG_DEFAULTS
    model.metadata = amg_metadata({"stability_score_thresh": 0.7})
    assert amg_defaults(model)["stability_score_thresh"] == 0.7


def test_bundled_model_gives_thresholds_in_range():
    got = amg_defaults()
    assert set(PAPER_AMG_DEFAULTS) <= set(got) and all(0 <= got[k] <= 1 for k in PAPER_AMG_DEFAULTS)


def test_recommended_size_and_grouping_reach_the_generator_and_user_values_win():
    from pointsam.automatic import DEFAULT_MAX_POINTS, AutomaticMaskGenerator

    model = tiny_model()
    assert AutomaticMaskGenerator(model).max_points == DEFAULT_MAX_POINTS
    model.metadata = amg_metadata({"pred_iou_thresh": 0.2, "max_points": 16384, "num_patches": 64,
                                   "patch_size": 16})
    gen = AutomaticMaskGenerator(model)
    assert (gen.pred_iou_thresh, gen.max_points, gen.num_patches, gen.patch_size) == (0.2, 16384, 64, 16)
    mine = AutomaticMaskGenerator(model, max_points=5000, num_patches=32, pred_iou_thresh=0.5)
    assert (mine.pred_iou_thresh, mine.max_points, mine.num_patches, mine.patch_size) == (0.5, 5000, 32, None)
    # the recommended grouping is for a working cloud of max_points: smaller ones get fewer patches
    assert gen._grouping(16384) == (64, 16) and gen._grouping(8192) == (32, 16)
    assert gen._grouping(2000) == (32, 16)  # never fewer than the model's own 32
    assert gen._grouping(40) == (20, 16)  # a tiny cloud: at most half its points
    assert mine._grouping(100) == (32, None)  # the user's grouping is used as given
    import numpy as np

    xyz = np.random.default_rng(0).normal(size=(3000, 3)).astype(np.float32)
    assert isinstance(gen.generate(xyz), list) and gen.predictor.num_patches == 32
    for bad in ({"max_points": 0}, {"num_patches": 2.5}, {"patch_size": True}):
        with pytest.raises(InputError, match="positive integer"):
            amg_metadata(bad)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"pred_iou_thresh": 1.5}', "in \\[0, 1\\]"),
    ('{"pred_iou": 0.5}', "unknown keys"),
    ("[0.5]", "JSON object"),
])
def test_bad_metadata_is_refused_with_the_reason(text, message):
    with pytest.raises(CheckpointError, match=message):
        parse_amg_metadata({AMG_METADATA_KEY: text})


def test_bad_thresholds_are_not_written(tmp_path):
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        amg_metadata({"pred_iou_thresh": -0.1})
    with pytest.raises(InputError, match="safetensors"):
        write_amg_metadata(tmp_path / "m.pt", {"pred_iou_thresh": 0.5})
    with pytest.raises(CheckpointError, match="not found"):
        amg_defaults(tmp_path / "missing.safetensors")


def test_generator_reads_the_thresholds_stored_in_the_checkpoint(tmp_path):
    """`AutomaticMaskGenerator` with no thresholds takes the checkpoint's recommendation; explicit wins."""
    from pointsam.amg_defaults import write_amg_metadata
    from pointsam.automatic import AutomaticMaskGenerator
    from pointsam.checkpoint import load_model, save_model

    from conftest import tiny_model

    path = save_model(tiny_model(), tmp_path / "m.safetensors")
    generator = AutomaticMaskGenerator(load_model(path))
    assert (generator.pred_iou_thresh, generator.stability_score_thresh) == (0.7, 0.85)  # the paper's
    write_amg_metadata(path, {"pred_iou_thresh": 0.35, "stability_score_thresh": 0.55})
    generator = AutomaticMaskGenerator(load_model(path))
    assert (generator.pred_iou_thresh, generator.stability_score_thresh) == (0.35, 0.55)
    assert AutomaticMaskGenerator(load_model(path), pred_iou_thresh=0.9).pred_iou_thresh == 0.9


def test_recommended_views_reach_the_generator_and_user_or_predictor_views_win():
    from pointsam.automatic import AutomaticMaskGenerator
    from pointsam.predictor import PointCloudPredictor

    model = tiny_model()
    assert AutomaticMaskGenerator(model).predictor.views == 1  # no recommendation: one view
    model.metadata = amg_metadata({"views": 3})
    assert AutomaticMaskGenerator(model).predictor.views == 3
    assert AutomaticMaskGenerator(model, views=1).predictor.views == 1
    assert AutomaticMaskGenerator(PointCloudPredictor(model, views=2)).predictor.views == 2
    with pytest.raises(InputError, match="differs from the given predictor's 2"):
        AutomaticMaskGenerator(PointCloudPredictor(model, views=2), views=3)
    with pytest.raises(InputError, match="views must be an integer from 1 to 16"):
        AutomaticMaskGenerator(model, views=0)
    for bad in ({"views": 0}, {"views": 2.0}):
        with pytest.raises(InputError, match="positive integer"):
            amg_metadata(bad)
