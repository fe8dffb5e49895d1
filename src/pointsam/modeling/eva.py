"""EVA / EVA-02 ViT blocks with timm's parameter names (so official weights load unchanged).

Point-SAM runs only `blocks` and `fc_norm` of timm's `Eva`. The official checkpoint also stores
the image-only parts (cls token, absolute position table, conv patch embedding, classifier
head); they are not modules here: `pointsam.checkpoint` drops them on load and writes them back
(as zeros) when saving in the official layout. RoPE is not used by Point-SAM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pointsam.modeling.config import PointSAMConfig

VIT_NORM_EPS = 1e-6
# timm `Eva` keys of the image-only parts, present in the official checkpoint, unused here.
IMAGE_ONLY_KEYS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                   "head.weight", "head.bias")


def _drop_image_only_keys(module, state_dict, prefix, *_args) -> None:
    """Load hook: ignore the official file's image-only ViT keys (so strict loads still work)."""
    for key in IMAGE_ONLY_KEYS:
        state_dict.pop(prefix + key, None)


class EvaAttention(nn.Module):
    """Multi-head self-attention; separate q/k/v (EVA-02) or fused qkv with q/v biases (EVA-01)."""

    def __init__(self, dim: int, num_heads: int, fused_qkv: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.fused_qkv = fused_qkv
        if fused_qkv:
            self.qkv = nn.Linear(dim, dim * 3, bias=False)
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_proj = nn.Linear(dim, dim, bias=True)
            self.k_proj = nn.Linear(dim, dim, bias=False)
            self.v_proj = nn.Linear(dim, dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        h = self.num_heads
        if self.fused_qkv:
            bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
            q, k, v = F.linear(x, self.qkv.weight, bias).view(b, n, 3, h, c // h).unbind(2)
        else:
            q = self.q_proj(x).view(b, n, h, c // h)
            k = self.k_proj(x).view(b, n, h, c // h)
            v = self.v_proj(x).view(b, n, h, c // h)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SwiGLU(nn.Module):
    """EVA-02 MLP: SiLU(fc1_g x) * fc1_x x, LayerNorm, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden)
        self.fc1_x = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden, eps=VIT_NORM_EPS)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(F.silu(self.fc1_g(x)) * self.fc1_x(x)))


class GeluMlp(nn.Module):
    """EVA-01 MLP: fc1, exact GELU, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EvaBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1 x), then x + mlp(norm2 x)."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, variant: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=VIT_NORM_EPS)
        self.attn = EvaAttention(dim, num_heads, fused_qkv=variant == "eva")
        self.norm2 = nn.LayerNorm(dim, eps=VIT_NORM_EPS)
        self.mlp = SwiGLU(dim, mlp_hidden) if variant == "eva02" else GeluMlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EvaTransformer(nn.Module):
    """The ViT trunk of Point-SAM's point-cloud encoder (timm `Eva` layout)."""

    def __init__(self, cfg: PointSAMConfig) -> None:
        super().__init__()
        w = cfg.vit_width
        self.blocks = nn.ModuleList(
            EvaBlock(w, cfg.vit_heads, cfg.mlp_hidden_dim, cfg.vit_variant)
            for _ in range(cfg.vit_depth)
        )
        self.fc_norm = nn.LayerNorm(w, eps=VIT_NORM_EPS)
        self.register_load_state_dict_pre_hook(_drop_image_only_keys)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the blocks and the final norm over `tokens` [B, L, W]."""
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.fc_norm(tokens)
