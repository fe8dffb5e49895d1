"""Frozen Point-SAM features for part segmentation: ViT block outputs captured by forward hooks.

Paper Sec. 5.3: the token features after the 4th, 8th and last ViT blocks (1-based) are
concatenated per patch and propagated to every point by 3-NN inverse-distance interpolation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointsam.errors import InputError
from pointsam.modeling import PointSAM
from pointsam.ops import interpolate
from pointsam.predictor import PointCloudPredictor

#: Blocks the paper reads (1-based; -1 = the last block). Clamped to the depth of shallow models.
DEFAULT_LAYERS = (4, 8, -1)


def resolve_layers(layers: Sequence[int], depth: int, clamp: bool = False) -> list[int]:
    """1-based block numbers (negative = from the end) as 0-based indices, duplicates dropped.

    With `clamp`, numbers beyond `depth` mean the last block (for shallow models); without it they
    are an error.
    """
    if not layers:
        raise InputError("give at least one ViT block to read features from")
    out: list[int] = []
    for layer in layers:
        if not isinstance(layer, int | np.integer) or isinstance(layer, bool):
            raise InputError(f"ViT block numbers must be integers, got {layer!r}")
        index = int(layer) - 1 if layer > 0 else depth + int(layer)
        if layer == 0 or index < 0 or (index >= depth and not clamp):
            raise InputError(f"ViT block {layer} does not exist: the encoder has {depth} blocks "
                             f"(use 1..{depth}, or -1 for the last)")
        index = min(index, depth - 1)
        if index not in out:
            out.append(index)
    return out


@contextmanager
def capture_blocks(model: PointSAM, indices: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Record the outputs [B, L, W] of the encoder's ViT blocks `indices` (0-based) while inside."""
    blocks: nn.ModuleList = model.pc_encoder.transformer.blocks
    captured: dict[int, torch.Tensor] = {}

    def hook(index: int):
        def record(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            captured[index] = output.detach()
        return record

    handles = [blocks[i].register_forward_hook(hook(i)) for i in indices]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode while inside, then restore the train/eval mode of every module."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@dataclass
class CloudFeatures:
    """Per-patch features of one cloud and the 3-NN weights that carry them to its points."""

    patch_features: torch.Tensor  # [L, C] float32, C = len(layers) * ViT width
    interp_idx: torch.Tensor  # [N, 3] int64: nearest patch centres of each point
    interp_weight: torch.Tensor  # [N, 3] float32, rows sum to 1
    xyz: torch.Tensor  # [N, 3] float32 point coordinates, normalised into the unit sphere

    @property
    def num_points(self) -> int:
        return self.interp_idx.shape[0]

    def to(self, device: torch.device | str) -> CloudFeatures:
        return CloudFeatures(self.patch_features.to(device), self.interp_idx.to(device),
                             self.interp_weight.to(device), self.xyz.to(device))

    def point_features(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """[N, C] (or [len(indices), C]) features of points by 3-NN interpolation."""
        idx, weight = self.interp_idx, self.interp_weight
        if indices is not None:
            idx, weight = idx[indices], weight[indices]
        return interpolate(self.patch_features[None], idx[None], weight[None])[0]


class FeatureExtractor:
    """Encode clouds with a frozen Point-SAM and return their multi-block `CloudFeatures`.

    Each block's tokens are layer-normalised (no learned scale) before concatenation, so the
    growing residual stream of deep blocks does not drown the shallow ones. The caller's model is
    left as it was: features are computed without autograd, in eval mode only for the duration of
    a call (its train/eval mode and ``requires_grad`` flags are not changed).
    """

    def __init__(self, model: PointSAM, layers: Sequence[int] = DEFAULT_LAYERS,
                 clamp: bool | None = None) -> None:
        depth = model.config.vit_depth
        clamp = tuple(layers) == DEFAULT_LAYERS if clamp is None else clamp
        self.indices = resolve_layers(layers, depth, clamp)
        self.model = model
        with eval_mode(model):  # the predictor switches its model to eval mode
            self.predictor = PointCloudPredictor(model)

    @property
    def layers(self) -> list[int]:
        """The blocks read, 1-based."""
        return [i + 1 for i in self.indices]

    @property
    def feature_dim(self) -> int:
        return len(self.indices) * self.model.config.vit_width

    @torch.no_grad()
    def __call__(self, xyz, rgb=None) -> CloudFeatures:
        """Features of one cloud (N, 3) in any frame; normalised like `PointCloudPredictor`."""
        with eval_mode(self.model), capture_blocks(self.model, self.indices) as captured:
            self.predictor.set_point_cloud(xyz, rgb)
        cloud = self.predictor.embedding
        width = self.model.config.vit_width
        parts = [F.layer_norm(captured[i][0].float(), (width,)) for i in self.indices]
        feats = CloudFeatures(torch.cat(parts, dim=-1), cloud.interp_idx[0].long(),
                              cloud.interp_weight[0].float(), cloud.coords[0].float())
        self.predictor.reset()
        return feats
