"""Point-SAM training: the iterative click simulation with autograd, and a small single-process `Trainer`.

`train_step` follows the official `PointSAM.forward` (training branch): encode once; iteration 0
clicks the gt centre and decodes three masks, feeding back the logits of the one with the highest
predicted IoU; each later iteration adds a click from the error region of the fed-back mask and
decodes one mask with the previous logits as mask prompt. Mask-refinement iterations (the last one
plus one drawn from [1, iters - 1]) add no click and only update the mask prompt.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pointsam.checkpoint import save_model
from pointsam.data.clicks import first_click, next_click
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError
from pointsam.modeling.point_sam import PointSAM, build_model
from pointsam.train.config import TrainConfig
from pointsam.train.losses import RolloutLoss, rollout_loss
from pointsam.train.sampling import TrainSample, collate, make_sample

__all__ = ["CHECKPOINT_FILE", "METRICS_FILE", "MODEL_FILE", "Trainer", "lr_factor", "refinement_iters",
           "train_step"]

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
WARMUP_START = 0.001


def refinement_iters(prompt_iters: int, rng: np.random.Generator) -> set[int]:
    """Iterations that add no click: the last one plus one uniform in [1, iters - 1] (none if iters = 1)."""
    if prompt_iters < 2:
        return set()
    return {prompt_iters - 1, int(rng.integers(1, prompt_iters))}


def train_step(
    model: PointSAM, batch: TrainSample, cfg: TrainConfig, rng: np.random.Generator
) -> RolloutLoss:
    """Loss of one rollout of `cfg.prompt_iters` iterations on a collated batch, with autograd.

    batch: coords/features [B, N, 3] (normalised) and gt [B, M, N] bool with no empty mask.
    """
    coords, features, gt = batch.coords, batch.features, batch.gt
    if coords.dim() != 3 or gt.dim() != 3 or gt.shape[0] != coords.shape[0] or gt.shape[2] != coords.shape[1]:
        raise InputError(f"batch: coords {list(coords.shape)} and gt {list(gt.shape)} do not match")
    b, m, n = gt.shape
    p = b * m
    gt_flat = gt.reshape(p, n).bool()
    if not gt_flat.any(dim=1).all():
        raise InputError("batch: every gt mask must have at least one point")
    refine = refinement_iters(cfg.prompt_iters, rng)
    cloud = model.encode(coords, features)
    xyz = coords.detach().cpu().repeat_interleave(m, dim=0)  # [P, N, 3] cloud of each prompt set
    gt_cpu = gt_flat.cpu()
    rows = torch.arange(p)
    indices = torch.empty(p, 0, dtype=torch.long)
    labels = torch.empty(p, 0, dtype=torch.bool)
    prev: Tensor | None = None
    iterations: list[tuple[Tensor, Tensor]] = []
    for i in range(cfg.prompt_iters):
        if i == 0:
            clicks = [first_click(xyz[j], gt_cpu[j]) for j in range(p)]
        elif i in refine:
            clicks = []
        else:
            pred = (prev.detach() > 0).cpu()
            clicks = [next_click(xyz[j], gt_cpu[j], pred[j]) for j in range(p)]
        if clicks:
            indices = torch.cat([indices, torch.tensor([[c.index] for c in clicks])], dim=1)
            labels = torch.cat([labels, torch.tensor([[c.positive] for c in clicks])], dim=1)
        prompt_coords = xyz[rows[:, None], indices].to(coords.device)
        logits, iou_preds = model.decode(
            cloud, prompt_coords, labels.to(coords.device), prev, multimask_output=i == 0
        )
        iterations.append((logits, iou_preds))
        chosen = iou_preds.detach().argmax(dim=1)
        prev = logits[torch.arange(p, device=logits.device), chosen]
    return rollout_loss(iterations, gt_flat.to(coords.device))


def lr_factor(step: int, warmup_steps: int, milestones: Sequence[int], gamma: float) -> float:
    """Official WarmupMultiStepLR factor: linear 0.001 → 1 over warm-up, × gamma per milestone passed."""
    decay = gamma ** sum(1 for ms in milestones if ms <= step)
    if warmup_steps > 0 and step < warmup_steps:
        alpha = step / warmup_steps
        return decay * (WARMUP_START * (1 - alpha) + alpha)
    return decay


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """numpy Generator state with its big integers as strings (torch weights_only-safe)."""
    state = rng.bit_generator.state
    return {"bit_generator": state["bit_generator"], "json": json.dumps(state)}


def _set_rng_state(rng: np.random.Generator, saved: dict[str, Any]) -> None:
    """Inverse of `_rng_state`."""
    rng.bit_generator.state = json.loads(saved["json"])


class Trainer:
    """Single-process trainer: AdamW, warm-up + step decay, gradient accumulation, value clipping."""

    def __init__(
        self,
        model: PointSAM | None,
        dataset: Sequence[LabelledCloud],
        cfg: TrainConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg = cfg.validate()
        if len(dataset) == 0:
            raise InputError("training dataset is empty")
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)
        self.model = (model if model is not None else build_model(cfg.model_config())).to(self.device)
        self.dataset = dataset
        self.rng = np.random.default_rng(cfg.seed)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup, milestones, gamma = cfg.warmup_steps, list(cfg.milestones), cfg.gamma
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, milestones, gamma)
        )
        self.step = 0
        self._order: list[int] = []
        self.out_dir = Path(cfg.out_dir)

    # ------------------------------------------------------------------ data
    def _next_index(self) -> int:
        """Next cloud index of a shuffled pass over the dataset (reshuffled each epoch)."""
        if not self._order:
            self._order = [int(i) for i in self.rng.permutation(len(self.dataset))]
        return self._order.pop(0)

    def next_batch(self) -> TrainSample:
        """Sample, augment and collate `cfg.batch_size` clouds."""
        cfg = self.cfg
        samples = [
            make_sample(self.dataset[self._next_index()], cfg.num_points, cfg.masks_per_cloud, self.rng,
                        augment=cfg.augment, perturb=cfg.perturb)
            for _ in range(cfg.batch_size)
        ]
        batch = collate(samples)
        dev = self.device
        return TrainSample(batch.coords.to(dev), batch.features.to(dev), batch.gt.to(dev))

    # ------------------------------------------------------------------ optimisation
    def train_one_step(self) -> dict[str, Any]:
        """One optimizer step over `grad_accum` micro-batches; returns its metrics."""
        cfg = self.cfg
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: list[float] = []
        mask_l: list[float] = []
        iou_l: list[float] = []
        ious = np.zeros(cfg.prompt_iters)
        for _ in range(cfg.grad_accum):
            out = train_step(self.model, self.next_batch(), cfg, self.rng)
            (out.total / cfg.grad_accum).backward()
            totals.append(out.total.item())
            mask_l.append(float(torch.stack(out.loss_mask).detach().mean()))
            iou_l.append(float(torch.stack(out.loss_iou).detach().mean()))
            ious += np.array([float(x) for x in out.iou]) / cfg.grad_accum
        if not all(math.isfinite(t) for t in totals):
            raise FloatingPointError(f"non-finite loss {totals} at step {self.step}")
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), cfg.clip_value)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {
            "step": self.step,
            "lr": lr,
            "loss": float(np.mean(totals)),
            "loss_mask": float(np.mean(mask_l)),
            "loss_iou": float(np.mean(iou_l)),
            "iou": [round(float(x), 6) for x in ious],
        }

    def fit(self, max_steps: int | None = None) -> list[dict[str, Any]]:
        """Train until `max_steps` (default cfg.max_steps); log JSON lines and checkpoint; return metrics."""
        end = self.cfg.max_steps if max_steps is None else max_steps
        self.out_dir.mkdir(parents=True, exist_ok=True)
        history: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as log:
            while self.step < end:
                metrics = self.train_one_step()
                metrics["time_s"] = round(time.perf_counter() - t0, 3)
                history.append(metrics)
                if self.step % self.cfg.log_every == 0 or self.step == end:
                    log.write(json.dumps(metrics) + "\n")
                    log.flush()
                if self.step % self.cfg.ckpt_every == 0 and self.step != end:
                    self.save_checkpoint()
        if history:
            self.save_checkpoint()
        return history

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model, optimizer, scheduler, step, data order and RNG states."""
        return {
            "step": self.step,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "order": list(self._order),
            "numpy_rng": _rng_state(self.rng),
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self._order = [int(i) for i in state["order"]]
        _set_rng_state(self.rng, state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])

    def save_checkpoint(self) -> Path:
        """Write `checkpoint.pt` (full state) and `model.safetensors` (weights) into out_dir atomically."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / CHECKPOINT_FILE
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)
        save_model(self.model, self.out_dir / MODEL_FILE, overwrite=True)
        return path

    def resume(self, path: str | Path | None = None) -> int:
        """Restore the state saved in `path` (default out_dir/checkpoint.pt); return the step reached."""
        path = Path(path) if path is not None else self.out_dir / CHECKPOINT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no training checkpoint at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)
        return self.step
