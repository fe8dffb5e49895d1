"""Evaluation: the simulated-click rollout and the IoU@k metric."""

from typing import TYPE_CHECKING

from pointsam.utils.lazy import lazy_exports

_EXPORTS = {
    "ClickStep": "rollout",
    "iou_at_k": "rollout",
    "simulate_clicks": "rollout",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pointsam.evaluation.rollout import ClickStep, iou_at_k, simulate_clicks  # noqa: F401
