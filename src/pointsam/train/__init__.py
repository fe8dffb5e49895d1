"""Training: config, sampling/augmentation, the iterative-click training step, losses, Trainer."""

from typing import TYPE_CHECKING

from pointsam.utils.lazy import lazy_exports

_EXPORTS = {
    "PointSAMCriterion": "losses",
    "RolloutLoss": "losses",
    "TrainConfig": "config",
    "Trainer": "loop",
    "dice_loss": "losses",
    "hindsight_best": "losses",
    "iou_of": "losses",
    "mask_loss": "losses",
    "oracle_prompt_choice": "loop",
    "rollout_loss": "losses",
    "sigmoid_focal_loss": "losses",
    "train_step": "loop",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pointsam.train.config import TrainConfig  # noqa: F401
    from pointsam.train.loop import Trainer, oracle_prompt_choice, train_step  # noqa: F401
    from pointsam.train.losses import (  # noqa: F401
        PointSAMCriterion,
        RolloutLoss,
        dice_loss,
        hindsight_best,
        iou_of,
        mask_loss,
        rollout_loss,
        sigmoid_focal_loss,
    )
