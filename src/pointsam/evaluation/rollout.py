"""Evaluation click rollout (official `is_eval` protocol) and the IoU@k it yields.

Click 1 is the gt centre; the multimask output with the highest predicted IoU is kept and its
logits are fed back as the mask prompt. Each later click comes from the errors of the fed-back
mask, is appended to the earlier clicks, and is decoded single-mask (token 0) with the previous
logits as mask prompt. IoU@k = IoU(mask fed forward after k clicks > 0, gt). The rollout itself
is `pointsam.rollout.click_rollout`, the one training uses too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pointsam.errors import InputError
from pointsam.modeling import CloudEmbedding, PointSAM
from pointsam.rollout import ClickStep, click_rollout

__all__ = ["ClickStep", "iou_at_k", "simulate_clicks"]


def simulate_clicks(
    model: PointSAM, cloud: CloudEmbedding, gt: Tensor, num_clicks: int
) -> list[ClickStep]:
    """Roll out `num_clicks` simulated clicks on one encoded cloud (B = 1) for gt [N] or [P, N].

    Returns one `ClickStep` per click; IoU@k is `steps[k - 1].iou`. Runs without autograd.
    """
    if isinstance(num_clicks, bool) or not isinstance(num_clicks, int) or num_clicks < 1:
        raise InputError(f"num_clicks must be at least 1, got {num_clicks!r}")
    if cloud.coords.dim() != 3 or cloud.coords.shape[0] != 1:
        shape = list(cloud.coords.shape)
        raise InputError(f"simulate_clicks needs one encoded cloud (B = 1), got coords {shape}")
    with torch.no_grad():
        return click_rollout(model, cloud, gt, num_clicks)


def iou_at_k(steps: list[ClickStep]) -> Tensor:
    """IoU@k of a rollout as a [num_clicks, P] tensor (row k − 1 holds IoU@k)."""
    return torch.stack([s.iou for s in steps])
