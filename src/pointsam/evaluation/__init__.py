"""Evaluation: the simulated-click rollout and the IoU@k metric."""

from pointsam.evaluation.rollout import ClickStep, iou_at_k, simulate_clicks

__all__ = ["ClickStep", "iou_at_k", "simulate_clicks"]
