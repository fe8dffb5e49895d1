"""Training: config, sampling/augmentation, the iterative-click training step, losses, Trainer."""

from pointsam.train.config import TrainConfig
from pointsam.train.loop import Trainer, train_step
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
    "TrainConfig",
    "Trainer",
    "train_step",
    "dice_loss",
    "iou_of",
    "mask_loss",
    "rollout_loss",
    "sigmoid_focal_loss",
]
