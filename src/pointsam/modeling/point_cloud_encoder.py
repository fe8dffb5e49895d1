"""Point-cloud encoder: patch embedding, learned center position MLP, EVA ViT, projection."""

from __future__ import annotations

import torch
from torch import nn

from pointsam.modeling.config import PointSAMConfig
from pointsam.modeling.eva import EvaTransformer
from pointsam.modeling.patch_embed import PatchEmbed, Patches


class PointCloudEncoder(nn.Module):
    """Maps a grouped cloud to the point-cloud embedding F_pc [B, L, embed_dim]."""

    def __init__(self, cfg: PointSAMConfig) -> None:
        super().__init__()
        w = cfg.vit_width
        self.patch_embed = PatchEmbed(6, cfg.patch_embed_dim, cfg.pointnet_hidden)
        self.patch_proj = nn.Linear(cfg.patch_embed_dim, w)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, w))
        self.transformer = EvaTransformer(cfg)
        self.out_proj = nn.Linear(w, cfg.embed_dim)

    def tokens(self, coords: torch.Tensor, features: torch.Tensor, patches: Patches) -> torch.Tensor:
        """ViT input tokens: projected patch features + position MLP of the centers."""
        return self.tokens_from_patches(self.patch_embed(coords, features, patches), patches.centers)

    def tokens_from_patches(self, patch_features: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """ViT input tokens from PointNet patch features [B, L, C] and centers [B, L, 3]."""
        return self.patch_proj(patch_features) + self.pos_embed(centers)

    def encode_patches(self, patch_features: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        """F_pc [B, L, embed_dim] from PointNet patch features and their centers."""
        return self.out_proj(self.transformer(self.tokens_from_patches(patch_features, centers)))

    def forward(self, coords: torch.Tensor, features: torch.Tensor, patches: Patches) -> torch.Tensor:
        """coords/features [B, N, 3] (unit sphere, colours in [-1, 1]) -> [B, L, embed_dim]."""
        return self.encode_patches(self.patch_embed(coords, features, patches), patches.centers)
