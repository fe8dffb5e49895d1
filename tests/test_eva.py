"""EVA-01 (fused qkv, giant) attention computes the same function as EVA-02's separate q/k/v."""

from __future__ import annotations

import torch

from pointsam.modeling.eva import EvaAttention, EvaBlock


def test_fused_qkv_equals_separate_projections():
    torch.manual_seed(0)
    sep = EvaAttention(64, 4, fused_qkv=False)
    fused = EvaAttention(64, 4, fused_qkv=True)
    with torch.no_grad():
        fused.qkv.weight.copy_(torch.cat([sep.q_proj.weight, sep.k_proj.weight, sep.v_proj.weight]))
        fused.q_bias.copy_(sep.q_proj.bias)
        fused.v_bias.copy_(sep.v_proj.bias)
        fused.proj.load_state_dict(sep.proj.state_dict())
    x = torch.randn(2, 10, 64)
    torch.testing.assert_close(fused(x), sep(x), atol=1e-5, rtol=1e-5)
    assert "k_bias" not in fused.state_dict()  # non-persistent, as in timm


def test_attention_matches_explicit_softmax():
    torch.manual_seed(1)
    attn = EvaAttention(32, 2, fused_qkv=False)
    x = torch.randn(1, 7, 32)
    q = attn.q_proj(x).view(1, 7, 2, 16).transpose(1, 2)
    k = attn.k_proj(x).view(1, 7, 2, 16).transpose(1, 2)
    v = attn.v_proj(x).view(1, 7, 2, 16).transpose(1, 2)
    ref = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1) @ v
    ref = attn.proj(ref.transpose(1, 2).reshape(1, 7, 32))
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_giant_block_uses_gelu_mlp():
    block = EvaBlock(64, 4, 256, "eva")
    names = set(block.state_dict())
    assert {"mlp.fc1.weight", "mlp.fc2.weight", "attn.qkv.weight", "attn.q_bias"} <= names
    x = torch.randn(1, 5, 64)
    manual = x + block.attn(block.norm1(x))
    manual = manual + block.mlp.fc2(torch.nn.functional.gelu(block.mlp.fc1(block.norm2(manual))))
    torch.testing.assert_close(block(x), manual)
