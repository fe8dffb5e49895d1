"""Prompt encoders: random Fourier features for points, a PointNet for mask prompts."""

from __future__ import annotations

import math

import torch
from torch import nn

from pointsam.modeling.patch_embed import PatchEncoder, Patches, patch_inputs


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features [sin(2pi x G), cos(2pi x G)] of unit-sphere coordinates."""

    def __init__(self, num_pos_feats: int = 128) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(3, num_pos_feats))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """[..., 3] in the cloud's normalized frame ([-1, 1]) -> [..., 2 * num_pos_feats]."""
        proj = 2 * math.pi * (coords.to(self.positional_encoding_gaussian_matrix.dtype)
                              @ self.positional_encoding_gaussian_matrix)
        return torch.cat((proj.sin(), proj.cos()), dim=-1)


class PointEncoder(nn.Module):
    """Point prompts: Fourier PE plus a learned embedding for negative (0) / positive (1)."""

    def __init__(self, embed_dim: int = 256) -> None:
        super().__init__()
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(2))

    def forward(self, points: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """points [B, Q, 3], labels [B, Q] (0/1 or bool) -> sparse embeddings [B, Q, D]."""
        emb = self.pe_layer(points)
        labels = labels.to(torch.long).unsqueeze(-1)
        emb = emb + (labels == 0) * self.point_embeddings[0].weight
        return emb + (labels == 1) * self.point_embeddings[1].weight


class MaskEncoder(nn.Module):
    """Mask prompts: per-point logits regrouped with the encoder's patches, then a PointNet."""

    def __init__(self, embed_dim: int = 256, hidden: tuple[int, int] = (128, 512)) -> None:
        super().__init__()
        self.patch_encoder = PatchEncoder(4, embed_dim, hidden)
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def no_mask(self, batch: int, num_patches: int) -> torch.Tensor:
        """Dense embedding used when there is no mask prompt: [batch, L, D]."""
        return self.no_mask_embed.weight.view(1, 1, -1).expand(batch, num_patches, -1)

    def forward(
        self, coords: torch.Tensor, patches: Patches, mask_logits: torch.Tensor
    ) -> torch.Tensor:
        """coords [B, N, 3] and mask logits [B, N] (raw, detached) -> [B, L, D]."""
        return self.patch_encoder(patch_inputs(coords, mask_logits.detach().unsqueeze(-1), patches))
