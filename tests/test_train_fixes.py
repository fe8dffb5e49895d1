"""The click-2 training fixes (issue 10): IoU loss on all first-click candidates, the oracle mask prompt.

Their defaults must leave training exactly as the official recipe; switched on they must do what they
say, and a resumed run must still equal an uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_train_loop import blobs, tiny_cfg

import pointsam.train.loop as loop
from pointsam.errors import InputError
from pointsam.rollout import click_rollout
from pointsam.train.config import TrainConfig
from pointsam.train.loop import Trainer, oracle_prompt_choice, refinement_iters, train_step
from pointsam.train.losses import hindsight_best, mask_loss, rollout_loss

DATA = [blobs(0, 2, n=128), blobs(1, 3, n=128), blobs(2, 2, n=128)]
FIXES = dict(iou_loss_all_candidates=True, oracle_prompt_prob=0.5)


def _trainer(tmp_path, **kw) -> Trainer:
    kw = dict(dict(num_points=128, prompt_iters=3, batch_size=2), **kw)
    return Trainer(None, DATA, tiny_cfg(tmp_path, **kw))


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _spy_rollout(monkeypatch) -> list:
    """Record the steps of every rollout `train_step` runs, keeping the first click's IoU-pred grads."""
    seen = []

    def spy(*args, **kwargs):
        steps = click_rollout(*args, **kwargs)
        steps[0].iou_preds.retain_grad()
        seen.append(steps)
        return steps

    monkeypatch.setattr(loop, "click_rollout", spy)
    return seen


# ----------------------------------------------------------------------------- defaults: unchanged


def test_default_config_gives_the_official_loss_and_gradients_bit_for_bit(tmp_path):
    trainer = _trainer(tmp_path)
    cfg, model = trainer.cfg, trainer.model
    assert cfg.iou_loss_all_candidates is False and cfg.oracle_prompt_prob == 0.0
    batch = trainer.next_batch()

    # The official path, spelled out: argmax prompt, IoU loss on the hindsight-best candidate only.
    rng_ref = np.random.default_rng(7)
    torch.manual_seed(0)
    refine = refinement_iters(cfg.prompt_iters, rng_ref)
    cloud = model.encode(batch.coords, batch.features)
    gt = batch.gt.reshape(-1, batch.gt.shape[-1])
    steps = click_rollout(model, cloud, gt, cfg.prompt_iters, refine)
    ref = rollout_loss([(s.masks, s.iou_preds) for s in steps], gt)
    model.zero_grad()
    ref.total.backward()
    ref_grads = _grads(model)

    rng = np.random.default_rng(7)
    torch.manual_seed(0)
    model.zero_grad()
    out = train_step(model, batch, cfg, rng)
    out.total.backward()
    assert torch.equal(out.total, ref.total)
    assert all(torch.equal(a, b) for a, b in zip(out.loss_iou, ref.loss_iou, strict=True))
    grads = _grads(model)
    assert grads.keys() == ref_grads.keys()
    assert all(torch.equal(grads[k], ref_grads[k]) for k in grads)
    assert rng.bit_generator.state == rng_ref.bit_generator.state  # no extra draws from the trainer's RNG


# ----------------------------------------------------------------------------- IoU loss on all candidates


def test_iou_loss_on_all_candidates_by_hand():
    gt = torch.tensor([[True, True, False, False]])
    good = torch.tensor([5.0, 5.0, -5.0, -5.0])
    logits = torch.stack([-good, good, torch.zeros(4)])[None]  # candidate IoUs 0, 1, 0
    preds = torch.tensor([[0.9, 0.5, 0.1]], requires_grad=True)
    iterations = [(logits, preds), (logits[:, :1], preds[:, :1])]
    base = rollout_loss(iterations, gt)
    out = rollout_loss(iterations, gt, iou_all_candidates=True)
    assert out.loss_iou[0].item() == pytest.approx((0.9**2 + 0.5**2 + 0.1**2) / 3)
    assert out.loss_iou[1].item() == pytest.approx(base.loss_iou[1].item())  # one candidate: as before
    assert torch.equal(out.loss_mask[0], base.loss_mask[0]) and out.chosen[0].tolist() == [1]
    assert out.iou[0].item() == 1.0  # the metric stays the hindsight-best mask's IoU
    out.loss_iou[0].backward()
    assert (preds.grad[0] != 0).all()  # all three predictions are supervised
    assert preds.grad[0].tolist() == pytest.approx([2 * 0.9 / 3, 2 * -0.5 / 3, 2 * 0.1 / 3])


def test_train_step_sends_gradient_to_all_three_iou_predictions(tmp_path, monkeypatch):
    seen = _spy_rollout(monkeypatch)
    for flag, supervised in ((False, 1), (True, 3)):
        trainer = _trainer(tmp_path, iou_loss_all_candidates=flag)
        out = train_step(trainer.model, trainer.next_batch(), trainer.cfg, np.random.default_rng(0))
        out.total.backward()
        grad = seen[-1][0].iou_preds.grad  # [P, 3]
        assert ((grad != 0).sum(dim=1) == supervised).all()
        if not flag:  # only the hindsight-best column
            assert torch.equal(grad.abs().argmax(dim=1), out.chosen[0])


# ----------------------------------------------------------------------------- oracle prompt


def test_oracle_prompt_choice_rate_and_picks():
    g = torch.Generator().manual_seed(0)
    p, c, n = 4000, 3, 16
    logits = torch.randn(p, c, n, generator=g) * 3
    gt = torch.rand(p, n, generator=g) < 0.4
    gt[:, 0] = True
    iou_preds = torch.rand(p, c, generator=g)
    best = hindsight_best(logits, gt)
    assert torch.equal(best, mask_loss(logits, gt[:, None].expand_as(logits)).argmin(dim=1))
    picked = iou_preds.argmax(dim=1)
    differ = best != picked
    assert differ.float().mean() > 0.5  # random heads mostly disagree, so the choice is visible
    for prob in (0.0, 0.3, 1.0):
        rng = np.random.default_rng(5)
        chosen = oracle_prompt_choice(logits, iou_preds, gt, prob, rng)
        use = np.random.default_rng(5).random(p) < prob  # the same draws, one per sample
        assert torch.equal(chosen, torch.where(torch.from_numpy(use), best, picked))
        rate = (chosen[differ] == best[differ]).float().mean().item()
        assert rate == pytest.approx(prob, abs=0.03)


def test_train_step_feeds_the_oracle_prompt(tmp_path, monkeypatch):
    seen = _spy_rollout(monkeypatch)
    for prob in (0.0, 1.0):
        trainer = _trainer(tmp_path, oracle_prompt_prob=prob)
        out = train_step(trainer.model, trainer.next_batch(), trainer.cfg, np.random.default_rng(0))
        first = seen[-1][0]
        expect = out.chosen[0] if prob == 1.0 else first.iou_preds.detach().argmax(dim=1)
        assert torch.equal(first.chosen, expect)
        rows = torch.arange(len(expect))
        assert torch.equal(first.prompt_masks, first.masks[rows, expect])  # the mask fed to click 2
        assert all(torch.equal(s.chosen, torch.zeros_like(s.chosen)) for s in seen[-1][1:])


def test_resume_with_the_fixes_reproduces_the_next_step(tmp_path):
    kw = dict(grad_accum=2, batch_size=1, prompt_iters=2, **FIXES)
    first = _trainer(tmp_path, **kw)
    first.fit(max_steps=2)
    expected = first.train_one_step()
    second = _trainer(tmp_path, seed=5, **kw)
    assert second.resume() == 2
    got = second.train_one_step()
    assert got["step"] == expected["step"] == 3
    assert got["loss"] == pytest.approx(expected["loss"], abs=1e-6)
    assert got["iou"] == pytest.approx(expected["iou"], abs=1e-6)
    for (k, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k
    # The oracle draws come from the trainer's RNG, so it really advances differently with them on.
    plain = _trainer(tmp_path / "plain", grad_accum=2, batch_size=1, prompt_iters=2)
    plain.fit(max_steps=2)
    assert plain.rng.bit_generator.state != first.rng.bit_generator.state


def test_short_run_with_the_fixes_trains(tmp_path):
    trainer = _trainer(tmp_path, max_steps=3, iou_loss_all_candidates=True, oracle_prompt_prob=1.0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit()
    assert [h["step"] for h in history] == [1, 2, 3]
    assert all(math.isfinite(h["loss"]) and len(h["iou"]) == 3 for h in history)
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("iou" in k for k in changed)


# ----------------------------------------------------------------------------- config


def test_config_fields_round_trip():
    cfg = TrainConfig(**FIXES).validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig(oracle_prompt_prob=1).validate().oracle_prompt_prob == 1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(oracle_prompt_prob=1.5), r"oracle_prompt_prob must be a probability in \[0, 1\], got 1.5"),
        (dict(oracle_prompt_prob=-0.1), "oracle_prompt_prob"),
        (dict(oracle_prompt_prob=float("nan")), "oracle_prompt_prob"),
        (dict(oracle_prompt_prob="0.5"), "oracle_prompt_prob"),
        (dict(oracle_prompt_prob=True), "oracle_prompt_prob"),
        (dict(iou_loss_all_candidates=1), "iou_loss_all_candidates must be true or false, got 1"),
        (dict(iou_loss_all_candidates="yes"), "iou_loss_all_candidates"),
    ],
)
def test_config_validation_of_the_fixes(kw, match):
    with pytest.raises(InputError, match=match):
        TrainConfig(**kw).validate()
