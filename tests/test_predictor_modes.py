"""PointCloudPredictor(mode=...): global, local (pointsam.scene.LocalPredictor) and auto."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam import InputError, PointCloudPredictor

from conftest import tiny_model


def test_local_mode_on_a_small_cloud_equals_global():
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(3000, 3))
    rgb = rng.integers(0, 255, size=(3000, 3), dtype=np.uint8)
    model = tiny_model()
    ref = PointCloudPredictor(model)
    ref.set_point_cloud(xyz, rgb)
    loc = PointCloudPredictor(model, mode="local", local_options={"region_points": 4096})
    loc.set_point_cloud(xyz, rgb)
    assert loc.is_local and not ref.is_local and loc.num_points == 3000
    a = ref.predict_clicks(point_indices=[5, 900], point_labels=[1, 0])
    b = loc.predict_clicks(point_indices=[5, 900], point_labels=[1, 0])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[2], b[2], atol=1e-5)
    with pytest.raises(InputError, match="local mode"):
        loc.get_point_features()


def test_auto_mode_switches_on_the_threshold():
    rng = np.random.default_rng(1)
    xyz = rng.normal(size=(2000, 3))
    pred = PointCloudPredictor(tiny_model(), mode="auto", local_threshold=1000)
    pred.set_point_cloud(xyz)
    assert pred.is_local
    masks, scores, _ = pred.predict(point_indices=[10])
    assert masks.shape == (3, 2000) and scores.shape == (3,)
    pred = PointCloudPredictor(tiny_model(), mode="auto", local_threshold=5000)
    pred.set_point_cloud(xyz)
    assert not pred.is_local


@pytest.mark.parametrize("kwargs", [{"mode": "tiles"}, {"local_threshold": 0}, {"local_threshold": True}])
def test_bad_mode_arguments_are_refused(kwargs):
    with pytest.raises(InputError):
        PointCloudPredictor(tiny_model(), **kwargs)


@pytest.mark.parametrize("coords", [[["a", "b", "c"]], [[0.0, np.nan, 0.0]], [[0.0, 0.0]]])
def test_local_mode_checks_prompts_like_global(coords):
    xyz = np.random.default_rng(2).normal(size=(2000, 3))
    for mode in ("global", "local"):
        pred = PointCloudPredictor(tiny_model(), mode=mode)
        pred.set_point_cloud(xyz)
        with pytest.raises(InputError, match="point_coords"):
            pred.predict(coords, [1])
