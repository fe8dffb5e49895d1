"""Mask decoder: two-way transformer, 3-NN upsampling to every point, hypernetwork mask heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pointsam.modeling.transformer import TwoWayTransformer
from pointsam.ops.upsample import interp_norm_gelu

DEFAULT_CHUNK = 16384


class MLP(nn.Module):
    """Plain MLP with ReLU between layers (SAM's hypernetwork / IoU head)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [out_dim], strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MaskDecoder(nn.Module):
    """Predicts per-point mask logits and their IoU from point-cloud and prompt embeddings."""

    def __init__(self, transformer_dim: int, transformer: TwoWayTransformer,
                 num_multimask_outputs: int = 3) -> None:
        super().__init__()
        d = transformer_dim
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, d)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, d)
        self.output_upscaling = nn.Sequential(
            nn.Linear(d, d), nn.LayerNorm(d), nn.GELU(), nn.Linear(d, d), nn.GELU()
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(d, d, d, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(d, 256, self.num_mask_tokens, 3)

    def forward(
        self,
        pc_embeddings: torch.Tensor,
        pc_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        interp_idx: torch.Tensor,
        interp_weight: torch.Tensor,
        multimask_output: bool,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode masks.

        pc_embeddings/pc_pe/dense: [P, L, D]; sparse: [P, Q, D]; interp_idx/weight: [P, N, 3]
        (each point's 3 nearest centers and normalized inverse squared distance weights).
        Returns logits [P, C, N] and IoU predictions [P, C]; C = 3 if multimask else 1.
        """
        p = sparse.shape[0]
        tokens = torch.cat((self.iou_token.weight, self.mask_tokens.weight), dim=0)
        tokens = torch.cat((tokens.unsqueeze(0).expand(p, -1, -1), sparse), dim=1)
        hs, src = self.transformer(pc_embeddings + dense, pc_pe, tokens)
        chosen = range(1, self.num_mask_tokens) if multimask_output else range(0, 1)
        hyper = torch.stack(
            [self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in chosen], dim=1
        )
        iou_pred = self.iou_prediction_head(hs[:, 0])[:, chosen.start : chosen.stop]
        return self.upscale_and_project(src, hyper, interp_idx, interp_weight, chunk_size), iou_pred

    def upscale_and_project(
        self,
        src: torch.Tensor,
        hyper: torch.Tensor,
        interp_idx: torch.Tensor,
        interp_weight: torch.Tensor,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> torch.Tensor:
        """Per-point logits hyper . upscale(interp(src)), computed in chunks of points.

        The first Linear of `output_upscaling` commutes with the 3-NN interpolation (its weights
        sum to 1), so it runs on the L tokens instead of the N points.
        """
        lin0, norm, _, lin1, _ = self.output_upscaling
        tok = lin0(src)  # [P, L, D]
        p, n = interp_idx.shape[0], interp_idx.shape[1]
        out = tok.new_empty(p, hyper.shape[1], n)
        for b in range(p):
            for start in range(0, n, chunk_size):
                stop = start + chunk_size
                x = interp_norm_gelu(tok[b], interp_idx[b, start:stop], interp_weight[b, start:stop],
                                     norm.weight, norm.bias, norm.eps)
                x = F.gelu(lin1(x))
                out[b, :, start:stop] = torch.mm(x, hyper[b].T).T
        return out
