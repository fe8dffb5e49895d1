"""Part-segmentation mIoU as ShapeNet-part reports it: per shape, per category, class and instance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from pointsam.errors import InputError


def shape_miou(pred: np.ndarray, gt: np.ndarray, num_parts: int) -> float:
    """Mean IoU over the category's `num_parts` parts of one shape; points with gt -1 are ignored.

    A part absent from both prediction and ground truth counts as IoU 1 (the PointNet convention).
    """
    pred, gt = np.asarray(pred).reshape(-1), np.asarray(gt).reshape(-1)
    if pred.shape != gt.shape:
        raise InputError(f"{pred.shape[0]} predictions for {gt.shape[0]} labels")
    keep = gt >= 0
    pred, gt = pred[keep], gt[keep]
    ious = []
    for part in range(num_parts):
        p, g = pred == part, gt == part
        union = int((p | g).sum())
        ious.append(1.0 if union == 0 else int((p & g).sum()) / union)
    return float(np.mean(ious))


def majority_baseline(support_labels: Sequence[np.ndarray], test_labels: Sequence[np.ndarray],
                      num_parts: int) -> float:
    """Mean shape mIoU of labelling every test point with the support set's most common part."""
    counts = np.zeros(num_parts, np.int64)
    for labels in support_labels:
        counts += np.bincount(labels[labels >= 0], minlength=num_parts)[:num_parts]
    top = int(counts.argmax())
    return float(np.mean([shape_miou(np.full(len(g), top), g, num_parts) for g in test_labels]))


def summarize(per_category: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Class mIoU (mean of the category means; the paper's mIoU_C) and instance mIoU (all shapes)."""
    means = [float(np.mean(v)) for v in per_category.values() if len(v)]
    shapes = [x for v in per_category.values() for x in v]
    if not shapes:
        raise InputError("no test shapes to summarize")
    return {"class_miou": float(np.mean(means)), "instance_miou": float(np.mean(shapes))}
