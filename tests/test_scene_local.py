"""LocalPredictor: regions around clicks, growth across borders, cache, global equality, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam import InputError, PointCloudPredictor
from pointsam.scene import OUTSIDE_LOGIT, LocalPredictor, SpatialIndex
from pointsam.scene.synthetic import separated_objects

from conftest import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def scene():
    return separated_objects(6000, 16, seed=1)


def test_small_cloud_equals_global_mode_exactly(model):
    xyz, rgb, _ = separated_objects(900, 4, seed=2)
    glob = PointCloudPredictor(model)
    glob.set_point_cloud(xyz, rgb)
    local = LocalPredictor(model, region_points=1000)
    local.set_point_cloud(xyz, rgb)
    clicks, labels = xyz[[5, 400, 800]], np.array([1, 0, 1])
    for args in [(clicks[:1], labels[:1]), (clicks, labels)]:
        g = glob.predict(*args)
        loc = local.predict(*args)
        for a, b in zip(g, loc, strict=True):
            np.testing.assert_array_equal(a, b)
    mask_in = glob.predict(clicks[:1], labels[:1])[2][0]
    np.testing.assert_array_equal(glob.predict(clicks, labels, mask_in, False)[2],
                                  local.predict(clicks, labels, mask_in, False)[2])
    np.testing.assert_array_equal(glob.predict(point_indices=[3, 7])[2],
                                  local.predict(point_indices=[3, 7])[2])
    np.testing.assert_array_equal(glob.predict_clicks(clicks, labels)[2],
                                  local.predict_clicks(clicks, labels)[2])
    assert local.cached_regions[0].whole


def test_region_maps_back_to_full_cloud(model, scene):
    xyz, rgb, inst = scene
    local = LocalPredictor(model, region_points=800, max_growth=0)
    local.set_point_cloud(xyz, rgb)
    click = xyz[np.flatnonzero(inst == 5)[0]]
    res = local.predict_local([click], [1])
    region = res.region
    assert region.num_points >= 800 and not region.whole
    # the region is the ball of the points nearest the click, sorted full-cloud indices
    d = np.linalg.norm(xyz.astype(np.float64) - region.center, axis=1)
    np.testing.assert_array_equal(region.indices, np.flatnonzero(d <= region.radius))
    # the local answer equals a plain predictor on the region's points, placed at their global indices
    plain = PointCloudPredictor(model)
    plain.set_point_cloud(xyz[region.indices], rgb[region.indices])
    pm, ps, pl = plain.predict([click], [1])
    masks, scores, logits = local.predict([click], [1])
    assert masks.shape == (3, len(xyz)) and logits.shape == (3, len(xyz))
    np.testing.assert_allclose(logits[:, region.indices], pl, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(masks[:, region.indices], pm)
    filled = pm.sum(axis=1) > 0.6 * region.num_points  # the ball itself ranks last (max_fill)
    np.testing.assert_allclose(scores[~filled], ps[~filled], rtol=1e-5, atol=1e-6)
    assert (scores[filled] == ps.min() - 1).all()
    outside = np.setdiff1d(np.arange(len(xyz)), region.indices)
    assert (logits[:, outside] == OUTSIDE_LOGIT).all() and not masks[:, outside].any()


class _HalfSpace(PointCloudPredictor):
    """A stand-in model answer: every point with x >= 0 is in the mask (one big object)."""

    def predict_torch(self, point_coords, point_labels, mask_input=None, multimask_output=True,
                      normalized=False):
        x = self.embedding.coords[0, :, 0] * self.normalization.scale + float(self.normalization.center[0])
        logit = torch.where(x >= 0, 5.0, -5.0)[None, None]
        c = 3 if multimask_output else 1
        logits = logit.expand(1, c, -1).clone()
        return logits > 0, torch.ones(1, c), logits


def test_region_grows_across_its_border_until_the_object_is_whole(model):
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-10, 10, (20000, 3)).astype(np.float32)
    local = LocalPredictor(_HalfSpace(model), region_points=500, growth=4.0, max_growth=6,
                           max_region_points=40000, max_fill=0.95)
    local.set_point_cloud(xyz)
    res = local.predict_local([[0.5, 0.0, 0.0]], [1])
    assert res.growth_steps >= 2
    masks, _, _ = local.predict([[0.5, 0.0, 0.0]], [1])
    # grown until it reached the whole cloud: every x >= 0 point is in the mask
    np.testing.assert_array_equal(masks[0], xyz[:, 0] >= 0)
    capped = LocalPredictor(_HalfSpace(model), region_points=500, max_growth=1, max_region_points=40000,
                            max_fill=0.95)
    capped.set_point_cloud(xyz)
    assert capped.predict_local([[0.5, 0.0, 0.0]], [1]).growth_steps == 1  # bounded


class _Everything(PointCloudPredictor):
    """A stand-in model answer: the whole region (the model's "everything" mask)."""

    def predict_torch(self, point_coords, point_labels, mask_input=None, multimask_output=True,
                      normalized=False):
        c = 3 if multimask_output else 1
        logits = torch.full((1, c, self.num_points), 5.0)
        return logits > 0, torch.ones(1, c), logits


def test_an_everything_mask_does_not_grow_the_region(model):
    xyz = np.random.default_rng(0).uniform(-10, 10, (5000, 3)).astype(np.float32)
    local = LocalPredictor(_Everything(model), region_points=500, max_growth=3)
    local.set_point_cloud(xyz)
    res = local.predict_local([[0.0, 0.0, 0.0]], [1])
    assert res.growth_steps == 0 and res.region.num_points == 500
    assert (res.scores == 0).all()  # the ball itself ranks last among candidates (1 - 1)
    single = local.predict_local([[0.0, 0.0, 0.0]], [1], multimask_output=False)
    assert single.scores.tolist() == [1.0]  # a single answer keeps the model's score


def test_refinement_clicks_stay_in_the_cached_region(model, scene):
    xyz, rgb, inst = scene
    local = LocalPredictor(model, region_points=1500, cache_size=2, max_growth=0)
    local.set_point_cloud(xyz, rgb)
    pts = xyz[np.flatnonzero(inst == 0)]
    _, scores, logits = local.predict([pts[0]], [1])
    first = [id(r) for r in local.cached_regions]
    res = local.predict_local(pts[:2], [1, 0], logits[int(scores.argmax())], False)
    assert [id(r) for r in local.cached_regions] == first  # same region, nothing re-encoded
    assert id(res.region) == first[0] and res.masks.shape == (1, res.region.num_points)


def test_cache_evicts_least_recently_used(model, scene):
    xyz, rgb, inst = scene
    local = LocalPredictor(model, region_points=600, cache_size=2, max_growth=0)
    local.set_point_cloud(xyz, rgb)
    a, b, c = (xyz[np.flatnonzero(inst == k)[0]] for k in (0, 8, 15))
    ra = local.predict_local([a], [1]).region
    rb = local.predict_local([b], [1]).region
    local.predict_local([a], [1])  # a becomes the most recently used
    rc = local.predict_local([c], [1]).region
    centres = [tuple(r.center) for r in local.cached_regions]
    assert centres == [tuple(ra.center), tuple(rc.center)]
    assert tuple(rb.center) not in centres


def test_prompts_spanning_regions_share_one_region(model, scene):
    xyz, rgb, inst = scene
    local = LocalPredictor(model, region_points=600, max_growth=0, max_region_points=6000)
    local.set_point_cloud(xyz, rgb)
    a, b = xyz[np.flatnonzero(inst == 0)[0]], xyz[np.flatnonzero(inst == 3)[0]]
    region = local.predict_local([a, b], [1, 1]).region
    assert region.covers(np.stack([a, b]))
    # prompts farther apart than the growth limit: one bigger region holds them (clicks along a wall) ...
    far = LocalPredictor(model, region_points=600, max_region_points=700)
    far.set_point_cloud(xyz, rgb)
    region = far.predict_local([xyz[0], xyz[-1]], [1, 1]).region
    assert region.num_points > 700 and region.covers(xyz[[0, -1]])
    # ... up to max_prompt_region_points, beyond which they are refused with an explanation
    tight = LocalPredictor(model, region_points=600, max_region_points=700, max_prompt_region_points=700)
    tight.set_point_cloud(xyz, rgb)
    with pytest.raises(InputError, match="max_prompt_region_points"):
        tight.predict([xyz[0], xyz[-1]], [1, 1])
    with pytest.raises(InputError, match="at least max_region_points"):
        LocalPredictor(model, max_prompt_region_points=1000)


def test_bad_input_gives_clear_errors(model, scene):
    xyz, rgb, _ = scene
    local = LocalPredictor(model, region_points=600)
    with pytest.raises(RuntimeError, match="set_point_cloud"):
        local.predict([[0, 0, 0]], [1])
    local.set_point_cloud(xyz, rgb)
    with pytest.raises(InputError, match="outside the point cloud"):
        local.predict([[1e4, 0, 0]], [1])
    with pytest.raises(InputError, match="mask_input"):
        local.predict([xyz[0]], [1], mask_input=np.zeros(5))
    with pytest.raises(InputError, match="numbers"):
        local.predict([xyz[0]], [1], mask_input=np.full(len(xyz), "a"))
    # a float64 or integer prompt answers as its float32 copy would (only the region's part is converted)
    _, _, logits = local.predict([xyz[0]], [1])
    want = local.predict([xyz[0], xyz[1]], [1, 1], logits[0], False)[2]
    got = local.predict([xyz[0], xyz[1]], [1, 1], logits[0].astype(np.float64), False)[2]
    np.testing.assert_array_equal(got, want)
    assert local.predict([xyz[0]], [1], mask_input=np.zeros(len(xyz), np.int64))[2].shape[1] == len(xyz)
    with pytest.raises(InputError, match="point_indices"):
        local.predict(point_indices=[len(xyz)])
    with pytest.raises(InputError):
        LocalPredictor(model, region_points=2)
    with pytest.raises(InputError):
        SpatialIndex(np.zeros((0, 3)))


def test_click_in_an_empty_gap_and_tiny_regions_still_answer(model, scene):
    xyz, rgb, _ = scene
    local = LocalPredictor(model, region_points=600)
    local.set_point_cloud(xyz, rgb)
    gap = xyz.min(axis=0) + (xyz.max(axis=0) - xyz.min(axis=0)) * [0.5, 0.5, 0.99]  # above every object
    masks, scores, _ = local.predict([gap], [1])
    assert masks.shape == (3, len(xyz)) and np.isfinite(scores).all()
    # a region with fewer points than the model's patches (32): patches shrink to fit
    few = LocalPredictor(model, region_points=10, max_growth=0)
    few.set_point_cloud(xyz, rgb)
    res = few.predict_local([xyz[0]], [1])
    assert res.region.num_points >= 10 and res.masks.shape[1] == res.region.num_points


def test_grown_regions_keep_the_models_patch_size(model):
    # above 100k points the global predictor switches to 256-point patches; regions must not
    xyz = np.random.default_rng(1).uniform(-10, 10, (110_000, 3)).astype(np.float32)
    local = LocalPredictor(_HalfSpace(model), region_points=26_000, growth=4.0, max_growth=1,
                           max_region_points=104_000, max_fill=0.95)
    local.set_point_cloud(xyz)
    res = local.predict_local([[0.5, 0.0, 0.0]], [1])
    assert res.growth_steps == 1 and res.region.num_points == 104_000
    inner = [c.predictor for c in local._cache.values()]
    assert [p.patch_size for p in inner] == [16, 16]  # TINY_CONFIG_KW patch_size
    assert [p.num_patches for p in inner] == [32, 128]  # 32 patches per 26,000 points


def test_try_covering_says_none_where_covering_explains():
    xyz = np.random.default_rng(0).uniform(0, 10, size=(5000, 3))
    index = SpatialIndex(xyz)
    near = index.try_covering(xyz[:1], 100, 400, 2.0, 0.0)
    assert near is not None and near.covers(xyz[:1])
    assert index.try_covering(np.array([[0.0, 0, 0], [10, 10, 10]]), 100, 400, 2.0, 0.0) is None
    with pytest.raises(InputError, match="max_prompt_region_points"):
        index.covering(np.array([[0.0, 0, 0], [10, 10, 10]]), 100, 400, 2.0, 0.0)
