"""`PointSAM`: point-cloud encoder + prompt encoders + mask decoder (paper Fig. 2)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from pointsam.modeling.config import PointSAMConfig
from pointsam.modeling.mask_decoder import MaskDecoder
from pointsam.modeling.patch_embed import Patches, group_points, patch_inputs
from pointsam.modeling.point_cloud_encoder import PointCloudEncoder
from pointsam.modeling.prompt_encoder import MaskEncoder, PointEncoder
from pointsam.modeling.transformer import TwoWayTransformer
from pointsam.ops import mask_logits, pointnet, three_nn_interpolation_weights


@dataclass
class CloudEmbedding:
    """Everything computed once per cloud and reused by every prompt."""

    coords: torch.Tensor  # [B, N, 3] normalized coordinates
    patches: Patches
    embeddings: torch.Tensor  # [B, L, D] point-cloud embedding F_pc
    pe: torch.Tensor  # [B, L, D] Fourier PE of the patch centers
    interp_idx: torch.Tensor  # [B, N, 3] nearest centers of each point
    interp_weight: torch.Tensor  # [B, N, 3]


def _repeat(x: torch.Tensor, times: int) -> torch.Tensor:
    return x if times == 1 else x.repeat_interleave(times, dim=0)


def _warn_removed(name: str) -> None:
    warnings.warn(f"PointSAM: the {name!r} argument is deprecated and ignored (the ops choose their "
                  "exact kernels themselves)", DeprecationWarning, stacklevel=3)


class PointSAM(nn.Module):
    """Promptable point-cloud segmentation model with the official state-dict layout.

    By default `encode` and `decode` run the plain modules (the reference; autograd follows the
    caller). `encode(..., lean=True)` and `decode(..., chunk_size=n)` compute the same values
    through the memory-lean ops `pointsam.ops.pointnet` / `mask_logits` (inference: what
    `PointCloudPredictor` uses for big clouds).
    """

    def __init__(self, cfg: PointSAMConfig) -> None:
        super().__init__()
        self.config = cfg
        self.pc_encoder = PointCloudEncoder(cfg)
        self.point_encoder = PointEncoder(cfg.embed_dim)
        self.mask_encoder = MaskEncoder(cfg.embed_dim, cfg.pointnet_hidden)
        transformer = TwoWayTransformer(
            cfg.decoder_depth, cfg.embed_dim, cfg.decoder_heads, cfg.decoder_mlp_dim
        )
        self.mask_decoder = MaskDecoder(cfg.embed_dim, transformer, cfg.num_multimask_outputs)

    def encode(
        self,
        coords: torch.Tensor,
        features: torch.Tensor,
        num_patches: int | None = None,
        patch_size: int | None = None,
        fps_method: str | None = None,
        knn_method: str | None = None,
        *,
        patches: Patches | None = None,
        lean: bool = False,
    ) -> CloudEmbedding:
        """Group and encode clouds coords/features [B, N, 3] (normalized) once.

        `patches` reuses a grouping (else FPS + kNN here); `lean` runs the patch PointNet through
        `ops.pointnet` (same values, far smaller temporaries). Autograd follows the caller's
        mode: wrap in `torch.no_grad()` for inference.
        """
        for name, value in (("fps_method", fps_method), ("knn_method", knn_method)):
            if value is not None:
                _warn_removed(name)
        if patches is None:
            patches = group_points(coords, num_patches or self.config.num_patches,
                                   patch_size or self.config.patch_size)
        if lean:
            pn = self.pc_encoder.patch_embed.patch_encoder
            feats = pointnet(patch_inputs(coords, features, patches), pn.conv1, pn.conv2)
            embeddings = self.pc_encoder.encode_patches(feats, patches.centers)
        else:
            embeddings = self.pc_encoder(coords, features, patches)
        return self.embed_cloud(coords, patches, embeddings)

    def embed_cloud(self, coords: torch.Tensor, patches: Patches, embeddings: torch.Tensor
                    ) -> CloudEmbedding:
        """Bundle F_pc with what every prompt reuses: the centers' PE and each point's 3-NN weights."""
        pe = self.point_encoder.pe_layer(patches.centers)
        with torch.no_grad():
            idx, weight = three_nn_interpolation_weights(coords, patches.centers)
        return CloudEmbedding(coords, patches, embeddings, pe, idx, weight)

    def decode(
        self,
        cloud: CloudEmbedding,
        prompt_coords: torch.Tensor,
        prompt_labels: torch.Tensor,
        prompt_masks: torch.Tensor | None = None,
        multimask_output: bool = True,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for P = B*M prompt sets (rows b*M..b*M+M-1 belong to cloud b).

        prompt_coords [P, Q, 3] normalized, prompt_labels [P, Q] (1 positive, 0 negative),
        prompt_masks [P, N] logits or None. Returns logits [P, C, N] and IoU preds [P, C].
        `chunk_size` (points) switches to the lean ops: same values, no [P, N, D] temporaries.
        """
        lean = chunk_size is not None
        b = cloud.embeddings.shape[0]
        p = prompt_coords.shape[0]
        if p % b:
            raise ValueError(f"number of prompt sets ({p}) must be a multiple of clouds ({b})")
        m = p // b
        sparse = self.point_encoder(prompt_coords, prompt_labels)
        if prompt_masks is None:
            dense = self.mask_encoder.no_mask(p, cloud.patches.num_patches)
        else:
            patches = Patches(*(_repeat(t, m) for t in (cloud.patches.fps_idx, cloud.patches.centers,
                                                         cloud.patches.knn_idx)))
            if lean:
                enc = self.mask_encoder.patch_encoder
                x = patch_inputs(_repeat(cloud.coords, m), prompt_masks.detach().unsqueeze(-1), patches)
                dense = pointnet(x, enc.conv1, enc.conv2)
            else:
                dense = self.mask_encoder(_repeat(cloud.coords, m), patches, prompt_masks)
        decoder = self.mask_decoder
        embeddings, pe = _repeat(cloud.embeddings, m), _repeat(cloud.pe, m)
        idx, weight = _repeat(cloud.interp_idx, m), _repeat(cloud.interp_weight, m)
        if not lean:
            return decoder(embeddings, pe, sparse, dense, idx, weight, multimask_output)
        src, hyper, iou_pred = decoder.predict_tokens(embeddings, pe, sparse, dense, multimask_output)
        if b == 1:  # every prompt shares the cloud's interpolation weights
            idx, weight = cloud.interp_idx, cloud.interp_weight
        return mask_logits(src, hyper, idx, weight, decoder.output_upscaling, chunk_size), iou_pred

    def predict_masks(
        self,
        coords: torch.Tensor,
        features: torch.Tensor,
        prompt_coords: torch.Tensor,
        prompt_labels: torch.Tensor,
        prompt_masks: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One-shot encode + decode with the official `predict_masks` signature."""
        with torch.no_grad():
            cloud = self.encode(coords, features)
        return self.decode(cloud, prompt_coords, prompt_labels, prompt_masks, multimask_output)


def build_model(config: PointSAMConfig | str = "large", device: torch.device | str | None = None
                ) -> PointSAM:
    """Build a randomly initialised `PointSAM` for `config` (a preset name or a config)."""
    cfg = PointSAMConfig.preset(config) if isinstance(config, str) else config
    model = PointSAM(cfg)
    return model.to(device) if device is not None else model
