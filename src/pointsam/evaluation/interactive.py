"""Interactive-segmentation evaluation (paper Sec. 5.1): IoU@k and NoC over a labelled dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pointsam.data import LabelledCloud
from pointsam.evaluation.rollout import iou_at_k, simulate_clicks
from pointsam.predictor import PointCloudPredictor

NOC_THRESHOLDS = (0.80, 0.85, 0.90)
IOU_AT = tuple(range(1, 11))
MASKS_PER_BATCH = 16


@dataclass
class ObjectResult:
    """One ground-truth mask's rollout (an "object" of the protocol): IoU after each click, in [0, 1]."""

    cloud: str
    mask: int
    name: str
    category: str
    num_points: int
    mask_points: int
    ious: list[float]


def number_of_clicks(ious: list[float], threshold: float) -> int:
    """NoC: clicks needed to reach `threshold` IoU; len(ious) (the cap) when never reached."""
    for k, iou in enumerate(ious, start=1):
        if iou >= threshold:
            return k
    return len(ious)


def evaluate_cloud(
    predictor: PointCloudPredictor, cloud: LabelledCloud, max_clicks: int = 20,
    min_mask_points: int = 1, **grouping: int | None,
) -> list[ObjectResult]:
    """Encode `cloud` once and roll out `max_clicks` simulated clicks for each of its masks."""
    keep = [i for i, m in enumerate(cloud.masks) if len(m) >= min_mask_points]
    if not keep:
        return []
    predictor.set_point_cloud(cloud.xyz, cloud.rgb, **grouping)
    dense = cloud.dense_masks()
    results = []
    for start in range(0, len(keep), MASKS_PER_BATCH):
        batch = keep[start : start + MASKS_PER_BATCH]
        gt = torch.from_numpy(dense[batch])
        ious = iou_at_k(simulate_clicks(predictor.decoder, predictor.embedding, gt, max_clicks))
        for j, i in enumerate(batch):
            results.append(ObjectResult(
                cloud=cloud.name, mask=i, name=cloud.names[i] if cloud.names else str(i),
                category=cloud.category, num_points=cloud.num_points,
                mask_points=int(len(cloud.masks[i])), ious=[float(v) for v in ious[:, j]],
            ))
    return results


def evaluate_interactive(
    predictor: PointCloudPredictor, clouds: Iterable[LabelledCloud], max_clicks: int = 20,
    min_mask_points: int = 1, progress: Callable[[int, LabelledCloud], None] | None = None,
    **grouping: int | None,
) -> list[ObjectResult]:
    """Evaluate every mask of every cloud; `grouping` may set num_patches / patch_size."""
    results: list[ObjectResult] = []
    for i, cloud in enumerate(clouds):
        if progress:
            progress(i, cloud)
        results += evaluate_cloud(predictor, cloud, max_clicks, min_mask_points, **grouping)
    return results


def summarize(results: list[ObjectResult], ks: Iterable[int] = IOU_AT) -> dict:
    """Mean IoU@k (in %) and NoC@80/85/90 over gt masks ("per_object_mean") and per class (mean of
    class means); "num_masks" counts the evaluated gt masks."""
    if not results:
        return {"num_masks": 0}
    ks = [k for k in ks if k <= len(results[0].ious)]
    ious = np.array([r.ious for r in results]) * 100
    noc = {f"NoC@{round(t * 100)}": np.array([number_of_clicks(r.ious, t) for r in results])
           for t in NOC_THRESHOLDS}
    cats = sorted({r.category for r in results})
    by_cat = {c: np.array([r.category == c for r in results]) for c in cats}

    def block(sel: np.ndarray) -> dict:
        out = {f"IoU@{k}": float(ious[sel, k - 1].mean()) for k in ks}
        out.update({name: float(v[sel].mean()) for name, v in noc.items()})
        out["num_masks"] = int(sel.sum())
        return out

    per_class = {c: block(sel) for c, sel in by_cat.items()}
    class_mean = {key: float(np.mean([per_class[c][key] for c in cats]))
                  for key in per_class[cats[0]] if key != "num_masks"}
    return {"num_masks": len(results), "max_clicks": len(results[0].ious),
            "per_object_mean": block(np.ones(len(results), bool)), "per_class_mean": class_mean,
            "per_class": per_class}


def results_to_json(results: list[ObjectResult], summary: dict) -> dict:
    """JSON-ready dict with the summary and every object's IoU curve."""
    return {"summary": summary, "objects": [asdict(r) for r in results]}
