"""Evaluation click rollout: the official golden rollout, batching, and IoU@k with fake predictors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pointsam.data.clicks import first_click, next_click
from pointsam.errors import InputError
from pointsam.evaluation import iou_at_k, simulate_clicks
from pointsam.rollout import click_rollout

from conftest import tiny_model
from test_parity import LOGIT_TOL


@pytest.fixture(scope="module")
def golden_cloud(golden, golden_model):
    with torch.no_grad():
        return golden_model.encode(golden["input.coords"], golden["input.features"], 128, 32)


def test_golden_rollout(golden, golden_model, golden_cloud):
    steps = simulate_clicks(golden_model, golden_cloud, golden["input.gt_masks"][0, 0], 3)
    assert len(steps) == 3
    for i, s in enumerate(steps):
        assert torch.equal(s.prompt_coords, golden[f"rollout.{i}.prompt_coords"])
        assert torch.equal(s.prompt_labels, golden[f"rollout.{i}.prompt_labels"])
        torch.testing.assert_close(s.masks, golden[f"rollout.{i}.masks"], **LOGIT_TOL)
        torch.testing.assert_close(s.prompt_masks, golden[f"rollout.{i}.prompt_masks"], **LOGIT_TOL)
        torch.testing.assert_close(s.iou_preds, golden[f"rollout.{i}.iou_preds"], **LOGIT_TOL)
        assert torch.equal(s.chosen, golden[f"rollout.{i}.max_iou_pred_ind"])
        assert torch.equal(s.iou, golden[f"rollout.{i}.iou_vs_gt"])
    assert torch.equal(iou_at_k(steps), torch.stack([golden[f"rollout.{i}.iou_vs_gt"] for i in range(3)]))


def test_batched_masks_match_single(golden, golden_model, golden_cloud):
    labels = golden["input.labels"][0]
    gt = torch.stack([labels == 1, labels == 2])  # sphere, box
    batched = simulate_clicks(golden_model, golden_cloud, gt, 3)
    for p in range(2):
        single = simulate_clicks(golden_model, golden_cloud, gt[p], 3)
        for b, s in zip(batched, single, strict=True):
            assert torch.equal(b.prompt_indices[p], s.prompt_indices[0])
            assert torch.equal(b.prompt_labels[p], s.prompt_labels[0])
            torch.testing.assert_close(b.prompt_masks[p], s.prompt_masks[0], atol=1e-4, rtol=0)


class _FakeModel:
    """Decoder stand-in returning fixed logits for every prompt set and mask token."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits  # [P, N]
        self.calls: list[tuple] = []

    def decode(self, cloud, prompt_coords, prompt_labels, prompt_masks=None, multimask_output=True):
        self.calls.append((prompt_coords.shape, prompt_masks is None, multimask_output))
        c = 3 if multimask_output else 1
        p = prompt_coords.shape[0]
        return self.logits[:, None].expand(p, c, -1).clone(), torch.linspace(0, 1, c).expand(p, c)


def _cloud(n: int = 400) -> tuple[SimpleNamespace, torch.Tensor]:
    coords = torch.rand(1, n, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    gt = coords[0].norm(dim=1) < 0.6
    return SimpleNamespace(coords=coords), gt


def test_perfect_predictor_iou_is_one():
    cloud, gt = _cloud()
    model = _FakeModel(torch.where(gt, 4.0, -4.0)[None])
    steps = simulate_clicks(model, cloud, gt, 4)
    assert iou_at_k(steps).flatten().tolist() == [1.0] * 4
    center = first_click(cloud.coords[0], gt).index
    assert steps[-1].prompt_indices.tolist() == [[center] * 4]  # no error: the gt centre again
    assert steps[-1].prompt_labels.all()
    assert [c[1:] for c in model.calls] == [(True, True)] + [(False, False)] * 3
    assert steps[0].chosen.tolist() == [2]  # highest predicted IoU among the 3


def test_everything_predictor_gets_negative_click():
    cloud, gt = _cloud()
    model = _FakeModel(torch.full((1, gt.numel()), 3.0))
    steps = simulate_clicks(model, cloud, gt, 2)
    expect = next_click(cloud.coords[0], gt, torch.ones_like(gt))
    assert steps[1].prompt_indices[0, 1].item() == expect.index
    assert steps[1].prompt_labels.tolist() == [[True, False]]
    assert steps[1].prompt_coords.shape == (1, 2, 3)
    assert steps[1].iou.item() == pytest.approx(gt.float().mean().item())


def test_bad_inputs():
    cloud, gt = _cloud()
    model = _FakeModel(torch.zeros(1, gt.numel()))
    with pytest.raises(InputError, match="empty"):
        simulate_clicks(model, cloud, torch.zeros_like(gt), 2)
    with pytest.raises(InputError, match="boolean"):
        simulate_clicks(model, cloud, gt.long(), 2)
    with pytest.raises(InputError, match="shape"):
        simulate_clicks(model, cloud, gt[:-1], 2)
    with pytest.raises(InputError, match="num_clicks"):
        simulate_clicks(model, cloud, gt, 0)
    with pytest.raises(InputError, match="B = 1"):
        simulate_clicks(model, SimpleNamespace(coords=cloud.coords.expand(2, -1, -1)), gt, 1)


# ----------------------------------------------------------------------------- one rollout for train and eval


def test_training_and_evaluation_share_one_rollout():
    model = tiny_model()
    fake, gt = _cloud(300)
    cloud_xyz = fake.coords
    gt = torch.stack([gt, ~gt])
    features = torch.zeros_like(cloud_xyz)
    emb = model.encode(cloud_xyz, features)  # with autograd, as training does
    train = click_rollout(model, emb, gt, 4, refine={2})
    with torch.no_grad():
        emb_eval = model.encode(cloud_xyz, features)
    evaluation = simulate_clicks(model, emb_eval, gt, 4)
    assert train[-1].masks.requires_grad and not evaluation[-1].masks.requires_grad
    # Refinement iteration 2 adds no click; the others add one each.
    assert [s.prompt_indices.shape[1] for s in train] == [1, 2, 2, 3]
    assert [s.prompt_indices.shape[1] for s in evaluation] == [1, 2, 3, 4]
    for t, e in zip(train[:2], evaluation[:2], strict=True):  # identical until the protocols differ
        assert torch.equal(t.prompt_indices, e.prompt_indices)
        torch.testing.assert_close(t.masks.detach(), e.masks, atol=1e-5, rtol=0)
        assert torch.equal(t.iou, e.iou)
    train[-1].masks.sum().backward()
    assert sum(p.grad.abs().sum().item() for p in model.parameters() if p.grad is not None) > 0


def test_evaluation_does_not_import_training():
    import subprocess
    import sys

    code = ("import sys, pointsam.evaluation, pointsam.evaluation.interactive, "
            "pointsam.evaluation.proposals, pointsam.evaluation.report\n"
            "bad = sorted(m for m in sys.modules if m.startswith('pointsam.train'))\n"
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
