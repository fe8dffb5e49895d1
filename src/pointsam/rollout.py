"""The simulated click rollout, shared by training (with autograd) and evaluation (without).

One protocol (official `PointSAM.forward`, paper Sec. 3 and 5.1): iteration 0 clicks the gt centre
and decodes three masks; the one with the highest predicted IoU is fed forward, its logits becoming
the next mask prompt. Each later iteration adds a click from the errors of the fed-forward mask
(appended to the earlier clicks) and decodes a single mask with the previous logits as mask prompt.
Training also has refinement iterations that add no click and only update the mask prompt, and may
override which first-click candidate is fed forward (`choose`); evaluation never does.

Autograd follows the caller: training calls `click_rollout` as is, evaluation under
`torch.no_grad()` (see `pointsam.evaluation.simulate_clicks`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch
from torch import Tensor

from pointsam.data.clicks import first_click, next_click
from pointsam.errors import InputError
from pointsam.modeling import CloudEmbedding, PointSAM
from pointsam.utils.masks import mask_iou

__all__ = ["ClickStep", "check_gt", "click_rollout"]


@dataclass
class ClickStep:
    """State after one rollout iteration for P prompt sets (one per gt mask)."""

    prompt_coords: Tensor  # [P, k, 3] normalized click coordinates
    prompt_labels: Tensor  # [P, k] bool, True = positive
    prompt_indices: Tensor  # [P, k] int64 point index of each click
    masks: Tensor  # [P, C, N] decoder logits, float32 (C = 3 at iteration 0, else 1)
    iou_preds: Tensor  # [P, C] float32
    chosen: Tensor  # [P] int64 index of the mask fed forward (highest predicted IoU unless `choose`)
    prompt_masks: Tensor  # [P, N] logits fed forward as the next mask prompt (the model's dtype)
    iou: Tensor  # [P] float32 IoU(prompt_masks > 0, gt), detached, on the CPU


def check_gt(gt: Tensor, n: int) -> Tensor:
    """Validate gt [N] or [P, N] bool with no empty mask; return it as [P, N] on the CPU."""
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


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def click_rollout(
    model: PointSAM,
    cloud: CloudEmbedding,
    gt: Tensor,
    num_iters: int,
    refine: Collection[int] = (),
    autocast: torch.dtype | None = None,
    choose: Callable[[int, Tensor, Tensor], Tensor] | None = None,
) -> list[ClickStep]:
    """Roll out `num_iters` iterations on B encoded clouds for gt [P, N] bool (P = B * M).

    Rows b*M .. b*M+M-1 of gt belong to cloud b (as in `PointSAM.decode`). `refine`: iterations
    (>= 1) that add no click. `autocast`: run the decoder under this autocast dtype (e.g. bfloat16).
    `choose(i, logits [P, C, N], iou_preds [P, C])`: the index [P] of the mask to feed forward after
    iteration i (training only; default: the highest predicted IoU). Returns one `ClickStep` per iteration.
    """
    if isinstance(num_iters, bool) or not isinstance(num_iters, int) or num_iters < 1:
        raise InputError(f"the rollout needs at least 1 iteration, got {num_iters!r}")
    if 0 in refine:
        raise InputError("iteration 0 must add a click (refine holds iterations >= 1)")
    coords = cloud.coords
    if coords.dim() != 3:
        raise InputError(f"cloud coords: expected [B, N, 3], got {list(coords.shape)}")
    b, n = coords.shape[:2]
    gt = check_gt(gt, n)
    p = gt.shape[0]
    if p % b:
        raise InputError(f"gt has {p} masks, not a multiple of the {b} encoded clouds")
    device = coords.device
    xyz = coords.detach().cpu().repeat_interleave(p // b, dim=0)  # [P, N, 3] cloud of each prompt set
    rows = torch.arange(p)
    indices = torch.empty(p, 0, dtype=torch.long)
    labels = torch.empty(p, 0, dtype=torch.bool)
    prev: Tensor | None = None
    steps: list[ClickStep] = []
    for i in range(num_iters):
        if i == 0:
            clicks = [first_click(xyz[j], gt[j]) for j in range(p)]
        elif i in refine:
            clicks = []
        else:
            pred = (prev.detach() > 0).cpu()
            clicks = [next_click(xyz[j], gt[j], pred[j]) for j in range(p)]
        if clicks:
            indices = torch.cat([indices, torch.tensor([[c.index] for c in clicks])], dim=1)
            labels = torch.cat([labels, torch.tensor([[c.positive] for c in clicks])], dim=1)
        prompt_coords = xyz[rows[:, None], indices].to(device)
        with _autocast(device, autocast):
            logits, iou_preds = model.decode(cloud, prompt_coords, labels.to(device), prev,
                                             multimask_output=i == 0)
        chosen = iou_preds.detach().argmax(dim=1) if choose is None else choose(i, logits, iou_preds)
        prev = logits[torch.arange(p, device=logits.device), chosen]
        iou = mask_iou(prev.detach().cpu() > 0, gt)
        steps.append(ClickStep(prompt_coords, labels.clone(), indices.clone(), logits.float(),
                               iou_preds.float(), chosen, prev, iou))
    return steps
