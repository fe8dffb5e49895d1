"""Mask utilities shared by training, evaluation and "segment everything" (like SAM's `utils/amg.py`).

One rule for every IoU in pointsam: IoU = |A ∩ B| / |A ∪ B|, and the IoU of two empty masks is
1.0 (`EMPTY_IOU`): they are the same (empty) set. With point weights, "empty" means a union of
weight 0. Masks are boolean arrays over points (the last axis), or arrays of point indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from scipy import sparse

from pointsam.errors import InputError

__all__ = [
    "EMPTY_IOU",
    "index_iou_matrix",
    "iou_from_counts",
    "mask_iou",
    "mask_iou_matrix",
    "mask_nms",
    "stability_score",
]

EMPTY_IOU = 1.0
# Float32 sums of integer counts are exact up to 2**24; above that the matmuls use float64.
_FLOAT32_EXACT = 1 << 24
_BLOCK = 256  # masks compared at once in the pairwise IoU and the greedy NMS

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def iou_from_counts(inter: ArrayT, union: ArrayT) -> ArrayT:
    """inter / union elementwise, `EMPTY_IOU` where the union is 0 (numpy arrays or torch tensors)."""
    if isinstance(inter, torch.Tensor):
        inter = inter.to(torch.promote_types(inter.dtype, torch.float32))
        safe = torch.where(union > 0, union, torch.ones_like(union)).to(inter.dtype)
        return torch.where(union > 0, inter / safe, torch.full_like(inter, EMPTY_IOU))
    inter = np.asarray(inter, np.float64)
    union = np.asarray(union, np.float64)
    return np.divide(inter, union, out=np.full(np.broadcast(inter, union).shape, EMPTY_IOU),
                     where=union > 0)


def mask_iou(a: ArrayT, b: ArrayT) -> ArrayT:
    """IoU of boolean masks [..., N] (broadcast), shape [...]; 1.0 when both are empty.

    Two torch tensors give float32, two numpy arrays float64. Flatten image masks first
    (`mask.reshape(-1)`).
    """
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.dtype != torch.bool or b.dtype != torch.bool:
            raise InputError(f"mask_iou expects boolean masks (threshold logits with > 0), got {a.dtype}, "
                             f"{b.dtype}")
        a, b = torch.broadcast_tensors(a, b)
        return iou_from_counts((a & b).sum(-1), (a | b).sum(-1))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        raise InputError("mask_iou: pass two torch tensors or two numpy arrays, not one of each")
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.bool_ or b.dtype != np.bool_:
        raise InputError(f"mask_iou expects boolean masks, got {a.dtype}, {b.dtype}")
    return iou_from_counts(np.count_nonzero(a & b, axis=-1), np.count_nonzero(a | b, axis=-1))


def stability_score(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """SAM's stability: |logits > +offset| / |logits > -offset| over the last axis, float32.

    A score, not an IoU between two given masks: a mask with no point above -offset is empty and
    has nothing to be stable about, so it scores 0 (and fails any stability threshold).
    """
    if offset < 0:
        raise InputError(f"stability offset must be >= 0, got {offset}")
    inter = (logits > offset).sum(dim=-1, dtype=torch.float64)
    union = (logits > -offset).sum(dim=-1, dtype=torch.float64)
    score = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))
    return score.to(torch.float32)


def _matmul_dtype(total: float) -> torch.dtype:
    return torch.float32 if total < _FLOAT32_EXACT else torch.float64


def _check_masks(masks: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.dtype != np.bool_:
        raise InputError(f"masks must be a boolean (M, N) array, got {masks.dtype} {masks.shape}")
    n = masks.shape[1]
    if weights is None:
        w = np.ones(n, np.float64)
    else:
        w = np.asarray(weights, np.float64).reshape(-1)
        if w.shape[0] != n or (w < 0).any():
            raise InputError(f"weights must be {n} non-negative numbers, got shape {w.shape}")
    return masks, w


def mask_iou_matrix(masks: np.ndarray, weights: np.ndarray | None = None, block: int = _BLOCK
                    ) -> np.ndarray:
    """Pairwise IoU (M, M) of boolean masks (M, N), optionally point-weighted; chunked matmuls."""
    masks, w = _check_masks(masks, weights)
    m = masks.shape[0]
    dtype = _matmul_dtype(float(w.sum()))
    wt = torch.from_numpy(w).to(dtype)
    area = masks.astype(np.float64) @ w
    inter = np.zeros((m, m), np.float64)
    for i in range(0, m, block):
        a = torch.from_numpy(masks[i:i + block]).to(dtype) * wt
        for j in range(0, m, block):
            b = torch.from_numpy(masks[j:j + block]).to(dtype)
            inter[i:i + block, j:j + block] = (a @ b.T).numpy()
    return iou_from_counts(inter, area[:, None] + area[None, :] - inter)


def index_iou_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray], num_points: int) -> np.ndarray:
    """IoU (len(a), len(b)) of masks given as arrays of distinct point indices in [0, num_points)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ia, ib = _incidence(a, num_points), _incidence(b, num_points)
    inter = (ia @ ib.T).toarray().astype(np.float64)
    sizes_a = np.array([len(m) for m in a], np.float64)
    sizes_b = np.array([len(m) for m in b], np.float64)
    return iou_from_counts(inter, sizes_a[:, None] + sizes_b[None, :] - inter)


def _incidence(masks: Sequence[np.ndarray], num_points: int) -> sparse.csr_matrix:
    """Sparse (M, num_points) 0/1 matrix of index masks."""
    rows = np.repeat(np.arange(len(masks)), [len(m) for m in masks])
    cols = np.concatenate([np.asarray(m, np.int64).reshape(-1) for m in masks])
    if cols.size and (cols.min() < 0 or cols.max() >= num_points):
        raise InputError(f"mask indices must lie in [0, {num_points})")
    return sparse.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(masks), num_points))


def mask_nms(masks: np.ndarray, scores: np.ndarray, iou_thresh: float,
             weights: np.ndarray | None = None, block: int = _BLOCK) -> np.ndarray:
    """Greedy NMS on point-set IoU; returns kept rows, best score first.

    A mask is dropped when its IoU with an already kept (higher-scoring) mask exceeds
    `iou_thresh`. Ties in score keep the lower index. Candidates are compared in blocks against
    the kept masks only, so memory stays O(block * N) and no (N, N) or (M, N) float array is built.
    """
    masks, w = _check_masks(masks, weights)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.shape[0] != masks.shape[0]:
        raise InputError(f"scores must have one value per mask ({masks.shape[0]}), got {scores.shape}")
    if not 0.0 <= iou_thresh <= 1.0:
        raise InputError(f"iou_thresh must be in [0, 1], got {iou_thresh}")
    order = np.argsort(-scores, kind="stable")
    dtype = _matmul_dtype(float(w.sum()))
    wt = torch.from_numpy(w).to(dtype)
    area = masks.astype(np.float64) @ w
    kept: list[int] = []
    kept_blocks: list[torch.Tensor] = []  # float masks of the kept rows, in blocks
    for start in range(0, order.size, block):
        idx = order[start:start + block]
        cand = torch.from_numpy(masks[idx]).to(dtype)
        cand_w = cand * wt
        suppressed = np.zeros(idx.size, bool)
        if kept_blocks:
            kept_idx = np.asarray(kept)
            inter = torch.cat([cand_w @ k.T for k in kept_blocks], dim=1).to(torch.float64).numpy()
            iou = iou_from_counts(inter, area[idx][:, None] + area[kept_idx][None, :] - inter)
            suppressed = (iou > iou_thresh).any(axis=1)
        inter = (cand_w @ cand.T).to(torch.float64).numpy()
        iou_self = iou_from_counts(inter, area[idx][:, None] + area[idx][None, :] - inter)
        accepted: list[int] = []
        for i in range(idx.size):
            if suppressed[i] or (accepted and (iou_self[i, accepted] > iou_thresh).any()):
                continue
            accepted.append(i)
        if accepted:
            kept.extend(int(k) for k in idx[accepted])
            kept_blocks.append(cand[accepted])
    return np.asarray(kept, np.int64)
