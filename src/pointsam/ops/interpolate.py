"""Inverse-squared-distance 3-NN interpolation of per-center features back onto points.

`interpolate_reference` is the plain weighted sum of three gathers; `interpolate` computes the
same values with no [N, 3, C] temporary: one `embedding_bag` (gather and weighted sum fused)
when no gradient is needed, three accumulated gathers under autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pointsam.errors import InputError
from pointsam.ops.knn import check_index, check_xyz, knn

WEIGHT_EPS = 1e-8


def three_nn_interpolation_weights(
    points: Tensor, centers: Tensor, method: str = "auto"
) -> tuple[Tensor, Tensor]:
    """3 nearest centers of each point and weights 1/max(d^2, 1e-8) normalised to sum to 1."""
    check_xyz("points", points)
    check_xyz("centers", centers)
    if centers.shape[1] < 3:
        raise InputError(
            "three_nn_interpolation_weights: need at least 3 centers, "
            f"got centers of shape {list(centers.shape)}"
        )
    dist_sq, idx = knn(points, centers, 3, method=method)
    recip = 1.0 / dist_sq.clamp_min(WEIGHT_EPS)
    weight = recip / recip.sum(dim=-1, keepdim=True)
    return idx, weight


def interpolate_reference(features: Tensor, idx: Tensor, weight: Tensor) -> Tensor:
    """Plain twin of `interpolate`: sum_j weight[..., j] * features[b, idx[..., j]]."""
    nb = torch.gather(features[:, :, None, :].expand(-1, -1, 3, -1), 1,
                      idx[..., None].long().expand(-1, -1, -1, features.shape[-1]))
    return (nb * weight[..., None].to(features.dtype)).sum(dim=2)


def interpolate(features: Tensor, idx: Tensor, weight: Tensor) -> Tensor:
    """3-NN interpolation: out[b, n] = sum_j weight[b, n, j] * features[b, idx[b, n, j]]."""
    check_xyz("features", features, last=None)
    B, L, C = features.shape
    check_index("idx", idx, B, last=3)
    if not isinstance(weight, Tensor) or weight.shape != idx.shape:
        got = list(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise InputError(f"weight: expected shape {list(idx.shape)} (same as idx), got {got}")
    n = idx.shape[1]
    dev = features.device
    idx = idx.to(device=dev, dtype=torch.long)
    weight = weight.to(device=dev, dtype=features.dtype)
    flat_feat = features.reshape(B * L, C)
    offs = (torch.arange(B, device=dev) * L)[:, None, None] if B > 1 else 0
    flat_idx = idx + offs  # [B, n, 3] indices into flat_feat

    if torch.is_grad_enabled() and (features.requires_grad or weight.requires_grad):
        out = None  # autograd-friendly: three accumulated gathers, no [n, 3, C] temporary
        for j in range(3):
            term = flat_feat.index_select(0, flat_idx[..., j].reshape(-1)).reshape(B, n, C)
            term = term * weight[..., j : j + 1]
            out = term if out is None else out + term
        assert out is not None
        return out

    out = F.embedding_bag(flat_idx.reshape(-1, 3), flat_feat, per_sample_weights=weight.reshape(-1, 3),
                          mode="sum")
    return out.view(B, n, C)
