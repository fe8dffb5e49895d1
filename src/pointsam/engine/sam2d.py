"""2D SAM behind a small interface: point-prompted masks and automatic proposals per view.

`SamSegmenter` wraps the `transformers` SAM (`SamModel`), loaded only from a local folder; any other
object with the same methods (`set_images`, `predict`, `generate`) can stand in for it (tests use
a scripted segmenter whose masks are exact projections of known parts).
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from pointsam.errors import CheckpointError, InputError
from pointsam.utils.masks import mask_nms, stability_score

PIXEL_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as SAM's image processor
PIXEL_STD = (0.229, 0.224, 0.225)


@dataclass
class Masks2D:
    """Candidate masks of one prompt: logits (C, H, W) at image size, scores (C,), low-res logits."""

    logits: np.ndarray
    scores: np.ndarray
    low_res: np.ndarray | None = None

    @property
    def masks(self) -> np.ndarray:
        return self.logits > 0


class Segmenter2D(Protocol):
    """What the data engine and MV-SAM need from a 2D promptable segmenter."""

    def set_images(self, images: np.ndarray) -> None:
        """Take (V, H, W, 3) uint8 views (embeds them once)."""

    def predict(self, view: int, points: np.ndarray, labels: np.ndarray,
                mask_input: np.ndarray | None = None, multimask: bool = True) -> Masks2D:
        """Masks from (Q, 2) pixel (row, col) prompts with 0/1 labels, optional low-res mask logits."""

    def generate(self, view: int) -> list[tuple[np.ndarray, float]]:
        """Automatic proposals of a view: (H, W) bool masks with a quality score."""


@dataclass
class ProposalSettings:
    """Automatic mask generation: a grid of point prompts, SAM's quality filters, mask NMS."""

    points_per_side: int = 16
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.92
    stability_offset: float = 1.0
    nms_thresh: float = 0.7
    min_area: int = 16
    batch: int = 64


def load_sam(path: str | Path, device: str | torch.device | None = None):
    """A `transformers` SamModel from a local folder (config.json + weights); never downloads."""
    path = Path(path)
    if not path.is_dir() or not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path}: not a SAM checkpoint folder (expected config.json and model weights, as written "
            "by SamModel.save_pretrained, e.g. a local copy of facebook/sam-vit-base)"
        )
    from safetensors import SafetensorError
    from transformers import SamModel

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            model = SamModel.from_pretrained(path, local_files_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, i.e. running the file's code: not shown
        raise CheckpointError(
            f"{path}: the weights file holds pickled Python objects, not only tensors; pointsam refuses "
            "to unpickle them (that could run code). Use a folder with model.safetensors (as written "
            "by SamModel.save_pretrained) instead") from None
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot load the SAM model: {first}") from exc
    return model.to(device or "cpu").eval()


def tiny_sam(seed: int = 0, image_size: int = 64):
    """A randomly initialised, very small SAM (for tests and smoke runs, not for real labels)."""
    from transformers import SamConfig, SamModel

    width = 32
    config = SamConfig(
        vision_config=dict(hidden_size=width, output_channels=width, num_hidden_layers=2,
                           num_attention_heads=2, image_size=image_size, patch_size=16, window_size=2,
                           global_attn_indexes=[1], mlp_dim=64, num_pos_feats=width // 2),
        prompt_encoder_config=dict(hidden_size=width, image_size=image_size, patch_size=16),
        mask_decoder_config=dict(hidden_size=width, mlp_dim=64, num_attention_heads=2,
                                 iou_head_hidden_dim=width),
    )
    torch.manual_seed(seed)
    return SamModel(config).eval()


class SamSegmenter:
    """`Segmenter2D` on a `transformers` SamModel: resize longest side, normalise, pad, embed once."""

    def __init__(self, model, proposals: ProposalSettings | None = None) -> None:
        self.model = model.eval()
        self.settings = proposals or ProposalSettings()
        self.input_size = int(model.config.vision_config.image_size)
        self._embeddings: torch.Tensor | None = None
        self._shape = (0, 0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def set_images(self, images: np.ndarray) -> None:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise InputError(f"images must be (V, H, W, 3) uint8, got {images.dtype} {images.shape}")
        h, w = images.shape[1:3]
        self._shape = (h, w)
        self._scale = self.input_size / max(h, w)
        nh, nw = round(h * self._scale), round(w * self._scale)
        self._resized = (nh, nw)
        mean = torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
        embeddings = []
        for view in images:
            x = torch.from_numpy(view).permute(2, 0, 1)[None].float() / 255.0
            x = F.interpolate(x, (nh, nw), mode="bilinear", align_corners=False, antialias=True)
            x = F.pad((x - mean) / std, (0, self.input_size - nw, 0, self.input_size - nh))
            embeddings.append(self.model.get_image_embeddings(x.to(self.device)))
        self._embeddings = torch.cat(embeddings)

    def _upscale(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits [..., h, w] to image-size logits, undoing the padding (as SAM does)."""
        shape = low_res.shape
        x = low_res.reshape(-1, 1, *shape[-2:])
        x = F.interpolate(x, (self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = x[..., : self._resized[0], : self._resized[1]]
        x = F.interpolate(x, self._shape, mode="bilinear", align_corners=False)
        return x.reshape(*shape[:-2], *self._shape)

    @torch.no_grad()
    def _decode(self, view: int, points: torch.Tensor, labels: torch.Tensor,
                mask_input: torch.Tensor | None, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """points [P, Q, 2] (x, y in input frame), labels [P, Q] -> low-res logits [P, C, h, w], scores."""
        if self._embeddings is None:
            raise RuntimeError("call set_images(images) first")
        out = self.model(image_embeddings=self._embeddings[view : view + 1],
                         input_points=points[None].to(self.device),
                         input_labels=labels[None].to(self.device),
                         input_masks=None if mask_input is None else mask_input.to(self.device),
                         multimask_output=multimask)
        return out.pred_masks[0].float().cpu(), out.iou_scores[0].float().cpu()

    def _to_input(self, rows_cols: np.ndarray) -> torch.Tensor:
        rc = np.asarray(rows_cols, dtype=np.float32).reshape(-1, 2)
        return torch.from_numpy(rc[:, ::-1].copy() * self._scale)

    def predict(self, view: int, points: np.ndarray, labels: np.ndarray,
                mask_input: np.ndarray | None = None, multimask: bool = True) -> Masks2D:
        pts = self._to_input(points)
        lbl = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
        if len(lbl) != len(pts) or len(pts) == 0:
            raise InputError(f"give one label per prompt point: {len(pts)} points, {len(lbl)} labels")
        mask = None if mask_input is None else torch.as_tensor(mask_input, dtype=torch.float32)[None, None]
        low, scores = self._decode(view, pts[None], lbl[None], mask, multimask)
        logits = self._upscale(low[0])
        return Masks2D(logits.numpy(), scores[0].numpy(), low[0].numpy())

    def generate(self, view: int) -> list[tuple[np.ndarray, float]]:
        s = self.settings
        h, w = self._shape
        n = s.points_per_side
        rows, cols = np.meshgrid((np.arange(n) + 0.5) * h / n, (np.arange(n) + 0.5) * w / n, indexing="ij")
        grid = np.stack([rows.ravel(), cols.ravel()], axis=1)
        masks, scores = [], []
        for start in range(0, len(grid), s.batch):
            pts = self._to_input(grid[start : start + s.batch])[:, None]
            low, iou = self._decode(view, pts, torch.ones(len(pts), 1, dtype=torch.int64), None, True)
            logits = self._upscale(low).flatten(0, 1)
            iou = iou.flatten()
            keep = (iou > s.pred_iou_thresh) & (stability_score(logits.flatten(-2), s.stability_offset)
                                               >= s.stability_score_thresh)
            binary = logits[keep] > 0
            area = binary.flatten(1).sum(1)
            big = area >= s.min_area
            masks.append(binary[big].numpy())
            scores.append(iou[keep][big].numpy())
        if not masks or sum(len(m) for m in masks) == 0:
            return []
        all_masks, all_scores = np.concatenate(masks), np.concatenate(scores)
        keep = mask_nms(all_masks.reshape(len(all_masks), -1), all_scores, s.nms_thresh)
        return [(all_masks[i], float(all_scores[i])) for i in keep]
