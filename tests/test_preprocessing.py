"""Tests for pointsam.preprocessing: the one point check, colour rule and unit-sphere normalisation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from pointsam.errors import InputError
from pointsam.preprocessing import (
    Normalization,
    check_xyz,
    colors_to_unit,
    fit_unit_sphere,
    normalize_points,
    rgb_to_uint8,
)


def _cloud(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32) * 3 + 10


def test_check_xyz_accepts_numpy_torch_and_lists() -> None:
    xyz = _cloud(5)
    assert check_xyz(xyz) is xyz  # returned unconverted
    np.testing.assert_array_equal(check_xyz(torch.from_numpy(xyz)), xyz)
    assert check_xyz([[0, 0, 0]]).shape == (1, 3)


@pytest.mark.parametrize(
    "xyz,match",
    [
        (np.zeros((5, 2)), r"shape \(N, 3\)"),
        (np.zeros((0, 3)), "empty"),
        (np.array([["a", "b", "c"]]), "numbers"),
        (np.array([[0, 0, 0], [np.nan, 0, 0]]), "1 point.*NaN or Inf.*index 1"),
        (np.full((4, 3), 1e300), r"1e\+300.*rescale"),
    ],
)
def test_check_xyz_errors(xyz: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        check_xyz(xyz)


def test_check_xyz_min_points_and_nan_allowed_for_files() -> None:
    with pytest.raises(InputError, match="2 point.*at least 3"):
        check_xyz(np.zeros((2, 3)), min_points=3)
    nan = np.array([[np.nan, 0.0, 0.0]])
    assert check_xyz(nan, finite=False) is nan


def test_colour_rule() -> None:
    np.testing.assert_array_equal(colors_to_unit(np.array([[0, 255, 51]], np.uint8)),
                                  np.array([[0, 1, 0.2]], np.float32))
    np.testing.assert_allclose(colors_to_unit(np.array([[0, 255, 51]], np.int64)), [[0, 1, 0.2]])
    unit = colors_to_unit(np.array([[0.0, 0.5, 1.0]]))
    assert unit.dtype == np.float32
    with pytest.raises(InputError, match="look like 0..255.*astype"):
        colors_to_unit(np.array([[0.0, 128.0, 255.0]]))
    with pytest.raises(InputError, match="integer rgb must lie in 0..255"):
        colors_to_unit(np.array([[0, 0, 256]]))
    with pytest.raises(InputError, match=r"\(3, 3\) to match xyz"):
        colors_to_unit(np.zeros((2, 3)), 3)
    with pytest.raises(InputError, match="NaN"):
        colors_to_unit(np.array([[np.nan, 0, 0]]))
    np.testing.assert_array_equal(rgb_to_uint8(np.array([[0.0, 0.5, 1.0]])), [[0, 128, 255]])


def test_unit_sphere_is_the_predictors_formula_bit_for_bit() -> None:
    xyz = _cloud(5000)
    # the formula PointCloudPredictor.set_point_cloud used before this module existed
    xyz64 = xyz.astype(np.float64)
    center = xyz64.mean(axis=0)
    scale = float(np.sqrt(((xyz64 - center) ** 2).sum(axis=1).max()))
    expected = ((xyz64 - center) / scale).astype(np.float32)
    norm = fit_unit_sphere(xyz)
    assert isinstance(norm, Normalization)
    assert norm.scale == scale and np.array_equal(norm.center, center)
    assert np.array_equal(norm.apply(xyz), expected)
    np.testing.assert_allclose(norm.invert(norm.apply(xyz, np.float64)), xyz64, atol=1e-12)
    # training's formula (train/sampling.py normalize_points) gives the same float64 values
    centred = xyz64 - xyz64.mean(axis=0)
    assert np.array_equal(normalize_points(xyz), centred / float(np.sqrt((centred**2).sum(axis=1)).max()))
    assert np.abs(np.linalg.norm(normalize_points(xyz), axis=1).max() - 1) < 1e-12


def test_unit_sphere_errors_say_what_is_wrong() -> None:
    with pytest.raises(InputError, match="coincide"):
        fit_unit_sphere(np.ones((10, 3)))
    outlier = _cloud(1000)
    outlier[17] = 1e12
    with pytest.raises(InputError, match=r"1 point\(s\) lie far from the rest.*Remove the outliers"):
        fit_unit_sphere(outlier)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning on the way to the message
        with pytest.raises(InputError, match="overflows float64"):
            fit_unit_sphere(np.array([[1e300, 0, 0], [-1e300, 0, 0], [0, 1e300, 0]]))


def test_training_normalisation_never_refuses_a_cloud() -> None:
    np.testing.assert_array_equal(normalize_points(np.full((4, 3), 7.0)), np.zeros((4, 3)))
    outlier = _cloud(100)
    outlier[0] = 1e12
    assert np.isfinite(normalize_points(outlier)).all()


def test_unit_sphere_keeps_ordinary_far_points() -> None:
    # a LiDAR-like scene: a dense object plus sparse points 100x farther away is fine
    rng = np.random.default_rng(1)
    xyz = np.concatenate([rng.normal(size=(2000, 3)), rng.normal(size=(20, 3)) * 100])
    assert fit_unit_sphere(xyz).scale > 100
