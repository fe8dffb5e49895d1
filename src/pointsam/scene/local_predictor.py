"""`LocalPredictor`: clicks on a big cloud answered on a cached neighbourhood at the model's scale.

A click is answered on the ball of the `region_points` points nearest the prompts: that region is
encoded once by an inner `PointCloudPredictor` (regions are cached, least recently used evicted),
decoded there and mapped back to full-cloud indices. When the best mask reaches the ball's border
the region is re-centred on the mask, grown `growth` times, and the prompts re-decoded there (at
most `max_growth` times), so an object larger than one region still comes out whole. A cloud of at
most `region_points` points is one region: the answers then equal `PointCloudPredictor`'s exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pointsam.errors import InputError
from pointsam.modeling import PointSAM
from pointsam.predictor import PointCloudPredictor
from pointsam.preprocessing import (
    as_numpy,
    check_labels,
    check_mask_input,
    check_prompt_points,
    check_rgb,
    check_xyz,
)
from pointsam.scene.regions import Region, SpatialIndex

#: Logit given to points outside the region that answered (mask False). Moderate on purpose: it
#: can be passed back as `mask_input`, which the mask encoder reads as raw numbers.
OUTSIDE_LOGIT = -20.0
MAX_AUTO_PATCHES = 2048
PROMPT_TOLERANCE = 1e-4


@dataclass
class LocalResult:
    """One answer on one region: region-local masks (C, n), scores (C,), logits (C, n)."""

    region: Region
    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    growth_steps: int

    def to_global(self, num_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Full-cloud masks (C, N), scores, logits (C, N) (OUTSIDE_LOGIT outside the region)."""
        if self.region.whole:
            return self.masks, self.scores, self.logits
        c = self.logits.shape[0]
        logits = np.full((c, num_points), OUTSIDE_LOGIT, np.float32)
        logits[:, self.region.indices] = self.logits
        masks = np.zeros((c, num_points), bool)
        masks[:, self.region.indices] = self.masks
        return masks, self.scores, logits


def _outline(points: np.ndarray, sample: int = 1024) -> np.ndarray:
    """A few points standing for a point set in coverage tests: its 6 extreme points + a sample."""
    pts = np.asarray(points)
    extremes = np.concatenate([pts.argmin(axis=0), pts.argmax(axis=0)])
    step = max(1, pts.shape[0] // sample)
    return np.concatenate([pts[extremes], pts[::step]]).astype(np.float64)


@dataclass
class _Cached:
    region: Region
    predictor: PointCloudPredictor


class LocalPredictor:
    """Promptable segmentation of a big cloud, answered locally around the prompts.

    >>> local = LocalPredictor(load_model(), region_points=16384)
    >>> local.set_point_cloud(xyz, rgb)                 # builds the spatial index, encodes nothing
    >>> masks, scores, logits = local.predict([[1.0, 2.0, 0.5]], [1])   # (C, N) like the predictor

    Logits of points outside the answering region are OUTSIDE_LOGIT (-20: mask False).
    `cache_size` bounds how many encoded regions are kept (least recently used dropped first).
    Prompts far apart get one region holding them all, of up to `max_prompt_region_points` points
    (beyond that they are refused with an explanation).
    The region grows while the best mask has more than `border_fraction` of its points within
    `border_width` (fraction of the radius) of the ball's surface, unless it fills more than
    `max_fill` of the region (the model's "everything" answer, which growth cannot sharpen).
    Among several candidates, one filling more than `max_fill` of a partial region is the ball
    itself rather than an object: its score is lowered to (lowest score - 1) so it ranks last
    (whole-cloud regions keep the model's scores, as global mode).
    `num_patches` / `patch_size` set the grouping of a `region_points` region (default: the
    model's); a grown region gets proportionally more patches (at most 2048).
    """

    def __init__(self, model_or_predictor: PointSAM | PointCloudPredictor, region_points: int = 16384,
                 *, max_region_points: int = 131_072, growth: float = 4.0, max_growth: int = 2,
                 border_width: float = 0.08, border_fraction: float = 0.02, max_fill: float = 0.6,
                 cache_size: int = 4, max_prompt_region_points: int = 1_048_576,
                 num_patches: int | None = None, patch_size: int | None = None) -> None:
        if isinstance(model_or_predictor, PointSAM):
            self._template = PointCloudPredictor(model_or_predictor)
        elif isinstance(model_or_predictor, PointCloudPredictor):
            self._template = model_or_predictor
        else:
            raise InputError("LocalPredictor needs a PointSAM model or a PointCloudPredictor, got "
                             f"{type(model_or_predictor).__name__}")
        self.model = self._template.model
        ints = dict(region_points=region_points, max_region_points=max_region_points,
                    max_growth=max_growth, cache_size=cache_size,
                    max_prompt_region_points=max_prompt_region_points)
        for name, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < (
                    0 if name == "max_growth" else 1):
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if region_points < 3 or max_region_points < region_points:
            raise InputError(f"need 3 <= region_points <= max_region_points, got {region_points} "
                             f"and {max_region_points}")
        if max_prompt_region_points < max_region_points:
            raise InputError(f"max_prompt_region_points ({max_prompt_region_points}) must be at least "
                             f"max_region_points ({max_region_points})")
        if not growth > 1.0:
            raise InputError(f"growth must be > 1, got {growth!r}")
        if not 0.0 < border_width < 1.0 or not 0.0 <= border_fraction <= 1.0 or not 0.0 < max_fill <= 1.0:
            raise InputError("border_width must be in (0, 1), border_fraction in [0, 1], max_fill in (0, 1]")
        self.region_points = int(region_points)
        self.max_region_points = int(max_region_points)
        self.max_prompt_region_points = int(max_prompt_region_points)
        self.growth = float(growth)
        self.max_growth = int(max_growth)
        self.border_width = float(border_width)
        self.border_fraction = float(border_fraction)
        self.max_fill = float(max_fill)
        self.cache_size = int(cache_size)
        self.base_patches = num_patches
        self.base_patch_size = patch_size
        self.reset()

    # ------------------------------------------------------------------------------ the cloud

    def reset(self) -> None:
        """Forget the current cloud, its index and every cached region."""
        self._xyz: np.ndarray | None = None
        self._rgb: np.ndarray | None = None
        self.index: SpatialIndex | None = None
        self._cache: OrderedDict[tuple, _Cached] = OrderedDict()
        self._center = np.zeros(3)
        self._radius = 0.0

    @property
    def is_set(self) -> bool:
        return self.index is not None

    @property
    def num_points(self) -> int:
        return 0 if self._xyz is None else int(self._xyz.shape[0])

    @property
    def cached_regions(self) -> list[Region]:
        """Encoded regions in the cache, least recently used first."""
        return [c.region for c in self._cache.values()]

    def set_point_cloud(self, xyz, rgb=None, *, progress: Callable[[str], None] | None = None) -> None:
        """Keep the cloud (no copy for a float array) and build its spatial index; encodes nothing."""
        say = progress or (lambda _msg: None)
        xyz = check_xyz(xyz)
        n = xyz.shape[0]
        if rgb is not None:
            rgb = check_rgb(rgb, n)
        self.reset()
        say(f"indexing {n:,} points")
        self.index = SpatialIndex(xyz)
        self._xyz, self._rgb = xyz, rgb
        xyz64 = xyz[:: max(1, n // 1_000_000)].astype(np.float64)  # bounding sphere, as the predictor
        self._center = xyz64.mean(axis=0)
        self._radius = float(np.linalg.norm(self.index.hi - self.index.lo)) / 2 + float(
            np.linalg.norm((self.index.hi + self.index.lo) / 2 - self._center))

    def _require(self) -> np.ndarray:
        if self._xyz is None:
            raise RuntimeError("call set_point_cloud(xyz, rgb) before predicting")
        return self._xyz

    # -------------------------------------------------------------------------- the regions

    def _grouping(self, n: int, whole: bool) -> tuple[int | None, int | None]:
        """Patches of a region: the model's own grouping, more patches of the same size when grown
        (a whole-cloud region keeps the global predictor's automatic choice)."""
        if whole:
            return self.base_patches, self.base_patch_size
        base = self.base_patches or self.model.config.num_patches
        size = self.base_patch_size or self.model.config.patch_size
        scaled = int(round(base * max(1.0, n / self.region_points)))
        return min(max(base, scaled), MAX_AUTO_PATCHES, n), min(size, n)

    def _encoded(self, region: Region) -> PointCloudPredictor:
        key = (region.whole, tuple(np.round(region.center, 9)), region.num_points)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit.predictor
        if region.num_points < 3:
            raise InputError(f"the region around the prompts holds only {region.num_points} point(s)")
        xyz = self._require()
        inner = type(self._template)(self.model, chunk_size=self._template.chunk_size)
        num_patches, patch_size = self._grouping(region.num_points, region.whole)
        if region.whole:
            inner.set_point_cloud(xyz, self._rgb, num_patches=num_patches, patch_size=patch_size)
        else:
            idx = region.indices
            rgb = None if self._rgb is None else self._rgb[idx]
            if num_patches is not None and idx.size < 4 * num_patches:  # duplicates limit the patches
                num_patches = max(3, min(num_patches, np.unique(xyz[idx], axis=0).shape[0]))
            inner.set_point_cloud(xyz[idx], rgb, num_patches=num_patches, patch_size=patch_size)
        while len(self._cache) >= self.cache_size:
            self._cache.popitem(last=False)
        self._cache[key] = _Cached(region, inner)
        return inner

    def _covering_cached(self, required: np.ndarray) -> Region | None:
        """The most recently used cached region holding the required points (a refinement click near
        the border stays there; growth extends the region if the mask then reaches the border)."""
        for cached in reversed(self._cache.values()):
            if cached.region.covers(required):
                return cached.region
        return None

    # ------------------------------------------------------------------------------ prompting

    def _prompt_points(self, point_coords, point_indices) -> tuple[np.ndarray, np.ndarray | None]:
        """Prompt coordinates (Q, 3) in the cloud's frame (coords first, then indices) + indices."""
        xyz = self._require()
        parts, idx = [], None
        if point_coords is not None:
            pts = check_prompt_points(point_coords)
            far = np.linalg.norm(pts.astype(np.float64) - self._center, axis=1) / self._radius
            if (far > 1 + PROMPT_TOLERANCE).any():
                i = int(far.argmax())
                raise InputError(
                    f"prompt point {pts[i].tolist()} lies outside the point cloud (at {far[i]:.2f}x "
                    "its bounding radius); prompts must be given in the cloud's own coordinates")
            parts.append(pts.astype(np.float64))
        if point_indices is not None:
            idx = as_numpy(point_indices, "point_indices").reshape(-1)
            if not np.issubdtype(idx.dtype, np.integer):
                raise InputError(f"point_indices must be integers, got dtype {idx.dtype}")
            n = self.num_points
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise InputError(f"point_indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
            idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
            parts.append(xyz[idx].astype(np.float64))
        if not parts:
            raise InputError("give at least one prompt: point_coords or point_indices")
        coords = np.concatenate(parts)
        if coords.shape[0] == 0:
            raise InputError("give at least one prompt point")
        return coords, idx

    def _mask_input(self, mask_input) -> np.ndarray | None:
        """The mask prompt as (N,) numbers, not copied: only the answering region's part is converted
        (a float32 copy of a 50M-point prompt cost more than the whole decode)."""
        return None if mask_input is None else check_mask_input(mask_input, self.num_points)

    def _required(self, coords: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Points a region must hold: the positive prompts (all if none) and their nearest cloud
        points. A mask prompt is cropped to the region, never a reason to enlarge it."""
        keep = coords[labels == 1] if (labels == 1).any() else coords
        _, near = self.index.nearest(keep)
        return np.concatenate([keep, self._require()[near].astype(np.float64)])

    def predict_local(self, point_coords=None, point_labels=None, mask_input=None,
                      multimask_output: bool = True, *, point_indices=None) -> LocalResult:
        """Like `predict`, but returns the answer on its region (see `LocalResult`)."""
        coords, idx = self._prompt_points(point_coords, point_indices)
        labels = (np.ones(coords.shape[0], np.int64) if point_labels is None
                  else check_labels(point_labels, coords.shape[0]))
        mask = self._mask_input(mask_input)  # cropped to the answering region
        required = self._required(coords, labels)
        region = self._covering_cached(required)
        if region is None:
            if self.num_points <= self.region_points:
                region = self.index.whole()
            else:
                # prompts far apart (clicks along a long wall) may need a region above the growth
                # limit: up to max_prompt_region_points, encoded once like any other region
                region = self.index.covering(required, self.region_points, self.max_prompt_region_points,
                                             self.growth, self.border_width)
        steps = 0
        while True:
            masks, scores, logits = self._decode(region, coords, labels, idx, mask, multimask_output)
            if not region.whole and masks.shape[0] > 1:
                # a candidate filling the region is the ball itself, not an object: rank it last
                filled = masks.sum(axis=1) > self.max_fill * region.num_points
                scores = np.where(filled, scores.min() - 1.0, scores).astype(scores.dtype)
            best = masks[int(scores.argmax())]
            if steps >= self.max_growth or not self._reaches_border(region, best):
                return LocalResult(region, masks, scores, logits, steps)
            grown_req = np.concatenate([required, _outline(self._xyz[region.indices[best]])])
            size = min(int(np.ceil(region.num_points * self.growth)), self.max_region_points)
            grown = self.index.try_covering(grown_req, size, self.max_region_points, self.growth, 0.0)
            if grown is None:  # prompts + mask need more than the growth limit: keep this answer
                return LocalResult(region, masks, scores, logits, steps)
            region, steps = grown, steps + 1

    def _reaches_border(self, region: Region, best: np.ndarray) -> bool:
        """Whether the best mask is cut by the region's border (and growing could complete it).

        A mask filling more than `max_fill` of the region is the model's "everything" answer, not
        an object cut by the border: growing would only enlarge it, so it is left as it is.
        """
        if region.whole or region.num_points >= self.max_region_points:
            return False
        size = int(best.sum())
        if size > self.max_fill * region.num_points:
            return False
        touching = int((best & region.border(self.border_width)).sum())
        return touching > max(1, self.border_fraction * size)

    def _decode(self, region: Region, coords, labels, idx, mask, multimask):
        inner = self._encoded(region)
        if region.whole and idx is not None:  # exactly the global predictor's path
            n_coords = coords.shape[0] - idx.size
            norm = inner.normalization.apply(coords[:n_coords])
            picked = inner.embedding.coords[0, torch.as_tensor(idx)].cpu().numpy().reshape(-1, 3)
            ncoords = np.concatenate([np.clip(norm, -1.0, 1.0), picked])
        else:
            ncoords = np.clip(inner.normalization.apply(coords), -1.0, 1.0)
        local_mask = None
        if mask is not None:
            local_mask = torch.from_numpy(np.ascontiguousarray(
                mask if region.whole else mask[region.indices], dtype=np.float32))[None]
        masks, scores, logits = inner.predict_torch(
            torch.from_numpy(ncoords.astype(np.float32))[None], torch.from_numpy(labels)[None],
            local_mask, multimask, normalized=True)
        return masks[0].cpu().numpy(), scores[0].cpu().numpy(), logits[0].cpu().numpy()

    def predict(self, point_coords=None, point_labels=None, mask_input=None,
                multimask_output: bool = True, return_logits: bool = False, *, point_indices=None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment from prompts, as `PointCloudPredictor.predict`: masks (C, N), scores (C,), logits
        (C, N) over the full cloud; points outside the answering region get OUTSIDE_LOGIT."""
        result = self.predict_local(point_coords, point_labels, mask_input, multimask_output,
                                    point_indices=point_indices)
        masks, scores, logits = result.to_global(self.num_points)
        return (logits if return_logits else masks), scores, logits

    def predict_clicks(self, point_coords=None, point_labels=None, *, point_indices=None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Replay clicks one at a time (as `PointCloudPredictor.predict_clicks`), locally."""
        coords, idx = self._prompt_points(point_coords, point_indices)
        labels = (np.ones(coords.shape[0], np.int64) if point_labels is None
                  else check_labels(point_labels, coords.shape[0]))
        masks, scores, logits = self.predict(coords[:1], labels[:1], None, True)
        for k in range(2, coords.shape[0] + 1):
            best = logits[int(scores.argmax())]
            masks, scores, logits = self.predict(coords[:k], labels[:k], best, False)
        return masks, scores, logits
