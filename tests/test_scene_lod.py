"""Level-of-detail display subsets: bounded overview, full resolution around the work area."""

from __future__ import annotations

import numpy as np
import pytest

from pointsam import InputError
from pointsam.scene.lod import LevelOfDetail, voxel_overview
from pointsam.scene.synthetic import separated_objects


def test_voxel_overview_is_bounded_and_spread_over_the_scene():
    xyz, _, inst = separated_objects(40_000, 25, seed=3)
    picked = voxel_overview(xyz, 4000)
    assert 1000 < picked.size <= 4000 and np.all(np.diff(picked) > 0)
    assert set(np.unique(inst[picked])) == set(np.unique(inst))  # every object still visible
    np.testing.assert_array_equal(voxel_overview(xyz[:100], 4000), np.arange(100))
    with pytest.raises(InputError):
        voxel_overview(xyz, 0)
    # tuned on a sample: the same bound, and as many points (within 10%) as tuning on every point
    sampled = voxel_overview(xyz, 4000, sample=8000)
    assert sampled.size <= 4000 and sampled.size > 0.9 * picked.size


def test_display_adds_every_point_near_the_work_area():
    xyz, _, inst = separated_objects(40_000, 25, seed=3)
    lod = LevelOfDetail(xyz, overview_points=3000, detail_points=2000)
    focus = xyz[np.flatnonzero(inst == 12)].mean(axis=0)
    shown = lod.display(focus)
    near = lod.index.ball(focus, 2000).indices
    assert np.isin(near, shown).all() and np.isin(lod.overview, shown).all()
    assert shown.size <= 5000
    labels = inst  # labels live on every point; the view shows labels[shown]
    assert labels[shown].shape == shown.shape
    same, region = lod.display_with_detail(focus)
    assert np.array_equal(same, shown) and np.array_equal(region.indices, near)
    assert region.radius == pytest.approx(np.linalg.norm(xyz[near] - focus, axis=1).max(), rel=1e-6)
