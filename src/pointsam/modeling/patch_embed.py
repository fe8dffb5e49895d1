"""Patch embedding (paper Fig. 2, left): FPS centers, kNN groups, and a PointNet per patch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pointsam.ops import farthest_point_sampling, gather_groups, knn


@dataclass
class Patches:
    """Grouping of a batch of clouds into L patches of K points each."""

    fps_idx: torch.Tensor  # [B, L] indices of the centers
    centers: torch.Tensor  # [B, L, 3]
    knn_idx: torch.Tensor  # [B, L, K] indices into the N points (center included)

    @property
    def num_patches(self) -> int:
        return self.knn_idx.shape[1]

    @property
    def patch_size(self) -> int:
        return self.knn_idx.shape[2]


@torch.no_grad()
def group_points(coords: torch.Tensor, num_patches: int, patch_size: int) -> Patches:
    """Pick `num_patches` centers by FPS (start at index 0) and group each center's kNN."""
    fps_idx = farthest_point_sampling(coords, num_patches)
    centers = torch.gather(coords, 1, fps_idx.unsqueeze(-1).expand(-1, -1, 3))
    _, knn_idx = knn(centers, coords, patch_size)
    return Patches(fps_idx=fps_idx, centers=centers, knn_idx=knn_idx)


def patch_inputs(coords: torch.Tensor, values: torch.Tensor, patches: Patches) -> torch.Tensor:
    """Per-neighbour input [xyz - center, values] of shape [B, L, K, 3 + C]."""
    rel = gather_groups(coords, patches.knn_idx) - patches.centers.unsqueeze(2)
    return torch.cat((rel, gather_groups(values, patches.knn_idx)), dim=-1)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out_dim)
    )


class PatchEncoder(nn.Module):
    """PointNet with LayerNorm: per-point MLP, max-pool, concat [pooled, point], MLP, max-pool."""

    def __init__(self, in_channels: int, out_channels: int, hidden: tuple[int, int] = (128, 512)):
        super().__init__()
        h1, h2 = hidden
        self.conv1 = _mlp(in_channels, h1, h1)
        self.conv2 = _mlp(2 * h1, h2, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, K, C_in] -> [B, L, C_out]."""
        h = self.conv1(x)
        pooled = h.amax(dim=2, keepdim=True).expand_as(h)
        return self.conv2(torch.cat((pooled, h), dim=-1)).amax(dim=2)


class PatchEmbed(nn.Module):
    """Embed each patch of a grouped cloud with a PointNet (grouping itself: `group_points`)."""

    def __init__(
        self, in_channels: int = 6, out_channels: int = 512, hidden: tuple[int, int] = (128, 512)
    ) -> None:
        super().__init__()
        self.patch_encoder = PatchEncoder(in_channels, out_channels, hidden)

    def forward(
        self, coords: torch.Tensor, features: torch.Tensor, patches: Patches
    ) -> torch.Tensor:
        """Patch features [B, L, out_channels] of coords/features [B, N, 3] for the given grouping."""
        return self.patch_encoder(patch_inputs(coords, features, patches))
