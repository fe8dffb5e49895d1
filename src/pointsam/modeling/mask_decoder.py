"""Mask decoder: two-way transformer, 3-NN upsampling to every point, hypernetwork mask heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pointsam.modeling.transformer import TwoWayTransformer
from pointsam.ops import interpolate_reference


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

    def predict_tokens(
        self,
        pc_embeddings: torch.Tensor,
        pc_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two-way transformer and heads: (point tokens [P, L, D], mask weights [P, C, D], IoU [P, C])."""
        p = sparse.shape[0]
        tokens = torch.cat((self.iou_token.weight, self.mask_tokens.weight), dim=0)
        tokens = torch.cat((tokens.unsqueeze(0).expand(p, -1, -1), sparse), dim=1)
        hs, src = self.transformer(pc_embeddings + dense, pc_pe, tokens)
        chosen = range(1, self.num_mask_tokens) if multimask_output else range(0, 1)
        hyper = torch.stack(
            [self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in chosen], dim=1
        )
        iou_pred = self.iou_prediction_head(hs[:, 0])[:, chosen.start : chosen.stop]
        return src, hyper, iou_pred

    def mask_logits(self, src: torch.Tensor, hyper: torch.Tensor, interp_idx: torch.Tensor,
                    interp_weight: torch.Tensor) -> torch.Tensor:
        """Upsample point tokens to every point (3-NN), MLP, dot with each mask's weights: [P, C, N]."""
        x = self.output_upscaling(interpolate_reference(src, interp_idx, interp_weight))
        return hyper @ x.transpose(1, 2)

    def forward(
        self,
        pc_embeddings: torch.Tensor,
        pc_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        interp_idx: torch.Tensor,
        interp_weight: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode masks.

        pc_embeddings/pc_pe/dense: [P, L, D]; sparse: [P, Q, D]; interp_idx/weight: [P, N, 3]
        (each point's 3 nearest centers and normalized inverse squared distance weights).
        Returns logits [P, C, N] and IoU predictions [P, C]; C = 3 if multimask else 1.
        """
        src, hyper, iou_pred = self.predict_tokens(pc_embeddings, pc_pe, sparse, dense, multimask_output)
        return self.mask_logits(src, hyper, interp_idx, interp_weight), iou_pred
