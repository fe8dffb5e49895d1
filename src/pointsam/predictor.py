"""`PointCloudPredictor`: encode a cloud once, then answer prompts fast (like SAM's predictor)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import ArrayLike

from pointsam.errors import InputError, PointSAMError
from pointsam.modeling import CloudEmbedding, PointSAM
from pointsam.modeling.patch_embed import group_points
from pointsam.ops import DEFAULT_CHUNK, interpolate
from pointsam.preprocessing import (
    Normalization,
    as_numpy,
    check_labels,
    check_mask_input,
    check_prompt_points,
    check_xyz,
    colors_to_unit,
    fit_unit_sphere,
)
from pointsam.views import ViewEnsemble, check_views

LARGE_CLOUD = 100_000  # above this many points the grouping grows (paper Sec. 3, Table 6)
LARGE_NUM_PATCHES = 2048
LARGE_PATCH_SIZE = 256
PROMPT_TOLERANCE = 1e-4  # normalized radius slack for prompts on the cloud's outermost points
MAX_PROMPT_POINTS = 1024  # points per prompt set (the decoder's self-attention is quadratic in it)
PROMPT_BATCH = 64  # prompt sets decoded together in predict_torch (bounds its temporaries)
MASK_LOGIT_LIMIT = 1e6  # |mask_input| above this overflows the mask encoder in float32
NEGATIVE_ONLY_LOGIT = -1.0  # logits of a prompt with no positive click are capped here


PREDICTOR_MODES = ("global", "local", "auto")
LOCAL_THRESHOLD = 500_000  # "auto" answers clicks locally above this many points (rooms stay global)


class PointCloudNotSetError(PointSAMError, RuntimeError):
    """`predict` (or a query of the cloud) before `set_point_cloud`."""


def choose_grouping(num_points: int, num_distinct: int, num_patches: int, patch_size: int
                    ) -> tuple[int, int]:
    """Patch count L and size K for a cloud: config values, grown for big clouds, shrunk for small."""
    if num_points > LARGE_CLOUD:
        num_patches = max(num_patches, LARGE_NUM_PATCHES)
        patch_size = max(patch_size, LARGE_PATCH_SIZE)
    return min(num_patches, num_distinct), min(patch_size, num_points)


def _count_distinct(xyz: np.ndarray, limit: int) -> int:
    """Number of distinct points; clouds over 4 * `limit` points are assumed to have enough."""
    if xyz.shape[0] > 4 * limit:
        return xyz.shape[0]
    return int(np.unique(xyz, axis=0).shape[0])


class PointCloudPredictor:
    """Promptable segmentation of one point cloud at a time.

    >>> predictor = PointCloudPredictor(load_model("model.safetensors"))
    >>> predictor.set_point_cloud(xyz, rgb)          # encodes once
    >>> masks, scores, logits = predictor.predict([[0.1, 0.2, 0.3]], [1])
    """

    def __init__(self, model: PointSAM, fps_method: str | None = None, knn_method: str | None = None,
                 chunk_size: int = DEFAULT_CHUNK, *, mode: str = "global",
                 local_threshold: int = LOCAL_THRESHOLD, local_options: dict | None = None,
                 views: int = 1) -> None:
        """`mode`: "global" encodes the whole cloud (the paper's protocol); "local" answers each click
        on a cached region around it (`pointsam.scene.LocalPredictor`, for big scans); "auto" is
        local above `local_threshold` points. `local_options` go to `LocalPredictor`. `views` > 1
        averages the answers over that many turns of the cloud about y (`pointsam.views`): a little
        more accurate, `views` times the encode and decode time."""
        if mode not in PREDICTOR_MODES:
            raise InputError(f"mode must be one of {', '.join(PREDICTOR_MODES)}, got {mode!r}")
        if isinstance(local_threshold, bool) or not isinstance(local_threshold, int) or local_threshold < 1:
            raise InputError(f"local_threshold must be a positive integer, got {local_threshold!r}")
        self.mode, self.local_threshold, self.local_options = mode, local_threshold, dict(local_options or {})
        self.views = check_views(views)
        if fps_method is not None or knn_method is not None:
            warnings.warn("PointCloudPredictor: fps_method / knn_method are deprecated and ignored "
                          "(the ops pick exact fast kernels themselves)", DeprecationWarning, stacklevel=2)
        self.model = model.eval()
        self.chunk_size = chunk_size
        self.reset()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset(self) -> None:
        """Forget the current cloud."""
        self._cloud: CloudEmbedding | None = None
        self._decoder: PointSAM | ViewEnsemble | None = None  # the model, or the cloud's view ensemble
        self._xyz: np.ndarray | None = None
        self._local = None  # a pointsam.scene.LocalPredictor while a cloud is answered locally
        self.normalization: Normalization | None = None

    @property
    def is_set(self) -> bool:
        return self._local.is_set if self._local is not None else self._cloud is not None

    @property
    def is_local(self) -> bool:
        """Whether the current cloud is answered in local mode (regions around the clicks)."""
        return self._local is not None

    @property
    def spatial_index(self):
        """The KD-tree over the cloud that local mode built (`pointsam.scene.regions.SpatialIndex`), else
        None: viewers reuse it for their level-of-detail queries instead of building another."""
        return self._local.index if self._local is not None else None

    @property
    def num_points(self) -> int:
        if self._local is not None:
            return self._local.num_points
        return 0 if self._xyz is None else self._xyz.shape[0]

    @property
    def num_patches(self) -> int:
        return self._require().patches.num_patches

    @property
    def patch_size(self) -> int:
        return self._require().patches.patch_size

    @property
    def decoder(self) -> PointSAM | ViewEnsemble:
        """What decodes prompts on the current cloud: the model, or with `views` > 1 its view ensemble
        (both have `decode(cloud, coords, labels, masks, multimask_output)`; rollouts take either)."""
        self._require()
        return self._decoder

    @property
    def embedding(self) -> CloudEmbedding:
        """The cached encoding of the current cloud."""
        return self._require()

    def _require(self) -> CloudEmbedding:
        if self._local is not None:
            raise InputError("the cloud is answered in local mode (regions around each click): the whole-"
                             "cloud encoding, predict_torch and get_point_features need mode='global'")
        if self._cloud is None:
            raise PointCloudNotSetError("no point cloud is set: call set_point_cloud(xyz, rgb) first")
        return self._cloud

    @torch.no_grad()
    def set_point_cloud(
        self,
        xyz: ArrayLike,
        rgb: ArrayLike | None = None,
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
        `progress`, if given, receives one short message per encode stage (big clouds take a while).
        """
        self.reset()
        n_points = int(np.shape(xyz)[0]) if np.ndim(xyz) == 2 else 0
        if self.mode == "local" or (self.mode == "auto" and n_points > self.local_threshold):
            from pointsam.scene.local_predictor import LocalPredictor  # scene builds on this module

            inner = PointCloudPredictor(self.model, chunk_size=self.chunk_size, views=self.views)
            local = LocalPredictor(inner, num_patches=num_patches, patch_size=patch_size,
                                   **self.local_options)
            local.set_point_cloud(xyz, rgb, progress=progress)
            self._local = local
            return
        say = progress or (lambda _msg: None)
        xyz = check_xyz(xyz)
        n = xyz.shape[0]
        colours = colors_to_unit(rgb, n) if rgb is not None else np.full((n, 3), 0.5, np.float32)
        norm = fit_unit_sphere(xyz)
        coords = norm.apply(xyz)
        for name, value in (("num_patches", num_patches), ("patch_size", patch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{name} must be a positive integer (or None for automatic), got {value!r}")
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
        t = time.perf_counter()
        patches = group_points(coords_t, use_l, use_k)
        say(f"grouped (FPS + kNN) in {time.perf_counter() - t:.1f} s; running the encoder network")
        t = time.perf_counter()
        self._cloud = self.model.encode(coords_t, feats_t, patches=patches, lean=True)
        self._decoder = self.model
        if self.views > 1:
            self._decoder = ViewEnsemble(self.model, self._cloud, feats_t, self.views)
        say(f"encoder network done in {time.perf_counter() - t:.1f} s")
        self._xyz = xyz
        self.normalization = norm

    @torch.no_grad()
    def get_point_features(self, indices: ArrayLike | None = None) -> np.ndarray:
        """Per-point features (N, embed_dim): F_pc 3-NN interpolated to the points.

        embed_dim is the model's (`model.config.embed_dim`: 256 for the official models, 128 for
        the bundled one). indices: optional point indices (default: every point; float32, so
        embed_dim * 4 bytes per point). Useful for training your own heads on frozen features.
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
        if coords.shape[0] > MAX_PROMPT_POINTS:
            raise InputError(f"{coords.shape[0]} prompt points in one prompt; at most {MAX_PROMPT_POINTS} "
                             "(the decoder attends between all of them); split them into several prompts")
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
        pts = check_prompt_points(point_coords)
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
        point_coords: ArrayLike | None = None,
        point_labels: ArrayLike | None = None,
        mask_input: ArrayLike | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        *,
        point_indices: ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segment from point prompts in the cloud's own coordinates (and/or point indices).

        point_labels: 1 = positive, 0 = negative, one per prompt (coords first, then indices);
        defaults to all positive. mask_input: (N,) logits from a previous call (e.g. the best row
        of `logits`). multimask_output gives 3 candidates (best for a single click), else 1.
        Returns masks (C, N) bool (logits if return_logits), scores (C,), logits (C, N).
        A prompt with negative clicks only selects nothing: empty masks, scores 0, logits capped
        at -1 (negative clicks only remove points from an object).
        """
        if self._local is not None:
            return self._local.predict(point_coords, point_labels, mask_input, multimask_output,
                                       return_logits, point_indices=point_indices)
        coords, labels = self._prompts(point_coords, point_labels, point_indices)
        mask = None
        if mask_input is not None:
            mask = check_mask_input(mask_input, self.num_points).astype(np.float32)
            mask = torch.from_numpy(mask)[None]
        masks, scores, logits = self.predict_torch(
            torch.from_numpy(coords)[None], torch.from_numpy(labels)[None], mask,
            multimask_output, normalized=True,
        )
        logits_np = logits[0].cpu().numpy()
        first = logits_np if return_logits else masks[0].cpu().numpy()
        return first, scores[0].cpu().numpy(), logits_np

    def predict_region(
        self, point_coords: ArrayLike | None = None, point_labels: ArrayLike | None = None,
        mask_input: ArrayLike | None = None, multimask_output: bool = True, *,
        point_indices: ArrayLike | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """`predict`, keeping only the points that answered: (indices (n,) sorted into the cloud, or
        None for every point; scores (C,); logits (C, n)). Other points have the logit
        `pointsam.scene.OUTSIDE_LOGIT` (mask False). In local mode this is the answering region, so a
        click on a 20M-point scan does not allocate (C, N) arrays; in global mode indices is None."""
        if self._local is not None:
            result = self._local.predict_local(point_coords, point_labels, mask_input, multimask_output,
                                               point_indices=point_indices)
            return (None if result.region.whole else result.region.indices), result.scores, result.logits
        _, scores, logits = self.predict(point_coords, point_labels, mask_input, multimask_output,
                                         True, point_indices=point_indices)
        return None, scores, logits

    def predict_clicks(
        self, point_coords: ArrayLike | None = None, point_labels: ArrayLike | None = None, *,
        point_indices: ArrayLike | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Replay clicks one at a time, as a person would click (and as the model was trained).

        The first click gives 3 candidates and the most confident one is kept; each later click
        is added to the prompts with the previous logits as the mask prompt. Returns the final
        (masks (C, N), scores (C,), logits (C, N)); C = 3 for a single click, else 1.
        """
        if self._local is not None:
            return self._local.predict_clicks(point_coords, point_labels, point_indices=point_indices)
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
        for name, t in (("point_coords", point_coords), ("point_labels", point_labels),
                        ("mask_input", mask_input)):
            if t is not None and not isinstance(t, torch.Tensor):
                raise InputError(f"predict_torch: {name} must be a torch.Tensor, got {type(t).__name__}")
        if point_coords.ndim != 3 or point_coords.shape[-1] != 3:
            raise InputError(f"point_coords must be [P, Q, 3], got {tuple(point_coords.shape)}")
        p, q = point_coords.shape[:2]
        if p == 0 or q == 0:
            raise InputError(f"predict_torch needs at least one prompt set with at least one point, "
                             f"got point_coords of shape {tuple(point_coords.shape)}")
        if q > MAX_PROMPT_POINTS:
            raise InputError(f"{q} prompt points per prompt set; at most {MAX_PROMPT_POINTS} (the decoder "
                             "attends between all of them)")
        if point_labels.shape != point_coords.shape[:2]:
            raise InputError(
                f"point_labels must be [P, Q] = {tuple(point_coords.shape[:2])}, "
                f"got {tuple(point_labels.shape)}"
            )
        if not point_coords.is_floating_point():
            point_coords = point_coords.float()
        if not normalized:
            flat = self._normalize_prompts(point_coords.reshape(-1, 3).cpu().numpy())
            point_coords = torch.from_numpy(flat).view(point_coords.shape)
        elif not torch.isfinite(point_coords).all() or point_coords.abs().amax() > 1 + PROMPT_TOLERANCE:
            raise InputError("normalized point_coords must be finite and lie in [-1, 1]")
        labels = torch.from_numpy(check_labels(point_labels.cpu().numpy(), point_labels.numel())).view(p, q)
        if mask_input is not None:
            if mask_input.shape != (p, self.num_points):
                raise InputError(
                    f"mask_input must be [P, N] = {(p, self.num_points)}, got {tuple(mask_input.shape)}"
                )
            if mask_input.dtype == torch.bool or mask_input.is_complex():
                raise InputError(f"mask_input must hold logits (floats), got {mask_input.dtype}")
            mask_input = mask_input.float()
            if not torch.isfinite(mask_input).all() or mask_input.abs().amax() > MASK_LOGIT_LIMIT:
                raise InputError(
                    "mask_input must hold finite logits (a previous call's logits), within "
                    f"+-{MASK_LOGIT_LIMIT:g}; it contains NaN, Inf or huge values"
                )
        dev = self.device
        parts = []
        for s in range(0, p, PROMPT_BATCH):
            e = min(p, s + PROMPT_BATCH)
            parts.append(self._decoder.decode(
                cloud, point_coords[s:e].to(dev, torch.float32), labels[s:e].to(dev),
                None if mask_input is None else mask_input[s:e].to(dev), multimask_output,
                self.chunk_size,
            ))
        logits = torch.cat([part[0] for part in parts])
        scores = torch.cat([part[1] for part in parts])
        negative_only = ~(labels == 1).any(dim=1).to(dev)
        if negative_only.any():  # negative clicks only remove points: nothing is selected
            logits[negative_only] = logits[negative_only].clamp_max(NEGATIVE_ONLY_LOGIT)
            scores[negative_only] = 0.0
        return logits > 0, scores, logits
