"""MV-SAM baseline: splat rendering, per-view click rollouts and probability lifting."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam.data.dataset import LabelledCloud
from pointsam.engine.sam2d import Masks2D
from pointsam.evaluation.mvsam import MultiViewCloud, evaluate_cloud_mvsam, view_rollout


def _two_spheres(n: int = 3000) -> LabelledCloud:
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    xyz = np.concatenate([dirs[: n // 2] * 0.5 + [-0.8, 0, 0], dirs[n // 2 :] * 0.5 + [0.8, 0, 0]])
    left = np.flatnonzero(xyz[:, 0] < 0)
    rgb = np.where(xyz[:, :1] < 0, [200, 40, 40], [40, 40, 200]).astype(np.uint8)
    return LabelledCloud(xyz=xyz, rgb=rgb, masks=[left, np.flatnonzero(xyz[:, 0] >= 0)], name="spheres")


class ColourSegmenter:
    """A 2D 'SAM' that segments the connected colour region under the first click."""

    def set_images(self, images):
        self.images = images.astype(int)

    def predict(self, view, points, labels, mask_input=None, multimask=True):
        img = self.images[view]
        r, c = points[0]
        region = (np.abs(img - img[r, c]).sum(-1) < 30) & (img.sum(-1) < 700)
        logits = np.where(region, 6.0, -6.0)[None].astype(np.float32)
        return Masks2D(logits, np.ones(1, np.float32))


def test_views_see_every_point_and_lift_averages():
    cloud = _two_spheres()
    mv = MultiViewCloud(cloud, views=12, image_size=64)
    assert (mv.point_pixel >= 0).any(axis=0).mean() > 0.95
    ones = mv.lift(np.ones((12, 64, 64)))
    assert np.allclose(ones, 1.0)
    half = np.zeros((12, 64, 64))
    half[::2] = 1.0  # every other view says foreground
    lifted = mv.lift(half)
    assert 0.2 < lifted.mean() < 0.8


def test_rollout_with_a_perfect_2d_segmenter_gives_the_masks():
    cloud = _two_spheres()
    results = evaluate_cloud_mvsam(ColourSegmenter(), cloud, max_clicks=2, views=12, image_size=64)
    assert [r.mask for r in results] == [0, 1]
    for r in results:
        assert r.ious[0] > 0.95 and len(r.ious) == 2


class CountingSegmenter(ColourSegmenter):
    """ColourSegmenter that records the views it was prompted on."""

    def __init__(self):
        self.views = []

    def predict(self, view, points, labels, mask_input=None, multimask=True):
        self.views.append(view)
        return super().predict(view, points, labels, mask_input, multimask)


def test_object_outside_a_view_counts_as_background():
    """Views that do not show the object are not clicked and vote background; the others find it."""
    rng = np.random.default_rng(1)
    dirs = rng.normal(size=(40000, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    shell = dirs[dirs[:, 0] > -0.5][:16000]  # a sphere shell open towards -x ...
    ball = dirs[:800] * 0.3  # ... around a small ball, seen only through the opening
    rgb = np.repeat(np.array([[40, 40, 200], [200, 40, 40]], np.uint8), [len(shell), 800], axis=0)
    inner = np.arange(len(shell), len(shell) + 800)
    cloud = LabelledCloud(xyz=np.concatenate([shell, ball]), rgb=rgb, masks=[inner], name="nested")
    mv = MultiViewCloud(cloud, views=6, image_size=64)
    showing = [v for v in range(6) if mv.project(v, cloud.dense_masks()[0]).any()]
    assert 0 < len(showing) < 6
    hidden = next(v for v in range(6) if v not in showing)
    segmenter = CountingSegmenter()
    segmenter.set_images(mv.images)
    assert not view_rollout(segmenter, hidden, mv.project(hidden, cloud.dense_masks()[0]), clicks=2).any()
    assert segmenter.views == []  # nothing to click on: background everywhere, SAM not asked
    segmenter = CountingSegmenter()
    (result,) = evaluate_cloud_mvsam(segmenter, cloud, max_clicks=2, views=6, image_size=64)
    assert sorted(set(segmenter.views)) == showing
    assert min(result.ious) > 0.95  # shell points seen by the other views got their background vote


def test_masks_below_min_points_are_skipped_and_degenerate_clouds_refused():
    cloud = _two_spheres()
    results = evaluate_cloud_mvsam(ColourSegmenter(), cloud, max_clicks=1, views=6, image_size=48,
                                   min_mask_points=2000)
    assert results == []  # masks smaller than min_mask_points are skipped
    with pytest.raises(ValueError):
        MultiViewCloud(LabelledCloud(xyz=np.zeros((5, 3)), masks=[]), views=2, image_size=16)
