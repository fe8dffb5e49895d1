"""Training utilities: the Point-SAM losses over an iterative click rollout."""

from pointsam.train.losses import (
    PointSAMCriterion,
    RolloutLoss,
    dice_loss,
    iou_of,
    mask_loss,
    rollout_loss,
    sigmoid_focal_loss,
)

__all__ = [
    "PointSAMCriterion",
    "RolloutLoss",
    "dice_loss",
    "iou_of",
    "mask_loss",
    "rollout_loss",
    "sigmoid_focal_loss",
]
