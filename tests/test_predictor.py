"""PointCloudPredictor: parity from raw input, caching, batching, invariance and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam import InputError, PointSAMConfig, build_model
from pointsam.predictor import LARGE_CLOUD, PointCloudPredictor, choose_grouping

from test_parity import GOLDEN_CONFIG, LOGIT_TOL


@pytest.fixture(scope="module")
def predictor(golden, golden_model):
    p = PointCloudPredictor(golden_model)
    p.set_point_cloud(golden["input.xyz_raw"][0].numpy(), golden["input.rgb_raw"][0].numpy() / 255)
    return p


def test_raw_input_matches_official_call1(predictor, golden):
    idx = golden["prompt.pos_index"].numpy()
    masks, scores, logits = predictor.predict(point_indices=idx, point_labels=[1])
    ref = golden["call1.masks"][0]
    torch.testing.assert_close(torch.from_numpy(logits), ref, **LOGIT_TOL)
    torch.testing.assert_close(torch.from_numpy(scores), golden["call1.iou_preds"][0], **LOGIT_TOL)
    assert masks.dtype == bool and masks.shape == (3, 2048)
    assert np.array_equal(masks, logits > 0)


def test_mask_prompt_matches_official_call2(predictor, golden):
    xyz = golden["input.xyz_raw"][0].numpy()
    pts = xyz[[golden["prompt.pos_index"].item(), golden["prompt.neg_index"].item()]]
    _, scores, logits = predictor.predict(
        pts, [1, 0], mask_input=golden["call2.prompt_masks"][0].numpy(), multimask_output=False
    )
    torch.testing.assert_close(torch.from_numpy(logits), golden["call2.masks"][0], **LOGIT_TOL)
    assert scores.shape == (1,)


def test_reprompting_does_not_reencode(predictor, golden, monkeypatch):
    calls = []
    monkeypatch.setattr(predictor.model.pc_encoder, "forward",
                        lambda *a, **k: calls.append(1) or None)
    for i in range(3):
        predictor.predict(point_indices=[i * 100], point_labels=[1])
    assert calls == []


def test_coords_and_indices_agree(predictor, golden):
    xyz = golden["input.xyz_raw"][0].numpy()
    a = predictor.predict(xyz[[10, 500]], [1, 0])[2]
    b = predictor.predict(point_indices=[10, 500], point_labels=[1, 0])[2]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_predict_torch_batch_equals_single(predictor, golden):
    xyz = torch.from_numpy(golden["input.xyz_raw"][0].numpy())
    coords = torch.stack([xyz[[5, 900]], xyz[[300, 1200]]])
    labels = torch.tensor([[1, 0], [1, 1]])
    masks, scores, logits = predictor.predict_torch(coords, labels, multimask_output=False)
    assert masks.shape == (2, 1, 2048) and scores.shape == (2, 1)
    for i in range(2):
        single = predictor.predict(coords[i].numpy(), labels[i].numpy(), multimask_output=False)[2]
        np.testing.assert_allclose(logits[i].numpy(), single, atol=1e-5)


def test_similarity_invariance(golden):
    """Moving and scaling a cloud (and its prompts) does not change the masks."""
    model = build_model(GOLDEN_CONFIG).eval()
    xyz = golden["input.xyz_raw"][0].numpy().astype(np.float64)
    p = PointCloudPredictor(model)
    p.set_point_cloud(xyz)
    a = p.predict(point_indices=[7], point_labels=[1])[2]
    p.set_point_cloud(xyz * 1000.0 + 5e4)
    b = p.predict(point_indices=[7], point_labels=[1])[2]
    np.testing.assert_allclose(a, b, atol=1e-3)


def test_grouping_rules():
    assert choose_grouping(10_000, 10_000, 512, 64) == (512, 64)
    assert choose_grouping(LARGE_CLOUD + 1, LARGE_CLOUD + 1, 512, 64) == (2048, 256)
    assert choose_grouping(40, 40, 512, 64) == (40, 40)
    assert choose_grouping(1000, 20, 512, 64) == (20, 64)


@pytest.fixture(scope="module")
def tiny():
    cfg = PointSAMConfig.large(vit_depth=1, vit_width=64, vit_heads=2, num_patches=32,
                               patch_size=16)
    return PointCloudPredictor(build_model(cfg))


def test_small_cloud_adapts(tiny):
    xyz = np.random.default_rng(0).normal(size=(20, 3))
    tiny.set_point_cloud(xyz)
    assert (tiny.num_patches, tiny.patch_size) == (20, 16)
    masks, _, _ = tiny.predict(xyz[:1], [1])
    assert masks.shape == (3, 20)


def test_duplicate_points_are_fine(tiny):
    base = np.random.default_rng(1).normal(size=(10, 3))
    tiny.set_point_cloud(np.repeat(base, 5, axis=0))
    assert tiny.num_patches == 10
    assert tiny.predict(base[:1], [1])[0].shape == (3, 50)


def test_explicit_grouping_override(tiny):
    xyz = np.random.default_rng(2).normal(size=(500, 3))
    tiny.set_point_cloud(xyz, num_patches=8, patch_size=100)
    assert (tiny.num_patches, tiny.patch_size) == (8, 100)


GOOD = np.random.default_rng(3).normal(size=(200, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "xyz,rgb,match",
    [
        (np.zeros((0, 3)), None, "empty"),
        (np.array([[0, 0, np.nan]] + [[1, 2, 3]] * 5), None, "NaN"),
        (np.array([[0, 0, np.inf], [1, 1, 1], [2, 2, 2]]), None, "NaN or Inf"),
        (np.zeros((10, 2)), None, r"shape \(N, 3\)"),
        (np.zeros(30), None, r"shape \(N, 3\)"),
        (np.array([["a", "b", "c"]] * 4), None, "numbers"),
        (np.ones((10, 3)), None, "coincide"),
        (np.array([[0, 0, 0], [1, 1, 1]] * 5, float), None, "distinct"),
        (GOOD, np.full((200, 3), 2.0), r"\[0, 1\]"),
        (GOOD, np.zeros((199, 3)), "shape"),
        (GOOD, np.full((200, 3), 300), "0..255"),
    ],
)
def test_bad_clouds(tiny, xyz, rgb, match):
    with pytest.raises(InputError, match=match):
        tiny.set_point_cloud(xyz, rgb)


def test_bad_grouping_override(tiny):
    with pytest.raises(InputError, match="num_patches"):
        tiny.set_point_cloud(GOOD, num_patches=500)
    with pytest.raises(InputError, match="patch_size"):
        tiny.set_point_cloud(GOOD, patch_size=201)


def test_bad_prompts(tiny):
    tiny.set_point_cloud(GOOD)
    with pytest.raises(InputError, match="1 \\(positive"):
        tiny.predict(GOOD[:1], [2])
    with pytest.raises(InputError, match="label"):
        tiny.predict(GOOD[:2], [1])
    with pytest.raises(InputError, match="outside the point cloud"):
        tiny.predict(GOOD[:1] + 100, [1])
    with pytest.raises(InputError, match="shape"):
        tiny.predict(np.zeros((1, 2)), [1])
    with pytest.raises(InputError, match="NaN"):
        tiny.predict(np.array([[np.nan, 0, 0]]), [1])
    with pytest.raises(InputError, match="point_indices"):
        tiny.predict(point_indices=[200])
    with pytest.raises(InputError, match="one logit per point"):
        tiny.predict(GOOD[:1], [1], mask_input=np.zeros(10))
    with pytest.raises(InputError, match="at least one prompt"):
        tiny.predict()
    assert tiny.predict(GOOD[:1], [True])[0].shape == (3, 200)


def test_predict_before_set():
    p = PointCloudPredictor(build_model(PointSAMConfig.large(vit_depth=1, vit_width=64,
                                                             vit_heads=2)))
    with pytest.raises(RuntimeError, match="set_point_cloud"):
        p.predict(np.zeros((1, 3)), [1])


def test_point_features(tiny):
    xyz = np.random.default_rng(4).normal(size=(300, 3))
    tiny.set_point_cloud(xyz)
    feats = tiny.get_point_features()
    assert feats.shape == (300, 256) and np.isfinite(feats).all()
    np.testing.assert_allclose(tiny.get_point_features([5, 7]), feats[[5, 7]], atol=1e-6)
    # A patch center's feature is (almost exactly) that patch's embedding.
    center = int(tiny.embedding.patches.fps_idx[0, 3])
    np.testing.assert_allclose(feats[center], tiny.embedding.embeddings[0, 3].numpy(), atol=1e-4)
    with pytest.raises(InputError, match="indices"):
        tiny.get_point_features([300])
