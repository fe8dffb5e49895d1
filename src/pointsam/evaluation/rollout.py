"""Evaluation click rollout (official `is_eval` protocol) and the IoU@k it yields.

Click 1 is the gt centre; the multimask output with the highest predicted IoU is kept and its
logits are fed back as the mask prompt. Each later click comes from the errors of the fed-back
mask, is appended to the earlier clicks, and is decoded single-mask (token 0) with the previous
logits as mask prompt. IoU@k = IoU(mask fed forward after k clicks > 0, gt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pointsam.data.clicks import first_click, next_click
from pointsam.errors import InputError
from pointsam.modeling.point_sam import CloudEmbedding, PointSAM
from pointsam.train.losses import iou_of

__all__ = ["ClickStep", "iou_at_k", "simulate_clicks"]


@dataclass
class ClickStep:
    """State after k clicks for P prompt sets (one per gt mask)."""

    prompt_coords: Tensor  # [P, k, 3] normalized click coordinates
    prompt_labels: Tensor  # [P, k] bool, True = positive
    prompt_indices: Tensor  # [P, k] int64 point index of each click
    masks: Tensor  # [P, C, N] decoder logits (C = 3 at click 1, else 1)
    iou_preds: Tensor  # [P, C]
    chosen: Tensor  # [P] int64 index of the mask fed forward
    prompt_masks: Tensor  # [P, N] logits fed forward as the next mask prompt
    iou: Tensor  # [P] IoU(prompt_masks > 0, gt)


def _check_gt(gt: Tensor, n: int) -> Tensor:
    """Validate gt [N] or [P, N] bool with no empty mask; return it as [P, N]."""
    if not isinstance(gt, Tensor):
        raise InputError(f"gt must be a torch.Tensor, got {type(gt).__name__}")
    if gt.dtype != torch.bool:
        raise InputError(f"gt: expected a boolean mask, got {gt.dtype}")
    gt = gt.unsqueeze(0) if gt.dim() == 1 else gt
    if gt.dim() != 2 or gt.shape[1] != n:
        raise InputError(f"gt: expected shape [N] or [P, N] with N = {n}, got {list(gt.shape)}")
    if gt.shape[0] == 0:
        raise InputError("gt: no masks given")
    empty = (~gt.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise InputError(f"gt: mask(s) {empty} are empty, so there is no object to click on")
    return gt.cpu()


def simulate_clicks(
    model: PointSAM, cloud: CloudEmbedding, gt: Tensor, num_clicks: int
) -> list[ClickStep]:
    """Roll out `num_clicks` simulated clicks on one encoded cloud (B = 1) for gt [N] or [P, N].

    Returns one `ClickStep` per click; IoU@k is `steps[k - 1].iou`.
    """
    if num_clicks < 1:
        raise InputError(f"num_clicks must be at least 1, got {num_clicks}")
    if cloud.coords.dim() != 3 or cloud.coords.shape[0] != 1:
        shape = list(cloud.coords.shape)
        raise InputError(f"simulate_clicks needs one encoded cloud (B = 1), got coords {shape}")
    coords = cloud.coords[0]
    xyz = coords.detach().cpu()
    gt = _check_gt(gt, xyz.shape[0])
    p = gt.shape[0]
    indices = torch.empty(p, 0, dtype=torch.long)
    labels = torch.empty(p, 0, dtype=torch.bool)
    prev: Tensor | None = None
    steps: list[ClickStep] = []
    with torch.no_grad():
        for k in range(num_clicks):
            if prev is None:
                clicks = [first_click(xyz, g) for g in gt]
            else:
                pred = (prev > 0).cpu()
                clicks = [next_click(xyz, g, m) for g, m in zip(gt, pred, strict=True)]
            indices = torch.cat([indices, torch.tensor([[c.index] for c in clicks])], dim=1)
            labels = torch.cat([labels, torch.tensor([[c.positive] for c in clicks])], dim=1)
            prompt_coords = coords[indices.to(coords.device)]
            masks, iou_preds = model.decode(
                cloud, prompt_coords, labels.to(coords.device), prev, multimask_output=k == 0
            )
            chosen = iou_preds.argmax(dim=1)
            prev = masks[torch.arange(p, device=masks.device), chosen]
            iou = iou_of(prev.cpu() > 0, gt)
            steps.append(
                ClickStep(prompt_coords, labels.clone(), indices.clone(), masks, iou_preds, chosen, prev, iou)
            )
    return steps


def iou_at_k(steps: list[ClickStep]) -> Tensor:
    """IoU@k of a rollout as a [num_clicks, P] tensor (row k − 1 holds IoU@k)."""
    return torch.stack([s.iou for s in steps])
