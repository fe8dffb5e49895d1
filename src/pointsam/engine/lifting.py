"""Paper Sec. 4: lift 2D SAM proposals to 3D masks by prompting Point-SAM, refine on other views.

For each 2D proposal: a prompt sampled inside it is lifted to its 3D point and prompts Point-SAM;
the next prompt comes from the error region between the proposal and the projection of the 3D
mask, until their IoU passes `iou_threshold`. On each other view the 3D mask is projected, a
prompt sampled in the projection asks SAM for masks, the one best matching the projection becomes
that view's proposal (the 3D mask is discarded under `refine_threshold`) and the same loop runs
with the previous 3D mask as Point-SAM's mask prompt. Duplicates are removed by 3D mask IoU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import distance_transform_edt

from pointsam.engine.fusion import FusedCloud
from pointsam.engine.sam2d import Segmenter2D
from pointsam.utils.masks import mask_iou, mask_nms


@dataclass
class LiftSettings:
    """Thresholds of the lifting loop (IoUs are 2D, on object pixels, in [0, 1])."""

    iou_threshold: float = 0.8
    refine_threshold: float = 0.5
    max_prompts: int = 8
    min_pixels: int = 32
    min_on_object: float = 0.8
    dedup_iou: float = 0.8
    max_proposals_per_view: int = 64
    refine: bool = True


@dataclass
class Proposal3D:
    """One pseudo label and where it came from."""

    mask: np.ndarray  # (N,) bool
    view: int  # view of the 2D proposal it was lifted from
    proposal: int  # index of that 2D proposal in the view
    sam_score: float  # SAM's quality score of the 2D proposal
    iou: float  # final IoU of the projection with the 2D proposal at its view
    view_ious: dict[int, float] = field(default_factory=dict)  # refined views and their IoU
    num_prompts: int = 0

    def provenance(self) -> dict:
        return {"view": self.view, "proposal": self.proposal, "sam_score": round(self.sam_score, 4),
                "iou": round(self.iou, 4), "num_points": int(self.mask.sum()),
                "num_prompts": self.num_prompts,
                "refined_views": {str(k): round(v, 4) for k, v in self.view_ious.items()}}


def iou_2d(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean image masks (pointsam.utils.masks' rule: 1 when both are empty)."""
    return float(mask_iou(a.reshape(-1), b.reshape(-1)))


def interior_pixel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """A random pixel of `mask` among those at least half the maximal distance from its border."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    top = dist.max()
    if top <= 0:
        return None
    rows, cols = np.nonzero(dist >= 0.5 * top)
    i = int(rng.integers(len(rows)))
    return int(rows[i]), int(cols[i])


def error_click(target: np.ndarray, pred: np.ndarray) -> tuple[int, int, bool] | None:
    """The error pixel farthest from its region's border: (row, col, positive) or None if no error."""
    best = None
    for region, positive in ((target & ~pred, True), (pred & ~target, False)):
        if not region.any():
            continue
        dist = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        flat = int(dist.argmax())
        if best is None or dist.flat[flat] > best[0]:
            best = (dist.flat[flat], *np.unravel_index(flat, dist.shape), positive)
    return None if best is None else (int(best[1]), int(best[2]), bool(best[3]))


@dataclass
class _State:
    indices: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    logits: np.ndarray | None = None

    def copy(self) -> _State:
        return _State(list(self.indices), list(self.labels), self.logits)


class Lifter:
    """Runs the lifting loop on one fused cloud with a 3D predictor and a 2D segmenter."""

    def __init__(self, predictor, cloud: FusedCloud, segmenter: Segmenter2D,
                 settings: LiftSettings | None = None, seed: int = 0) -> None:
        self.predictor = predictor  # PointCloudPredictor (or the same predict() signature)
        self.cloud = cloud
        self.segmenter = segmenter
        self.settings = settings or LiftSettings()
        self.rng = np.random.default_rng(seed)
        self.foreground = cloud.pixel_point >= 0

    def _decode(self, state: _State, target: np.ndarray, view: int) -> None:
        multimask = state.logits is None
        _, scores, logits = self.predictor.predict(
            point_indices=np.array(state.indices), point_labels=np.array(state.labels),
            mask_input=state.logits, multimask_output=multimask)
        best = 0
        if multimask:  # the candidate whose projection matches the 2D proposal best
            ious = [iou_2d(self.cloud.project(view, lg > 0), target) for lg in logits]
            best = max(range(len(ious)), key=lambda i: (round(ious[i], 6), float(scores[i])))
        state.logits = logits[best]

    def fit_view(self, view: int, target: np.ndarray, state: _State) -> float:
        """Add lifted prompts until the projection matches `target` (H, W); returns the final IoU."""
        s = self.settings
        for _ in range(s.max_prompts):
            if state.logits is None:
                pixel = interior_pixel(target, self.rng)
                click = None if pixel is None else (*pixel, True)
            else:
                iou = iou_2d(self.cloud.project(view, state.logits > 0), target)
                if iou > s.iou_threshold:
                    return iou
                click = error_click(target, self.cloud.project(view, state.logits > 0))
            if click is None:
                break
            point = int(self.cloud.pixel_point[view, click[0], click[1]])
            if point < 0:
                break
            state.indices.append(point)
            state.labels.append(int(click[2]))
            self._decode(state, target, view)
        if state.logits is None:
            return 0.0
        return iou_2d(self.cloud.project(view, state.logits > 0), target)

    def lift(self, view: int, target: np.ndarray, proposal: int = 0, sam_score: float = 1.0
             ) -> Proposal3D | None:
        """Lift one 2D proposal of `view` to a 3D mask (None when it cannot be made consistent)."""
        s = self.settings
        state = _State()
        iou = self.fit_view(view, target, state)
        if iou <= s.iou_threshold or state.logits is None:
            return None
        view_ious: dict[int, float] = {}
        if s.refine:
            state = self._refine(view, target, state, view_ious)
            if state is None:
                return None
        mask = state.logits > 0
        final = iou_2d(self.cloud.project(view, mask), target)
        return Proposal3D(mask, view, proposal, sam_score, final, view_ious, len(state.indices))

    def _refine(self, view: int, target: np.ndarray, state: _State, view_ious: dict[int, float]
                ) -> _State | None:
        """Refine on the other views; a view's update is kept when it converges there and the 3D
        mask still matches the original 2D proposal (`target` at `view`)."""
        s = self.settings
        mask = state.logits > 0
        areas = [(int(self.cloud.project(v, mask).sum()), v) for v in range(self.foreground.shape[0])
                 if v != view]
        for area, other in sorted(areas, reverse=True):
            if area < s.min_pixels:
                continue
            projection = self.cloud.project(other, state.logits > 0)
            if projection.sum() < s.min_pixels:
                continue
            seed = interior_pixel(projection, self.rng)
            out = self.segmenter.predict(other, np.array([seed]), np.array([1]), multimask=True)
            candidates = out.masks & self.foreground[other]
            ious = [iou_2d(c, projection) for c in candidates]
            best = int(np.argmax(ious))
            if ious[best] < s.refine_threshold:
                return None  # SAM disagrees with the 3D mask at this view: discard it
            trial = state.copy()
            iou = self.fit_view(other, candidates[best], trial)
            if iou > s.iou_threshold and iou_2d(
                    self.cloud.project(view, trial.logits > 0), target) > s.iou_threshold:
                state = trial
                view_ious[other] = iou
        return state

    def view_proposals(self, view: int) -> list[tuple[np.ndarray, float]]:
        """SAM's automatic proposals of a view, cut to the object, filtered by size and overlap."""
        s = self.settings
        fg = self.foreground[view]
        out = []
        for mask, score in self.segmenter.generate(view):
            on = mask & fg
            n = int(on.sum())
            if n >= s.min_pixels and n >= s.min_on_object * int(mask.sum()):
                out.append((on, float(score)))
        out.sort(key=lambda t: -t[1])
        return out[: s.max_proposals_per_view]

    def run(self, progress: Callable[[str], None] | None = None) -> list[Proposal3D]:
        """Lift the proposals of every view and remove duplicates."""
        s = self.settings
        found: list[Proposal3D] = []
        for view in range(self.foreground.shape[0]):
            proposals = self.view_proposals(view)
            for k, (target, score) in enumerate(proposals):
                if any(iou_2d(self.cloud.project(view, p.mask), target) > s.dedup_iou for p in found):
                    continue  # already lifted from another proposal
                lifted = self.lift(view, target, k, score)
                if lifted is not None:
                    found.append(lifted)
            if progress:
                progress(f"view {view}: {len(proposals)} proposals, {len(found)} 3D masks so far")
        return deduplicate(found, s.dedup_iou)


def deduplicate(proposals: list[Proposal3D], iou_thresh: float) -> list[Proposal3D]:
    """Keep the most consistent of 3D masks that overlap more than `iou_thresh` (point IoU)."""
    proposals = [p for p in proposals if p.mask.any()]
    if not proposals:
        return []
    masks = np.stack([p.mask for p in proposals])
    scores = np.array([p.iou + 1e-3 * p.sam_score for p in proposals])
    return [proposals[i] for i in mask_nms(masks, scores, iou_thresh)]
