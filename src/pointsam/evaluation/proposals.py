"""Zero-shot object proposals (paper Sec. 5.2): recall of ground-truth masks by generated masks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from pointsam.data import LabelledCloud
from pointsam.utils.masks import index_iou_matrix

AR_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.96, 0.05), 2))
DEFAULT_IGNORED = ("floor", "undefined")


def best_iou_per_gt(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], num_points: int) -> np.ndarray:
    """For each ground-truth mask (point-index array), its best IoU with any predicted mask (0 if none)."""
    if not gt:
        return np.zeros(0)
    if not pred:
        return np.zeros(len(gt))
    return index_iou_matrix(gt, pred, num_points).max(axis=1)


def recall_metrics(best_ious: np.ndarray) -> dict[str, float]:
    """AR@25, AR@50 (recall at IoU >= 0.25 / 0.5) and AR (mean recall over IoU 0.5:0.95), in %."""
    if best_ious.size == 0:
        return {"AR": float("nan"), "AR@25": float("nan"), "AR@50": float("nan")}
    return {
        "AR": float(np.mean([(best_ious >= t).mean() for t in AR_THRESHOLDS]) * 100),
        "AR@25": float((best_ious >= 0.25).mean() * 100),
        "AR@50": float((best_ious >= 0.5).mean() * 100),
    }


def gt_for_proposals(cloud: LabelledCloud, ignored: Iterable[str] = DEFAULT_IGNORED) -> list[np.ndarray]:
    """Ground-truth masks of a cloud minus those whose name's last part is an ignored class."""
    skip = {s.lower() for s in ignored}
    names = cloud.names or [""] * cloud.num_masks
    return [m for m, n in zip(cloud.masks, names, strict=True) if n.split("/")[-1].lower() not in skip]


def evaluate_proposals(
    generator, clouds: Iterable[LabelledCloud], ignored: Iterable[str] = DEFAULT_IGNORED,
    progress: Callable[[int, LabelledCloud], None] | None = None,
) -> tuple[list[dict], dict[str, float]]:
    """Run `generator` (an AutomaticMaskGenerator) on each cloud; per-cloud rows and pooled AR."""
    rows, pooled = [], []
    for i, cloud in enumerate(clouds):
        if progress:
            progress(i, cloud)
        gt = gt_for_proposals(cloud, ignored)
        records = generator.generate(cloud.xyz, cloud.rgb)
        best = best_iou_per_gt([r["indices"] for r in records], gt, cloud.num_points)
        pooled.append(best)
        rows.append({"cloud": cloud.name, "category": cloud.category, "num_gt": len(gt),
                     "num_proposals": len(records), **recall_metrics(best)})
    return rows, recall_metrics(np.concatenate(pooled) if pooled else np.zeros(0))
