"""pointsam.utils.masks: one IoU rule (two empty masks: 1.0) for tensors, arrays, index sets and NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam.errors import InputError
from pointsam.utils.masks import (
    EMPTY_IOU,
    index_iou_matrix,
    iou_from_counts,
    mask_iou,
    mask_iou_matrix,
    mask_nms,
    stability_score,
)


def test_empty_masks_have_iou_one_everywhere():
    assert EMPTY_IOU == 1.0
    empty = np.zeros((2, 6), bool)
    assert mask_iou(empty[0], empty[1]) == 1.0
    assert mask_iou(torch.from_numpy(empty[0]), torch.from_numpy(empty[1])).item() == 1.0
    np.testing.assert_array_equal(mask_iou_matrix(empty), np.ones((2, 2)))
    np.testing.assert_array_equal(index_iou_matrix([np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 6),
                                  [[1.0]])
    # An empty mask against a non-empty one: 0.
    full = np.ones(6, bool)
    assert mask_iou(empty[0], full) == 0.0
    # Zero-weight points: a union of weight 0 counts as empty.
    m = np.array([[True, False], [True, False]])
    np.testing.assert_array_equal(mask_iou_matrix(m, weights=np.array([0.0, 1.0])), np.ones((2, 2)))


def test_torch_numpy_matrix_and_index_forms_agree_on_random_masks():
    rng = np.random.default_rng(0)
    a = rng.random((7, 50)) < rng.random((7, 1))
    a[3] = False  # one empty mask
    b = rng.random((5, 50)) < 0.3
    by_hand = np.array([[(x & y).sum() / (x | y).sum() if (x | y).any() else 1.0 for y in b] for x in a])
    np.testing.assert_allclose(mask_iou(a[:, None], b[None]), by_hand)
    torch_iou = mask_iou(torch.from_numpy(a)[:, None], torch.from_numpy(b)[None])
    assert torch_iou.dtype == torch.float32
    np.testing.assert_allclose(torch_iou.numpy(), by_hand, rtol=1e-6)
    both = np.concatenate([a, b])
    np.testing.assert_allclose(mask_iou_matrix(both, block=3)[:7, 7:], by_hand)
    idx = index_iou_matrix([np.flatnonzero(x) for x in a], [np.flatnonzero(y) for y in b], 50)
    np.testing.assert_allclose(idx, by_hand)


def test_image_masks_flattened():
    a = np.zeros((4, 5), bool)
    b = np.zeros((4, 5), bool)
    a[:2] = True
    b[1:3] = True
    assert float(mask_iou(a.reshape(-1), b.reshape(-1))) == pytest.approx(5 / 15)


def test_iou_from_counts():
    np.testing.assert_allclose(iou_from_counts(np.array([1, 0, 0]), np.array([4, 3, 0])), [0.25, 0.0, 1.0])
    got = iou_from_counts(torch.tensor([1, 0, 0]), torch.tensor([4, 3, 0]))
    assert got.dtype == torch.float32 and got.tolist() == [0.25, 0.0, 1.0]


def test_nms_treats_empty_duplicates_as_duplicates():
    masks = np.zeros((3, 10), bool)
    masks[0, :5] = True  # masks 1 and 2 are empty
    np.testing.assert_array_equal(mask_nms(masks, np.array([0.9, 0.8, 0.7]), 0.5), [0, 1])


def test_errors():
    with pytest.raises(InputError, match="boolean"):
        mask_iou(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(InputError, match="not one of each"):
        mask_iou(torch.zeros(3, dtype=torch.bool), np.zeros(3, bool))
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        index_iou_matrix([np.array([4])], [np.array([0])], 4)
    with pytest.raises(InputError, match="offset"):
        stability_score(torch.zeros(3), -1.0)


def test_old_names_still_importable_from_automatic():
    from pointsam import automatic

    assert automatic.mask_nms is mask_nms and automatic.stability_score is stability_score
    assert automatic.mask_iou_matrix is mask_iou_matrix
