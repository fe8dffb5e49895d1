"""Per-point mask logits of the decoder: 3-NN upsampling of the tokens, MLP, hypernetwork dots.

For each prompt p, point n and mask c the decoder computes
    logits[p, c, n] = hyper[p, c] . mlp(sum_j w[n, j] * src[p, idx[n, j]])
with mlp = Linear, LayerNorm, GELU, Linear, GELU (`output_upscaling`). `mask_logits_reference`
does exactly that on all N points at once. `mask_logits` gives the same values for large N
without the [P, N, D] temporaries: the first Linear commutes with the interpolation (the three
weights sum to one), so it runs on the L tokens; then points go through in chunks (weighted
3-NN sum in one `embedding_bag`, LayerNorm, GELU, Linear, GELU, one matmul with the hypernetwork
outputs). Plain torch; meant for inference (no_grad).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pointsam.ops.interpolate import interpolate_reference

DEFAULT_CHUNK = 16384  # points per chunk


def mask_logits_reference(src: Tensor, hyper: Tensor, idx: Tensor, weight: Tensor,
                          upscaling: nn.Sequential) -> Tensor:
    """src [P, L, D], hyper [P, C, D], idx/weight [P, N, 3] -> logits [P, C, N]."""
    x = upscaling(interpolate_reference(src, idx, weight))  # [P, N, D]
    return hyper @ x.transpose(1, 2)


def mask_logits(src: Tensor, hyper: Tensor, idx: Tensor, weight: Tensor, upscaling: nn.Sequential,
                chunk_size: int = DEFAULT_CHUNK) -> Tensor:
    """Same values as `mask_logits_reference`; idx/weight may be [1, N, 3] (shared by all prompts)."""
    lin0, norm, _, lin1, _ = upscaling
    tokens = lin0(src)  # [P, L, D]
    p, n = src.shape[0], idx.shape[1]
    d = tokens.shape[-1]
    out = tokens.new_empty(p, hyper.shape[1], n)
    step = max(1, chunk_size)
    for b in range(p):
        ib, wb = idx[min(b, idx.shape[0] - 1)], weight[min(b, weight.shape[0] - 1)].to(tokens.dtype)
        for s in range(0, n, step):
            x = F.embedding_bag(ib[s : s + step], tokens[b], per_sample_weights=wb[s : s + step], mode="sum")
            x = torch.ops.aten.gelu_(F.layer_norm(x, (d,), norm.weight, norm.bias, norm.eps))
            x = torch.ops.aten.gelu_(lin1(x))  # in place: both are fresh temporaries
            out[b, :, s : s + step] = torch.mm(x, hyper[b].T).T
    return out
