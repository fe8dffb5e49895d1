""""Segment everything": automatic mask proposals for a whole point cloud (paper Sec. 5.2).

Like SAM's `SamAutomaticMaskGenerator`, adapted to point clouds as the paper describes:

1. Clouds bigger than `max_points` are down-sampled (uniform random, seeded) to `max_points`
   points; everything below runs on that working cloud, which is encoded once.
2. `num_prompts` prompts are picked by farthest point sampling over the working cloud; each is a
   single positive click decoded with multimask output (3 candidate masks per click).
3. Candidates are filtered by predicted IoU, stability score and size (`min_mask_points`).
4. Duplicates are removed by greedy NMS on point-set IoU (no N x N matrix is ever formed).
5. Kept masks are propagated to the full cloud by nearest neighbour, so record indices always
   refer to the input cloud.

Sizes and IoUs are measured on the full cloud even when down-sampling: each working point is
weighted by the number of full-cloud points whose nearest working point it is, which makes a
working-cloud count exactly the size of the propagated mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from pointsam.errors import InputError
from pointsam.modeling import PointSAM
from pointsam.ops import farthest_point_sampling
from pointsam.predictor import PointCloudPredictor
from pointsam.preprocessing import check_rgb, check_xyz
from pointsam.utils.masks import mask_iou_matrix, mask_nms, stability_score

# The mask utilities moved to pointsam.utils.masks; these names stay importable from here.
__all__ = ["AutomaticMaskGenerator", "mask_iou_matrix", "mask_nms", "records_to_labels", "stability_score"]

def records_to_labels(records: Sequence[dict[str, Any]], num_points: int) -> np.ndarray:
    """Per-point int32 labels (-1 = unlabelled); label k = records[k], best mask wins overlaps.

    Masks are painted in ascending score (records sorted best first are painted last to first),
    so a point covered by several masks gets the label of the highest-scoring one.
    """
    if isinstance(num_points, bool) or int(num_points) != num_points or num_points < 0:
        raise InputError(f"num_points must be a non-negative integer, got {num_points!r}")
    out = np.full(int(num_points), -1, np.int32)
    scores = np.asarray([float(r.get("score", 0.0)) for r in records], np.float64)
    # Ascending score; among equal scores, later records first so earlier records win.
    order = np.lexsort((-np.arange(len(records)), scores))
    for k in order:
        idx = np.asarray(records[k]["indices"], np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= num_points):
            raise InputError(f"record {k} has indices outside [0, {num_points})")
        out[idx] = k
    return out


DEFAULT_MAX_POINTS = 100_000  # working-cloud size unless the caller or the checkpoint says otherwise


def _check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_unit(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) \
            or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class AutomaticMaskGenerator:
    """Propose masks for every object/part of a point cloud (Point-SAM "segment everything").

    >>> gen = AutomaticMaskGenerator(load_model("model.safetensors"), num_prompts=512)
    >>> records = gen.generate(xyz, rgb)              # best first
    >>> labels = gen.labels(records, len(xyz))         # (N,) int32, -1 = unlabelled

    Each record: "indices" (int64 indices into the input cloud), "predicted_iou",
    "stability_score", "score" (= predicted_iou, the NMS/sort key), "prompt_index" (input-cloud
    index of the click), "prompt_point" (its xyz), "candidate" (which of the 3 multimask outputs),
    "num_points". A candidate is kept when predicted IoU >= pred_iou_thresh, stability >=
    stability_score_thresh and its full-cloud size >= min_mask_points (and > 0). The predictor's
    current cloud is replaced by `generate`. Thresholds, `max_points`, the grouping and `views` left
    as None are the checkpoint's recommendation (`pointsam.amg_defaults`), else the paper's thresholds,
    100,000 points, the predictor's grouping and 1 view. `views` (`PointCloudPredictor(views=...)`)
    applies when a model is given; a given predictor keeps its own.
    """

    def __init__(
        self,
        predictor_or_model: PointCloudPredictor | PointSAM,
        num_prompts: int = 256,
        points_per_batch: int = 64,
        pred_iou_thresh: float | None = None,
        stability_score_thresh: float | None = None,
        stability_score_offset: float = 1.0,
        nms_iou_thresh: float = 0.7,
        min_mask_points: int = 20,
        max_masks: int | None = None,
        max_points: int | None = None,
        num_patches: int | None = None,
        patch_size: int | None = None,
        seed: int = 0,
        views: int | None = None,
    ) -> None:
        from pointsam.amg_defaults import amg_defaults  # the checkpoint's, else the paper's

        model = getattr(predictor_or_model, "model", predictor_or_model)
        recommended = amg_defaults(model if hasattr(model, "metadata") else {})
        if isinstance(predictor_or_model, PointSAM):
            own = views if views is not None else int(recommended.get("views", 1))
            self.predictor = PointCloudPredictor(predictor_or_model, views=own)
        elif hasattr(predictor_or_model, "set_point_cloud") and hasattr(predictor_or_model, "predict_torch"):
            self.predictor = predictor_or_model
        else:
            raise InputError(
                "AutomaticMaskGenerator needs a PointCloudPredictor or a PointSAM model, got "
                f"{type(predictor_or_model).__name__}"
            )
        if views is not None and views != getattr(self.predictor, "views", 1):
            raise InputError(f"views={views!r} differs from the given predictor's "
                             f"{getattr(self.predictor, 'views', 1)}: set views on the predictor")
        self.num_prompts = _check_int("num_prompts", num_prompts, 1)
        self.points_per_batch = _check_int("points_per_batch", points_per_batch, 1)
        if pred_iou_thresh is None:
            pred_iou_thresh = recommended["pred_iou_thresh"]
        if stability_score_thresh is None:
            stability_score_thresh = recommended["stability_score_thresh"]
        if max_points is None:
            max_points = int(recommended.get("max_points", DEFAULT_MAX_POINTS))
        # A recommended grouping is for a working cloud of `max_points`: smaller clouds get patches in
        # proportion (never fewer than the model's own), see `_grouping`.
        self._scaled_grouping = num_patches is None and patch_size is None and "num_patches" in recommended
        if self._scaled_grouping:
            num_patches, patch_size = int(recommended["num_patches"]), recommended.get("patch_size")
        self.pred_iou_thresh = _check_unit("pred_iou_thresh", pred_iou_thresh)
        self.stability_score_thresh = _check_unit("stability_score_thresh", stability_score_thresh)
        if isinstance(stability_score_offset, bool) or not isinstance(
                stability_score_offset, int | float | np.floating) \
                or not math.isfinite(stability_score_offset) or stability_score_offset < 0:
            raise InputError(f"stability_score_offset must be a finite number >= 0, "
                             f"got {stability_score_offset!r}")
        self.stability_score_offset = float(stability_score_offset)
        self.nms_iou_thresh = _check_unit("nms_iou_thresh", nms_iou_thresh)
        self.min_mask_points = _check_int("min_mask_points", min_mask_points, 0)
        self.max_masks = _check_int("max_masks", max_masks, 1, allow_none=True)
        self.max_points = _check_int("max_points", max_points, 3)
        self.num_patches = _check_int("num_patches", num_patches, 3, allow_none=True)
        self.patch_size = _check_int("patch_size", patch_size, 1, allow_none=True)
        self.seed = _check_int("seed", seed, 0)

    labels = staticmethod(records_to_labels)

    def _working_cloud(self, xyz: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Sample indices (sorted) and each full point's nearest sample, or (None, None)."""
        n = xyz.shape[0]
        if n <= self.max_points:
            return None, None
        rng = np.random.default_rng(self.seed)
        sample = np.sort(rng.choice(n, self.max_points, replace=False))
        pts = xyz[sample].astype(np.float64)
        _, nearest = cKDTree(pts).query(xyz.astype(np.float64), k=1, workers=-1)
        nearest = np.asarray(nearest, np.int64)
        nearest[sample] = np.arange(sample.size)  # a sample maps to itself, even with duplicates
        return sample, nearest

    def _grouping(self, n: int) -> tuple[int | None, int | None]:
        """Patches for a working cloud of `n` points: as given, or the checkpoint's recommendation
        scaled to the cloud (patches per point as at `max_points`, at least the model's own count)."""
        if not self._scaled_grouping:
            return self.num_patches, self.patch_size
        own = self.predictor.model.config.num_patches
        scaled = int(round(self.num_patches * n / self.max_points))
        num_patches = max(min(self.num_patches, scaled), min(own, self.num_patches))
        return min(num_patches, max(3, n // 2)), min(self.patch_size or n, n)

    def _prompt_rows(self, coords: torch.Tensor) -> np.ndarray:
        """FPS prompt rows over the working cloud (duplicates from exhausted FPS removed)."""
        n = coords.shape[1]
        picks = farthest_point_sampling(coords.float(), min(self.num_prompts, n)).cpu().numpy()[0]
        _, first = np.unique(picks, return_index=True)
        return picks[np.sort(first)]

    @torch.no_grad()
    def generate(self, xyz, rgb=None, progress: Callable[[str], None] | None = None
                 ) -> list[dict[str, Any]]:
        """Segment everything in a cloud; returns mask records sorted by score, best first."""
        say = progress or (lambda _msg: None)
        xyz = check_xyz(xyz)
        n_full = xyz.shape[0]
        if rgb is not None:
            rgb = check_rgb(rgb, n_full)
        sample, nearest = self._working_cloud(xyz)
        if sample is None:
            work_xyz, work_rgb = xyz, rgb
            weights = np.ones(n_full, np.float64)
        else:
            say(f"down-sampling {n_full:,} points to {sample.size:,}")
            work_xyz, work_rgb = xyz[sample], None if rgb is None else rgb[sample]
            weights = np.bincount(nearest, minlength=sample.size).astype(np.float64)
        pred = self.predictor
        num_patches, patch_size = self._grouping(work_xyz.shape[0])
        pred.set_point_cloud(work_xyz, work_rgb, num_patches=num_patches, patch_size=patch_size, progress=say)
        coords = pred.embedding.coords  # [1, n, 3] normalized
        rows = self._prompt_rows(coords)
        say(f"decoding {rows.size} prompts, {self.points_per_batch} at a time")
        masks, ious, stabs, prompts, cands = self._candidates(coords, rows, weights)
        say(f"{len(masks)} candidate masks passed the filters; running NMS")
        if masks:
            all_masks = np.stack(masks)
            keep = mask_nms(all_masks, np.asarray(ious), self.nms_iou_thresh, weights)
        else:
            all_masks, keep = np.zeros((0, coords.shape[1]), bool), np.zeros(0, np.int64)
        if self.max_masks is not None:
            keep = keep[: self.max_masks]
        records = []
        for k in keep:
            mask = all_masks[k]
            full_mask = mask if nearest is None else mask[nearest]
            idx = np.flatnonzero(full_mask).astype(np.int64)
            row = prompts[k]
            full_row = int(row if sample is None else sample[row])
            records.append({
                "indices": idx,
                "predicted_iou": float(ious[k]),
                "stability_score": float(stabs[k]),
                "score": float(ious[k]),
                "prompt_index": full_row,
                "prompt_point": np.asarray(xyz[full_row], np.float64),
                "candidate": int(cands[k]),
                "num_points": int(idx.size),
            })
        say(f"{len(records)} masks kept")
        return records

    def _candidates(self, coords: torch.Tensor, rows: np.ndarray, weights: np.ndarray):
        """Decode prompts in batches; keep candidate masks that pass the IoU/stability/size filters."""
        masks: list[np.ndarray] = []
        ious: list[float] = []
        stabs: list[float] = []
        prompts: list[int] = []
        cands: list[int] = []
        w = torch.from_numpy(weights)
        for start in range(0, rows.size, self.points_per_batch):
            batch = rows[start:start + self.points_per_batch]
            pts = coords[0, torch.from_numpy(batch).to(coords.device)].detach().cpu()[:, None, :]
            labels = torch.ones(batch.size, 1, dtype=torch.int64)
            bmasks, scores, logits = self.predictor.predict_torch(
                pts, labels, None, multimask_output=True, normalized=True
            )
            bmasks, scores, logits = bmasks.cpu(), scores.cpu().float(), logits.cpu().float()
            stab = stability_score(logits, self.stability_score_offset)
            sizes = (bmasks.to(torch.float64) * w).sum(dim=-1)
            ok = (scores >= self.pred_iou_thresh) & (stab >= self.stability_score_thresh)
            ok &= (sizes >= max(self.min_mask_points, 1e-9))
            for p, c in ok.nonzero().tolist():
                masks.append(bmasks[p, c].numpy().copy())
                ious.append(float(scores[p, c]))
                stabs.append(float(stab[p, c]))
                prompts.append(int(batch[p]))
                cands.append(int(c))
        return masks, ious, stabs, prompts, cands
