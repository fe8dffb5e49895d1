"""Fused 3-NN interpolation + LayerNorm + exact GELU: the per-point hot loop of mask decoding.

`interp_norm_gelu` computes GELU(LayerNorm(sum_j w_j tokens[idx_j])) for a chunk of points. The
plain-torch path is the reference (and the GPU path); on CPU a numba kernel does it in one pass
over memory, without the three gathered [n, C] temporaries.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pointsam.ops.interpolate import interpolate

UPSAMPLE_METHODS = ("auto", "torch", "numba")


def _torch_path(tokens, idx, weight, ln_weight, ln_bias, eps):
    x = interpolate(tokens[None], idx[None], weight[None])[0]
    return F.gelu(F.layer_norm(x, (tokens.shape[1],), ln_weight, ln_bias, eps))


@numba.njit(cache=True, parallel=True, boundscheck=False)
def _fused_kernel(tokens, idx, weight, ln_w, ln_b, eps, out):  # pragma: no cover - numba
    n, c = out.shape
    for p in numba.prange(n):
        i0, i1, i2 = idx[p, 0], idx[p, 1], idx[p, 2]
        w0, w1, w2 = weight[p, 0], weight[p, 1], weight[p, 2]
        mean = 0.0
        for k in range(c):
            v = w0 * tokens[i0, k] + w1 * tokens[i1, k] + w2 * tokens[i2, k]
            out[p, k] = v
            mean += v
        mean /= c
        var = 0.0
        for k in range(c):
            d = out[p, k] - mean
            var += d * d
        inv = 1.0 / math.sqrt(var / c + eps)
        for k in range(c):
            out[p, k] = (out[p, k] - mean) * inv * ln_w[k] + ln_b[k]


def interp_norm_gelu(
    tokens: Tensor,
    idx: Tensor,
    weight: Tensor,
    ln_weight: Tensor,
    ln_bias: Tensor,
    eps: float = 1e-5,
    method: str = "auto",
) -> Tensor:
    """GELU(LayerNorm(3-NN interpolation of tokens [L, C])) for points idx/weight [n, 3] -> [n, C]."""
    if method not in UPSAMPLE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {UPSAMPLE_METHODS}")
    if method == "auto":
        method = "numba" if tokens.device.type == "cpu" and not torch.is_grad_enabled() else "torch"
    if method == "torch" or tokens.dtype != torch.float32:
        return _torch_path(tokens, idx, weight.to(tokens.dtype), ln_weight, ln_bias, eps)
    out = np.empty((idx.shape[0], tokens.shape[1]), np.float32)
    _fused_kernel(
        tokens.detach().contiguous().numpy(), idx.contiguous().numpy(),
        weight.detach().to(torch.float32).contiguous().numpy(),
        ln_weight.detach().numpy(), ln_bias.detach().numpy(), np.float32(eps), out,
    )
    # GELU stays in torch: its vectorized erf is far faster than a scalar erf per element.
    return F.gelu(torch.from_numpy(out))
