"""The lifting loop of paper Sec. 4 with scripted 2D / 3D segmenters whose answers are known parts."""

from __future__ import annotations

import numpy as np
import pytest
from engine_helpers import OBJECT, OraclePointSAM, ScriptedSegmenter, render_parts

from pointsam.engine.lifting import (
    Lifter,
    LiftSettings,
    Proposal3D,
    deduplicate,
    error_click,
    interior_pixel,
)

from conftest import require


@pytest.fixture(scope="module")
def scene():
    return render_parts(require(OBJECT), size=96, views=6, points=4096)


def _best_iou(mask: np.ndarray, parts: np.ndarray) -> tuple[int, float]:
    ious = [np.count_nonzero(mask & (parts == p)) / np.count_nonzero(mask | (parts == p))
            for p in range(parts.max() + 1)]
    return int(np.argmax(ious)), float(max(ious))


def test_loop_recovers_every_part_from_exact_2d_projections(scene):
    rendered, cloud, face_part, parts = scene
    oracle = OraclePointSAM(parts)
    settings = LiftSettings(iou_threshold=0.9, min_pixels=30)
    found = Lifter(oracle, cloud, ScriptedSegmenter(rendered, face_part), settings).run()
    matched = [_best_iou(p.mask, parts) for p in found]
    # the oracle's first guesses always add a wrong part: only negative clicks from the error
    # region (and refinement on other views) can make the masks exact
    assert all(iou > 0.99 for _, iou in matched), matched
    assert sorted(p for p, _ in matched) == list(range(parts.max() + 1))  # each part once
    assert all(p.num_prompts >= 2 and p.iou > 0.9 and p.view_ious for p in found)
    record = found[0].provenance()
    assert set(record) >= {"view", "proposal", "iou", "sam_score", "refined_views"}


def test_refinement_discards_masks_that_sam_contradicts(scene):
    rendered, cloud, face_part, parts = scene
    lying = ScriptedSegmenter(rendered, face_part, wrong=True)  # prompts answered with the whole object
    settings = LiftSettings(iou_threshold=0.9, min_pixels=30)
    assert Lifter(OraclePointSAM(parts), cloud, lying, settings).run() == []
    unrefined = LiftSettings(iou_threshold=0.9, min_pixels=30, refine=False)
    assert len(Lifter(OraclePointSAM(parts), cloud, lying, unrefined).run()) > 0


def test_without_negative_clicks_the_threshold_is_not_reached(scene):
    rendered, cloud, face_part, parts = scene
    settings = LiftSettings(iou_threshold=0.9, min_pixels=30, max_prompts=1, refine=False)  # 1st guess
    found = Lifter(OraclePointSAM(parts), cloud, ScriptedSegmenter(rendered, face_part), settings).run()
    assert all(_best_iou(p.mask, parts)[1] < 0.99 for p in found)


def test_click_sampling():
    target = np.zeros((20, 20), bool)
    target[2:12, 2:12] = True
    pred = np.zeros_like(target)
    pred[2:12, 2:7] = True
    pred[15:19, 15:19] = True
    row, col, positive = error_click(target, pred)
    assert positive and target[row, col] and not pred[row, col] and 7 <= col <= 11
    assert error_click(target, target) is None
    rng = np.random.default_rng(0)
    for _ in range(20):
        r, c = interior_pixel(target, rng)
        assert 4 <= r <= 9 and 4 <= c <= 9  # at least half the max border distance inside
    assert interior_pixel(np.zeros_like(target), rng) is None


def test_deduplicate_keeps_the_most_consistent():
    a = np.zeros(100, bool)
    a[:50] = True
    b = a.copy()
    b[50] = True
    c = ~a
    props = [Proposal3D(a, 0, 0, 0.9, 0.92), Proposal3D(b, 1, 0, 0.9, 0.97), Proposal3D(c, 0, 1, 0.9, 0.9)]
    kept = deduplicate(props, 0.8)
    assert [p.view for p in kept] == [1, 0] and kept[1].mask is c
