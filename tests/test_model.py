"""The reference model: every preset trains (all parameters get gradients) and the predictor's lean
inference path computes the same function as `PointSAM.encode` / `decode`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pointsam import PointSAMConfig, build_model

TINY_WIDTHS = dict(vit_width=32, vit_depth=2, vit_heads=2, vit_mlp_dim=48, embed_dim=32,
                   decoder_depth=2, decoder_heads=2, decoder_mlp_dim=32, patch_embed_dim=32,
                   pointnet_hidden=(8, 16), num_patches=16, patch_size=8)


def _cloud(b: int = 2, n: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(b, n, 3, generator=g) * 1.6 - 0.8
    feats = torch.rand(b, n, 3, generator=g) * 2 - 1
    return coords, feats


@pytest.mark.parametrize("preset", ["large", "giant", "base"])
def test_forward_backward_every_parameter_gets_a_gradient(preset):
    torch.manual_seed(0)
    model = build_model(PointSAMConfig.preset(preset, **TINY_WIDTHS)).train()
    coords, feats = _cloud()
    cloud = model.encode(coords, feats)
    prompts = coords[:, [3, 50]]
    labels = torch.tensor([[1, 0], [0, 1]])
    logits1, iou1 = model.decode(cloud, prompts, labels, multimask_output=True)
    logits2, iou2 = model.decode(cloud, prompts, labels, logits1[:, 0], multimask_output=False)
    assert logits1.shape == (2, 3, 200) and logits2.shape == (2, 1, 200)
    (logits1.square().mean() + logits2.square().mean() + iou1.sum() + iou2.sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_lean_inference_path_equals_the_reference_model():
    torch.manual_seed(1)
    model = build_model(PointSAMConfig.base(**TINY_WIDTHS)).eval()
    coords, feats = _cloud(b=1, n=500, seed=2)
    with torch.no_grad():
        ref = model.encode(coords, feats, 24, 16)
        fast = model.encode(coords, feats, 24, 16, lean=True)
        torch.testing.assert_close(fast.embeddings, ref.embeddings, atol=1e-5, rtol=1e-5)
        assert torch.equal(fast.patches.knn_idx, ref.patches.knn_idx)
        prompts = coords[:, [[1, 2], [7, 9], [30, 31]]][0]  # 3 prompt sets of 2 points
        labels = torch.tensor([[1, 0], [1, 1], [0, 1]])
        masks = torch.randn(3, 500)
        for mask_prompt in (None, masks):
            for multimask in (True, False):
                want = model.decode(ref, prompts, labels, mask_prompt, multimask)
                for chunk in (64, 16384):
                    got = model.decode(fast, prompts, labels, mask_prompt, multimask, chunk_size=chunk)
                    torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)
                    torch.testing.assert_close(got[1], want[1], atol=1e-5, rtol=1e-5)


def test_lean_path_with_several_clouds():
    torch.manual_seed(3)
    model = build_model(PointSAMConfig.base(**TINY_WIDTHS)).eval()
    coords, feats = _cloud(b=2, n=300, seed=4)
    with torch.no_grad():
        ref = model.encode(coords, feats)
        fast = model.encode(coords, feats, lean=True)
        prompts = coords[:, [5, 6]].repeat_interleave(2, dim=0)  # 2 prompt sets per cloud
        labels = torch.tensor([[1, 0], [1, 1], [1, 0], [0, 1]])
        masks = torch.randn(4, 300)
        want = model.decode(ref, prompts, labels, masks, False)
        got = model.decode(fast, prompts, labels, masks, False, chunk_size=50)
    torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)


def test_importing_the_model_does_not_import_numba():
    code = "import sys, pointsam.modeling, pointsam.predictor; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_deprecated_kernel_arguments_warn_and_are_ignored():
    model = build_model(PointSAMConfig.base(**TINY_WIDTHS)).eval()
    coords, feats = _cloud(b=1)
    with torch.no_grad(), pytest.warns(DeprecationWarning, match="fps_method"):
        model.encode(coords, feats, fps_method="numba")
