"""`PointCloudPredictor`: encode a cloud once, then answer prompts fast (like SAM's predictor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pointsam.errors import InputError
from pointsam.modeling import CloudEmbedding, PointSAM
from pointsam.modeling.mask_decoder import DEFAULT_CHUNK
from pointsam.ops import interpolate
from pointsam.validation import as_numpy, check_labels, check_xyz, colors_to_unit

LARGE_CLOUD = 100_000  # above this many points the grouping grows (paper Sec. 3, Table 6)
LARGE_NUM_PATCHES = 2048
LARGE_PATCH_SIZE = 256
PROMPT_TOLERANCE = 1e-4  # normalized radius slack for prompts on the cloud's outermost points


@dataclass(frozen=True)
class Normalization:
    """Affine map from the cloud's coordinates to the unit sphere: (x - center) / scale."""

    center: np.ndarray  # (3,) float64
    scale: float

    def apply(self, xyz: np.ndarray) -> np.ndarray:
        return ((np.asarray(xyz, dtype=np.float64) - self.center) / self.scale).astype(np.float32)


def choose_grouping(num_points: int, num_distinct: int, num_patches: int, patch_size: int
                    ) -> tuple[int, int]:
    """Patch count L and size K for a cloud: config values, grown for big clouds, shrunk for small."""
    if num_points > LARGE_CLOUD:
        num_patches = max(num_patches, LARGE_NUM_PATCHES)
        patch_size = max(patch_size, LARGE_PATCH_SIZE)
    return min(num_patches, num_distinct), min(patch_size, num_points)


def _count_distinct(xyz: np.ndarray, limit: int) -> int:
    """Number of distinct points, exact when below `limit` (otherwise `limit` is enough)."""
    if xyz.shape[0] > 4 * limit:
        return xyz.shape[0]
    return int(np.unique(xyz, axis=0).shape[0])


class PointCloudPredictor:
    """Promptable segmentation of one point cloud at a time.

    >>> predictor = PointCloudPredictor(load_model("model.safetensors"))
    >>> predictor.set_point_cloud(xyz, rgb)          # encodes once
    >>> masks, scores, logits = predictor.predict([[0.1, 0.2, 0.3]], [1])
    """

    def __init__(self, model: PointSAM, fps_method: str = "auto", knn_method: str = "auto",
                 chunk_size: int = DEFAULT_CHUNK) -> None:
        self.model = model.eval()
        self.fps_method = fps_method
        self.knn_method = knn_method
        self.chunk_size = chunk_size
        self.reset()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset(self) -> None:
        """Forget the current cloud."""
        self._cloud: CloudEmbedding | None = None
        self._xyz: np.ndarray | None = None
        self.normalization: Normalization | None = None

    @property
    def is_set(self) -> bool:
        return self._cloud is not None

    @property
    def num_points(self) -> int:
        return 0 if self._xyz is None else self._xyz.shape[0]

    @property
    def num_patches(self) -> int:
        return self._require().patches.num_patches

    @property
    def patch_size(self) -> int:
        return self._require().patches.patch_size

    @property
    def embedding(self) -> CloudEmbedding:
        """The cached encoding of the current cloud."""
        return self._require()

    def _require(self) -> CloudEmbedding:
        if self._cloud is None:
            raise RuntimeError("call set_point_cloud(xyz, rgb) before predicting")
        return self._cloud

    @torch.no_grad()
    def set_point_cloud(
        self,
        xyz,
        rgb=None,
        *,
        num_patches: int | None = None,
        patch_size: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """Normalize and encode a cloud once; later `predict` calls only decode.

        xyz: (N, 3) coordinates in any frame/units. rgb: optional (N, 3) colours, either uint8 in
        0..255 or float in 0..1 (no colour = mid-grey). The cloud is centred on its mean and scaled
        into the unit sphere, colours mapped to [-1, 1], as the official model expects.
        `num_patches` / `patch_size` override the automatic grouping (see `choose_grouping`).
        """
        say = progress or (lambda _msg: None)
        xyz = check_xyz(xyz)
        n = xyz.shape[0]
        colours = colors_to_unit(rgb, n) if rgb is not None else np.full((n, 3), 0.5, np.float32)
        xyz64 = xyz.astype(np.float64)
        center = xyz64.mean(axis=0)
        scale = float(np.sqrt(((xyz64 - center) ** 2).sum(axis=1).max()))
        del xyz64
        if scale == 0.0:
            raise InputError("all points of the cloud coincide: nothing to segment")
        norm = Normalization(center, scale)
        coords = norm.apply(xyz)
        cfg = self.model.config
        want_l = num_patches or cfg.num_patches
        distinct = _count_distinct(coords, max(want_l, LARGE_NUM_PATCHES))
        if distinct < 3:
            raise InputError(f"the cloud has only {distinct} distinct point(s); at least 3 needed")
        auto_l, auto_k = choose_grouping(n, distinct, cfg.num_patches, cfg.patch_size)
        use_l, use_k = num_patches or auto_l, patch_size or auto_k
        if use_l < 3 or use_l > distinct:
            raise InputError(
                f"num_patches={use_l} must be between 3 and the number of distinct points ({distinct})"
            )
        if use_k < 1 or use_k > n:
            raise InputError(f"patch_size={use_k} must be between 1 and the number of points ({n})")
        dev = self.device
        coords_t = torch.from_numpy(coords).to(dev).unsqueeze(0)
        feats_t = torch.from_numpy(colours * 2.0 - 1.0).to(dev).unsqueeze(0)
        say(f"encoding {n:,} points as {use_l} patches x {use_k} points")
        self.reset()
        self._cloud = self.model.encode(coords_t, feats_t, use_l, use_k, self.fps_method,
                                         self.knn_method)
        self._xyz = xyz
        self.normalization = norm

    @torch.no_grad()
    def get_point_features(self, indices=None) -> np.ndarray:
        """Per-point features: the encoder's patch embeddings (F_pc) 3-NN interpolated to points.

        indices: optional point indices (default: every point; N x embed_dim float32, so about
        1 KB per point). Useful for training your own heads on frozen Point-SAM features.
        """
        cloud = self._require()
        idx, weight = cloud.interp_idx, cloud.interp_weight
        if indices is not None:
            sel = as_numpy(indices, "indices").reshape(-1)
            if not np.issubdtype(sel.dtype, np.integer) or (
                sel.size and (sel.min() < 0 or sel.max() >= self.num_points)
            ):
                raise InputError(f"indices must be integers in [0, {self.num_points})")
            sel_t = torch.as_tensor(sel, device=idx.device)
            idx, weight = idx[:, sel_t], weight[:, sel_t]
        return interpolate(cloud.embeddings, idx, weight)[0].cpu().numpy()

    def _prompts(self, point_coords, point_labels, point_indices) -> tuple[np.ndarray, np.ndarray]:
        """Normalized prompt coordinates (coords first, then indices) and their 0/1 labels."""
        self._require()
        coords = self._prompt_coords(point_coords, point_indices)
        if coords.shape[0] == 0:
            raise InputError("give at least one prompt point")
        labels = (np.ones(coords.shape[0], np.int64) if point_labels is None
                  else check_labels(point_labels, coords.shape[0]))
        return coords, labels

    def _prompt_coords(self, point_coords, point_indices) -> np.ndarray:
        if point_indices is not None:
            idx = as_numpy(point_indices, "point_indices").reshape(-1)
            if not np.issubdtype(idx.dtype, np.integer):
                raise InputError(f"point_indices must be integers, got dtype {idx.dtype}")
            if idx.size and (idx.min() < -self.num_points or idx.max() >= self.num_points):
                raise InputError(
                    f"point_indices must lie in [0, {self.num_points}), got {idx.min()}..{idx.max()}"
                )
            picked = self._cloud.coords[0, torch.as_tensor(idx, device=self.device)]
            coords = picked.cpu().numpy().reshape(-1, 3)
            if point_coords is None:
                return coords
            return np.concatenate([self._normalize_prompts(point_coords), coords])
        if point_coords is None:
            raise InputError("give at least one prompt: point_coords or point_indices")
        return self._normalize_prompts(point_coords)

    def _normalize_prompts(self, point_coords) -> np.ndarray:
        pts = as_numpy(point_coords, "point_coords")
        if pts.ndim == 1 and pts.shape == (3,):
            pts = pts[None]
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise InputError(f"point_coords must have shape (Q, 3), got {pts.shape}")
        if not np.isfinite(pts).all():
            raise InputError("point_coords contains NaN or Inf")
        coords = self.normalization.apply(pts)
        radius = np.abs(coords).max(axis=1)
        if (radius > 1 + PROMPT_TOLERANCE).any():
            i = int(radius.argmax())
            raise InputError(
                f"prompt point {pts[i].tolist()} lies outside the point cloud (at {radius[i]:.2f}x "
                "its bounding radius); prompts must be given in the cloud's own coordinates"
            )
        return np.clip(coords, -1.0, 1.0)

    def predict(
        self,
        point_coords=None,
        point_labels=None,
        mask_input=None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        point_indices=None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment from point prompts in the cloud's own coordinates (and/or point indices).

        point_labels: 1 = positive, 0 = negative, one per prompt (coords first, then indices);
        defaults to all positive. mask_input: (N,) logits from a previous call (e.g. the best row
        of `logits`). multimask_output gives 3 candidates (best for a single click), else 1.
        Returns masks (C, N) bool (logits if return_logits), scores (C,), logits (C, N).
        """
        coords, labels = self._prompts(point_coords, point_labels, point_indices)
        mask = None
        if mask_input is not None:
            mask = as_numpy(mask_input, "mask_input").astype(np.float32).reshape(-1)
            if mask.shape[0] != self.num_points:
                raise InputError(
                    f"mask_input must hold one logit per point ({self.num_points}), got "
                    f"{as_numpy(mask_input, 'mask_input').shape}"
                )
            mask = torch.from_numpy(mask)[None]
        masks, scores, logits = self.predict_torch(
            torch.from_numpy(coords)[None], torch.from_numpy(labels)[None], mask,
            multimask_output, normalized=True,
        )
        logits_np = logits[0].cpu().numpy()
        first = logits_np if return_logits else masks[0].cpu().numpy()
        return first, scores[0].cpu().numpy(), logits_np

    def predict_clicks(
        self, point_coords=None, point_labels=None, *, point_indices=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Replay clicks one at a time, as a person would click (and as the model was trained).

        The first click gives 3 candidates and the most confident one is kept; each later click
        is added to the prompts with the previous logits as the mask prompt. Returns the final
        (masks (C, N), scores (C,), logits (C, N)); C = 3 for a single click, else 1.
        """
        coords, labels = self._prompts(point_coords, point_labels, point_indices)
        masks, scores, logits = self._predict_normalized(coords[:1], labels[:1], None, True)
        for k in range(2, coords.shape[0] + 1):
            best = logits[int(scores.argmax())][None]
            masks, scores, logits = self._predict_normalized(coords[:k], labels[:k], best, False)
        return masks, scores, logits

    def _predict_normalized(self, coords, labels, mask, multimask):
        masks, scores, logits = self.predict_torch(
            torch.from_numpy(coords)[None], torch.from_numpy(labels)[None],
            None if mask is None else torch.from_numpy(np.ascontiguousarray(mask)),
            multimask, normalized=True,
        )
        return masks[0].cpu().numpy(), scores[0].cpu().numpy(), logits[0].cpu().numpy()

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        normalized: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched prompts on the current cloud: coords [P, Q, 3], labels [P, Q], mask [P, N].

        Coordinates are in the cloud's frame unless `normalized`. Returns masks [P, C, N] bool,
        scores [P, C] and logits [P, C, N].
        """
        cloud = self._require()
        if point_coords.ndim != 3 or point_coords.shape[-1] != 3:
            raise InputError(f"point_coords must be [P, Q, 3], got {tuple(point_coords.shape)}")
        if point_labels.shape != point_coords.shape[:2]:
            raise InputError(
                f"point_labels must be [P, Q] = {tuple(point_coords.shape[:2])}, "
                f"got {tuple(point_labels.shape)}"
            )
        if not normalized:
            flat = self._normalize_prompts(point_coords.reshape(-1, 3).cpu().numpy())
            point_coords = torch.from_numpy(flat).view(point_coords.shape)
        check_labels(point_labels.cpu().numpy(), point_labels.numel())
        if mask_input is not None and mask_input.shape != (point_coords.shape[0], self.num_points):
            raise InputError(
                f"mask_input must be [P, N] = {(point_coords.shape[0], self.num_points)}, "
                f"got {tuple(mask_input.shape)}"
            )
        dev = self.device
        logits, scores = self.model.decode(
            cloud,
            point_coords.to(dev, torch.float32),
            point_labels.to(dev),
            None if mask_input is None else mask_input.to(dev, torch.float32),
            multimask_output,
            self.chunk_size,
        )
        return logits > 0, scores, logits
