"""Fused interpolation + LayerNorm + GELU: numba fast path against the plain-torch reference."""

from __future__ import annotations

import pytest
import torch

from pointsam.ops.upsample import interp_norm_gelu


def test_numba_matches_torch():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(300, 64, generator=g) * 3
    idx = torch.randint(0, 300, (5000, 3), generator=g)
    w = torch.rand(5000, 3, generator=g)
    w = w / w.sum(-1, keepdim=True)
    lw, lb = torch.randn(64, generator=g), torch.randn(64, generator=g)
    with torch.no_grad():
        a = interp_norm_gelu(tokens, idx, w, lw, lb, 1e-5, method="numba")
        b = interp_norm_gelu(tokens, idx, w, lw, lb, 1e-5, method="torch")
    torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


def test_point_on_a_center_gets_its_token():
    tokens = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 8.0], [5.0, 1.0, 1.0, 1.0]])
    idx = torch.tensor([[0, 1, 2]])
    w = torch.tensor([[1.0, 0.0, 0.0]])
    ones, zeros = torch.ones(4), torch.zeros(4)
    with torch.no_grad():
        out = interp_norm_gelu(tokens, idx, w, ones, zeros, method="numba")
    x = (tokens[0] - tokens[0].mean()) / torch.sqrt(tokens[0].var(unbiased=False) + 1e-5)
    torch.testing.assert_close(out[0], torch.nn.functional.gelu(x))


def test_gradients_flow_through_auto_path():
    tokens = torch.randn(10, 8, requires_grad=True)
    out = interp_norm_gelu(tokens, torch.randint(0, 10, (20, 3)), torch.full((20, 3), 1 / 3),
                           torch.ones(8), torch.zeros(8))
    out.sum().backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method"):
        interp_norm_gelu(torch.zeros(3, 2), torch.zeros(1, 3, dtype=torch.long),
                         torch.ones(1, 3) / 3, torch.ones(2), torch.zeros(2), method="cuda")
