"""The patch PointNet (per-point MLP, max-pool, concat, MLP, max-pool) computed cheaply.

Both PointNets of Point-SAM (patch embedding and mask encoder) are
    h = mlp1(x);  out = max_k mlp2([max_k h, h])
with mlp = Linear, LayerNorm, GELU, Linear. `pointnet_reference` is exactly that. `pointnet` gives
the same values with two savings: the pooled half of mlp2's first Linear is applied once per
patch instead of once per point, and patches go through in chunks of about `CHUNK_POINTS`
grouped points, so the [L*K, hidden] LayerNorm/GELU temporaries stay in cache (at 2048 x 256
patches these would otherwise be about 1 GB each). Plain torch, so any device and autograd work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHUNK_POINTS = 4096  # grouped points per chunk


def pointnet_reference(x: Tensor, mlp1: nn.Sequential, mlp2: nn.Sequential) -> Tensor:
    """[B, L, K, C_in] -> [B, L, C_out]: max_k mlp2([max_k mlp1(x), mlp1(x)])."""
    h = mlp1(x)
    pooled = h.amax(dim=2, keepdim=True).expand_as(h)
    return mlp2(torch.cat((pooled, h), dim=-1)).amax(dim=2)


def _pointnet_split(x: Tensor, mlp1: nn.Sequential, mlp2: nn.Sequential) -> Tensor:
    lin, norm, act, out = mlp2
    h = mlp1(x)
    pooled = h.amax(dim=2)
    c = h.shape[-1]
    y = F.linear(h, lin.weight[:, c:]) + F.linear(pooled, lin.weight[:, :c], lin.bias).unsqueeze(2)
    return out(act(norm(y))).amax(dim=2)


def pointnet(x: Tensor, mlp1: nn.Sequential, mlp2: nn.Sequential) -> Tensor:
    """Same values as `pointnet_reference`, with the split first Linear and chunks of patches."""
    step = max(1, CHUNK_POINTS // max(1, x.shape[0] * x.shape[2]))
    if x.shape[1] <= step:
        return _pointnet_split(x, mlp1, mlp2)
    return torch.cat([_pointnet_split(x[:, s : s + step], mlp1, mlp2)
                      for s in range(0, x.shape[1], step)], dim=1)
