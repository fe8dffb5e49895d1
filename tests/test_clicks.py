"""Click simulator: golden sampler cases of the official eval protocol and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam.data.clicks import Click, farthest_from_boundary, first_click, next_click
from pointsam.errors import InputError

CASES = ["fn_only", "fp_only", "both", "perfect"]


def _line(n: int = 10) -> np.ndarray:
    """n points on the x axis at x = 0, 1, ..., n-1."""
    xyz = np.zeros((n, 3), dtype=np.float32)
    xyz[:, 0] = np.arange(n)
    return xyz


def _mask(n: int, on: list[int] | range) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[list(on)] = True
    return m


def _assert_golden(click: Click, golden, case: str) -> None:
    assert click.index == golden[f"sampler.{case}.prompt_index"].item()
    assert click.positive == golden[f"sampler.{case}.prompt_labels"].item()
    assert click.fn_dist_sq == golden[f"sampler.{case}.pdist_sq"].item()
    assert click.fp_dist_sq == golden[f"sampler.{case}.ndist_sq"].item()
    coords = golden["input.coords"][0]
    assert torch.equal(coords[click.index], golden[f"sampler.{case}.prompt_coords"][0, 0])


def test_golden_first(golden):
    coords, gt = golden["input.coords"][0], golden["input.gt_masks"][0, 0]
    _assert_golden(first_click(coords, gt), golden, "first")
    # "first" is also the sampler with no prediction yet.
    _assert_golden(next_click(coords, gt, torch.zeros_like(gt)), golden, "first")


@pytest.mark.parametrize("case", CASES)
def test_golden_sampler(golden, case):
    coords, gt = golden["input.coords"][0], golden["input.gt_masks"][0, 0]
    pred = golden[f"sampler.{case}.pred_logits"][0] > 0
    _assert_golden(next_click(coords, gt, pred), golden, case)


def test_golden_numpy_inputs(golden):
    coords, gt = golden["input.coords"][0].numpy(), golden["input.gt_masks"][0, 0].numpy()
    pred = golden["sampler.both.pred_logits"][0].numpy() > 0
    _assert_golden(next_click(coords, gt, pred), golden, "both")


def test_farthest_on_a_line():
    xyz = _line(10)
    # Region 2..7: points 4 and 5 are 3 away from the border (ties go to the lower index).
    assert farthest_from_boundary(xyz, _mask(10, range(2, 8))) == (4, 9.0)
    assert farthest_from_boundary(xyz, _mask(10, range(0, 3))) == (0, 9.0)
    assert farthest_from_boundary(xyz, _mask(10, [])) == (-1, -1.0)
    assert farthest_from_boundary(xyz, _mask(10, range(10))) == (-1, -1.0)


def test_next_click_rules_on_a_line():
    xyz = _line(20)
    gt = _mask(20, range(0, 10))
    # FN = 6..9 (point 7 is 2 away from 5 and 3 from 10) vs FP = 10..11 (point 10 is 1 away from 9).
    c = next_click(xyz, gt, _mask(20, range(0, 12)) & ~_mask(20, range(6, 10)))
    assert (c.index, c.positive, c.fn_dist_sq, c.fp_dist_sq) == (7, True, 4.0, 1.0)
    # Empty FN: negative click at the FP point farthest from the FP border.
    c = next_click(xyz, gt, _mask(20, range(0, 15)))
    assert (c.index, c.positive, c.fn_dist_sq, c.fp_dist_sq) == (12, False, -1.0, 9.0)
    # Empty FP: positive click at the FN point (FN = 4..9: points 6 and 7 are 3 away, lower index wins).
    c = next_click(xyz, gt, _mask(20, range(0, 4)))
    assert (c.index, c.positive, c.fn_dist_sq, c.fp_dist_sq) == (6, True, 9.0, -1.0)
    # Equal distances (FN 7..9 around 8, FP 10..12 around 11, both 2 away): ties go to the negative click.
    c = next_click(xyz, gt, _mask(20, range(0, 13)) & ~_mask(20, range(7, 10)))
    assert (c.index, c.positive, c.fn_dist_sq, c.fp_dist_sq) == (11, False, 4.0, 4.0)
    # Perfect prediction: back to the gt centre (point 0: the line's end is not a border).
    c = next_click(xyz, gt, gt)
    assert (c.index, c.positive) == (first_click(xyz, gt).index, True) == (0, True)


def test_gt_covering_every_point():
    xyz = _line(5)
    gt = np.ones(5, dtype=bool)
    c = first_click(xyz, gt)
    assert (c.index, c.positive, c.fn_dist_sq) == (2, True, -1.0)  # nearest the centroid
    c = next_click(xyz, gt, np.zeros(5, dtype=bool))  # FN = every point: no border either
    assert (c.index, c.positive) == (2, True)


def test_bad_inputs():
    xyz = _line(5)
    gt = _mask(5, [1, 2])
    with pytest.raises(InputError, match="empty"):
        first_click(xyz, np.zeros(5, dtype=bool))
    with pytest.raises(InputError, match="empty"):
        next_click(xyz, np.zeros(5, dtype=bool), gt)
    with pytest.raises(InputError, match="boolean"):
        first_click(xyz, gt.astype(np.int64))
    with pytest.raises(InputError, match=r"\[5\]"):
        next_click(xyz, gt, gt[:4])
    with pytest.raises(InputError, match=r"\[N, 3\]"):
        first_click(xyz[None], gt)
    with pytest.raises(InputError, match="floating"):
        first_click(torch.zeros(5, 3, dtype=torch.long), gt)


def test_large_cloud_without_dense_matrix():
    """200k points: a KD-tree of the complement, far below the 160 GB of an N x N matrix."""
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, size=(200_000, 3)).astype(np.float32)
    gt = np.linalg.norm(xyz, axis=1) < 0.5
    pred = xyz[:, 0] > 0
    c = next_click(xyz, gt, pred)
    # Sanity-check the chosen candidate against a brute-force distance for that point only.
    region = (gt & ~pred) if c.positive else (~gt & pred)
    d = ((xyz[~region] - xyz[c.index]) ** 2).sum(1).min()
    assert region[c.index]
    assert np.isclose(d, c.fn_dist_sq if c.positive else c.fp_dist_sq, rtol=1e-5)
    first = first_click(xyz, gt)
    assert np.linalg.norm(xyz[first.index]) < 0.05  # the ball's centre
