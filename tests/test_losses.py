"""Training losses: hand-computed focal/dice values and the official golden rollout loss."""

from __future__ import annotations

import math

import pytest
import torch

from pointsam.errors import InputError
from pointsam.train import PointSAMCriterion, dice_loss, iou_of, mask_loss, rollout_loss, sigmoid_focal_loss
from pointsam.utils.masks import mask_iou

TOL = dict(atol=1e-5, rtol=0)


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_focal_by_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    targets = torch.tensor([[True, False, False]])
    p = [_sig(0.0), _sig(2.0), _sig(-1.0)]
    # target 1: -log p · (1 − p)²; target 0: -log(1 − p) · p².
    pos = -math.log(p[0]) * (1 - p[0]) ** 2
    neg = -math.log(1 - p[1]) * p[1] ** 2 - math.log(1 - p[2]) * p[2] ** 2
    expect = (pos + neg) / 3
    got = sigmoid_focal_loss(logits, targets)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expect, rel=1e-6)
    # alpha weights positives by alpha and negatives by 1 − alpha.
    a = 0.25
    expect_a = (
        a * -math.log(p[0]) * (1 - p[0]) ** 2
        + (1 - a) * (-math.log(1 - p[1]) * p[1] ** 2 - math.log(1 - p[2]) * p[2] ** 2)
    ) / 3
    assert sigmoid_focal_loss(logits, targets, alpha=a).item() == pytest.approx(expect_a, rel=1e-6)


def test_dice_by_hand():
    logits = torch.tensor([0.0, 2.0, -1.0])
    targets = torch.tensor([1.0, 1.0, 0.0])
    p = [_sig(0.0), _sig(2.0), _sig(-1.0)]
    expect = 1 - (2 * (p[0] + p[1]) + 1e-3) / (sum(v * v for v in p) + 2 + 1e-3)
    assert dice_loss(logits, targets).item() == pytest.approx(expect, rel=1e-6)
    assert mask_loss(logits, targets).item() == pytest.approx(
        sigmoid_focal_loss(logits, targets).item() + 2 * expect, rel=1e-6
    )


def test_iou_of_is_the_shared_mask_iou_and_deprecated():
    pred = torch.tensor([[True, True, False, False], [False] * 4])
    gt = torch.tensor([[True, False, True, False], [False] * 4])
    assert mask_iou(pred, gt).tolist() == [pytest.approx(1 / 3), 1.0]
    with pytest.warns(DeprecationWarning, match="mask_iou"):
        assert torch.equal(iou_of(pred, gt), mask_iou(pred, gt))
    with pytest.raises(InputError, match="boolean"):
        mask_iou(pred.float(), gt)


def test_shape_mismatch():
    with pytest.raises(InputError, match="shape"):
        dice_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InputError, match="floating"):
        sigmoid_focal_loss(torch.zeros(3, dtype=torch.long), torch.zeros(3))
    with pytest.raises(InputError, match="match gt"):
        rollout_loss([(torch.zeros(1, 3, 5), torch.zeros(1, 3))], torch.zeros(1, 4, dtype=torch.bool))


def test_golden_rollout_loss(golden):
    gt = golden["input.gt_masks"].flatten(0, 1)
    iterations = [(golden[f"rollout.{i}.masks"], golden[f"rollout.{i}.iou_preds"]) for i in range(3)]
    out = PointSAMCriterion()(iterations, gt)
    torch.testing.assert_close(out.total.reshape(1), golden["loss.total"], **TOL)
    for i in range(3):
        for key in ("loss_mask", "loss_iou", "iou"):
            torch.testing.assert_close(getattr(out, key)[i].reshape(1), golden[f"loss.{i}.{key}"], **TOL)


def test_hindsight_picks_lowest_mask_loss():
    gt = torch.tensor([[True, True, False, False]])
    good = torch.tensor([5.0, 5.0, -5.0, -5.0])
    logits = torch.stack([-good, good, torch.zeros(4)])[None]  # [1, 3, 4]: mask 1 is right
    iou_preds = torch.tensor([[0.9, 0.5, 0.1]], requires_grad=True)
    out = rollout_loss([(logits, iou_preds), (logits[:, :1], iou_preds[:, :1])], gt)
    assert out.chosen[0].tolist() == [1] and out.chosen[1].tolist() == [0]
    assert out.iou[0].item() == 1.0 and out.iou[1].item() == 0.0
    assert out.loss_iou[0].item() == pytest.approx(0.25)  # (0.5 − 1)²
    assert out.loss_iou[1].item() == pytest.approx(0.81)  # (0.9 − 0)²
    expect = (out.loss_mask[0] + out.loss_iou[0] + out.loss_mask[1] + out.loss_iou[1]) / 2
    assert out.total.item() == pytest.approx(expect.item())
    out.total.backward()
    assert iou_preds.grad[0, 2] == 0  # unchosen masks get no IoU gradient
