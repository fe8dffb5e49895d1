"""Point-SAM training losses: focal + 2·dice per mask, hindsight over multimask outputs, IoU MSE.

Weights follow the official `Criterion`: focal 1 : dice 2 : IoU 1, the loss of each rollout
iteration is mean(mask loss) + MSE(iou_pred, hard IoU), and the total is the mean over iterations.
Optionally (`iou_all_candidates`, off by default as in the official code) the IoU head is regressed
on every multimask candidate, not only the hindsight-best one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pointsam.errors import InputError
from pointsam.utils.masks import mask_iou

__all__ = [
    "PointSAMCriterion",
    "RolloutLoss",
    "dice_loss",
    "hindsight_best",
    "iou_of",
    "mask_loss",
    "rollout_loss",
    "sigmoid_focal_loss",
]

DICE_SMOOTH = 1e-3
DICE_WEIGHT = 2.0


def _check_pair(logits: Tensor, targets: Tensor) -> Tensor:
    """Validate logits/targets of one shape; return the targets as logits' float dtype."""
    if not isinstance(logits, Tensor) or not isinstance(targets, Tensor):
        raise InputError("logits and targets must be torch.Tensors")
    if not logits.is_floating_point():
        raise InputError(f"logits: expected a floating-point tensor, got {logits.dtype}")
    if logits.shape != targets.shape:
        raise InputError(f"logits {list(logits.shape)} and targets {list(targets.shape)} differ in shape")
    return targets.to(logits.dtype)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = -1.0, gamma: float = 2.0) -> Tensor:
    """Focal loss of logits [..., N] vs 0/1 targets, averaged over the last (point) axis.

    alpha < 0 disables the class weighting (the official default).
    """
    t = _check_pair(logits, targets)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    return loss.mean(-1)


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Dice loss 1 − (2Σpt + 1e-3)/(Σp² + Σt + 1e-3) over the last axis, p = sigmoid(logits)."""
    t = _check_pair(logits, targets)
    p = torch.sigmoid(logits)
    num = 2 * (p * t).sum(-1) + DICE_SMOOTH
    den = (p * p).sum(-1) + t.sum(-1) + DICE_SMOOTH
    return 1 - num / den


def mask_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-mask loss focal + 2·dice, shape logits.shape[:-1]."""
    return sigmoid_focal_loss(logits, targets) + DICE_WEIGHT * dice_loss(logits, targets)


def hindsight_best(logits: Tensor, gt: Tensor) -> Tensor:
    """Index [P] of the candidate of lowest mask loss for logits [P, C, N] vs gt [P, N] bool (no grad)."""
    with torch.no_grad():
        return mask_loss(logits.float(), gt[:, None].expand_as(logits)).min(dim=1).indices


def iou_of(pred: Tensor, gt: Tensor) -> Tensor:
    """Deprecated: use `pointsam.utils.masks.mask_iou` (the same rule: 1.0 when both are empty)."""
    warnings.warn("pointsam.train.iou_of is deprecated; use pointsam.utils.masks.mask_iou",
                  DeprecationWarning, stacklevel=2)
    return mask_iou(pred, gt)


@dataclass
class RolloutLoss:
    """Total loss and per-iteration terms of a click rollout (scalars; `iou` is detached)."""

    total: Tensor
    loss_mask: list[Tensor]
    loss_iou: list[Tensor]
    iou: list[Tensor]  # mean hard IoU of the supervised mask
    chosen: list[Tensor]  # [P] index of the supervised mask (hindsight argmin when C > 1)


def rollout_loss(iterations: Sequence[tuple[Tensor, Tensor]], gt: Tensor,
                 iou_all_candidates: bool = False) -> RolloutLoss:
    """Loss of iterations [(logits [P, C, N], iou_preds [P, C]), ...] against gt [P, N] (bool).

    With C > 1 (the multimask first click) only the mask of lowest mask loss counts per sample
    (hindsight), and its iou_pred is the one regressed onto its hard IoU; with `iou_all_candidates`
    every candidate's iou_pred is regressed onto that candidate's own hard IoU.
    """
    if not iterations:
        raise InputError("rollout_loss needs at least one iteration")
    if gt.dim() != 2:
        raise InputError(f"gt: expected shape [P, N], got {list(gt.shape)}")
    gt_bool = gt if gt.dtype == torch.bool else gt > 0.5
    out = RolloutLoss(torch.zeros(()), [], [], [], [])
    terms = []
    for i, (logits, iou_preds) in enumerate(iterations):
        if logits.dim() != 3 or logits.shape[0] != gt.shape[0] or logits.shape[2] != gt.shape[1]:
            raise InputError(f"iteration {i}: logits {list(logits.shape)} do not match gt {list(gt.shape)}")
        if iou_preds.shape != logits.shape[:2]:
            want = list(logits.shape[:2])
            raise InputError(f"iteration {i}: iou_preds {list(iou_preds.shape)}, expected {want}")
        per_mask = mask_loss(logits, gt_bool[:, None].expand_as(logits))  # [P, C]
        best, chosen = per_mask.min(dim=1)
        rows = torch.arange(logits.shape[0], device=logits.device)
        with torch.no_grad():
            iou = mask_iou(logits[rows, chosen] > 0, gt_bool).to(iou_preds.dtype)
        loss_m = best.mean()
        if iou_all_candidates and logits.shape[1] > 1:
            with torch.no_grad():
                iou_all = mask_iou(logits > 0, gt_bool[:, None]).to(iou_preds.dtype)  # [P, C]
            loss_i = F.mse_loss(iou_preds, iou_all)
        else:
            loss_i = F.mse_loss(iou_preds[rows, chosen], iou)
        terms.append(loss_m + loss_i)
        out.loss_mask.append(loss_m)
        out.loss_iou.append(loss_i)
        out.iou.append(iou.mean())
        out.chosen.append(chosen)
    out.total = torch.stack(terms).mean()
    return out


class PointSAMCriterion(nn.Module):
    """Module form of `rollout_loss` (no parameters)."""

    def __init__(self, iou_all_candidates: bool = False) -> None:
        super().__init__()
        self.iou_all_candidates = iou_all_candidates

    def forward(self, iterations: Sequence[tuple[Tensor, Tensor]], gt: Tensor) -> RolloutLoss:
        """See `rollout_loss`."""
        return rollout_loss(iterations, gt, self.iou_all_candidates)
