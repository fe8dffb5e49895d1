"""Point-SAM training: the iterative click simulation with autograd, and the `Trainer`.

`train_step` follows the official `PointSAM.forward` (training branch): encode once, then the click
rollout of `pointsam.rollout` (the one evaluation uses) with autograd: iteration 0 clicks the gt
centre and decodes three masks, feeding back the logits of the one with the highest predicted IoU;
each later iteration adds a click from the error region of the fed-back mask and decodes one mask
with the previous logits as mask prompt. Mask-refinement iterations (the last one plus one drawn
from [1, iters - 1]) add no click and only update the mask prompt. Options (off by default):
`oracle_prompt_prob` feeds, per sample, the hindsight-best first-click mask forward instead of the
IoU head's pick; `iou_loss_all_candidates` regresses all first-click IoU predictions.

`Trainer` runs in one process, or data-parallel under `torchrun` once `init_distributed` has set up
the process group: the rollout runs inside a `DistributedDataParallel` module, every rank draws
its own clouds (data seed + rank) and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pointsam.checkpoint import save_model
from pointsam.data import LabelledCloud
from pointsam.errors import InputError
from pointsam.modeling import PointSAM, build_model
from pointsam.rollout import click_rollout
from pointsam.train.config import TrainConfig
from pointsam.train.distributed import all_gather_objects, all_reduce_mean, barrier, dist_info
from pointsam.train.losses import RolloutLoss, hindsight_best, rollout_loss
from pointsam.train.mixture import DatasetMixture, load_mixture
from pointsam.train.monitor import METRICS_FILE, STATUS_EVERY_S, RunMonitor
from pointsam.train.run_dir import CHECKPOINT_FILE, MODEL_FILE, check_run_dir, clear_run_files
from pointsam.train.sampling import TrainSample, collate, make_sample

__all__ = ["CHECKPOINT_FILE", "METRICS_FILE", "MODEL_FILE", "RolloutModule", "Trainer", "autocast_dtype",
           "lr_factor", "oracle_prompt_choice", "refinement_iters", "resolve_precision", "train_step"]

WARMUP_START = 0.001


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for a config precision on `device` (auto: bf16 on CUDA if supported, else fp32)."""
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"precision bf16: {device} does not support bfloat16; use fp32")
    if precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return precision


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for plain fp32."""
    return torch.bfloat16 if resolve_precision(precision, device) == "bf16" else None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def refinement_iters(prompt_iters: int, rng: np.random.Generator) -> set[int]:
    """Iterations that add no click: the last one plus one uniform in [1, iters - 1] (none if iters = 1)."""
    if prompt_iters < 2:
        return set()
    return {prompt_iters - 1, int(rng.integers(1, prompt_iters))}


def oracle_prompt_choice(logits: Tensor, iou_preds: Tensor, gt: Tensor, prob: float,
                         rng: np.random.Generator) -> Tensor:
    """Index [P] of the candidate to feed forward: per sample, with probability `prob` (drawn from
    `rng`) the hindsight-best of logits [P, C, N] vs gt [P, N], otherwise the highest iou_preds [P, C]."""
    picked = iou_preds.detach().argmax(dim=1)
    use = torch.from_numpy(rng.random(logits.shape[0]) < prob).to(picked.device)
    return torch.where(use, hindsight_best(logits.detach(), gt.to(logits.device)), picked)


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
    gt_flat = gt.reshape(b * m, n).bool()
    if not gt_flat.any(dim=1).all():
        raise InputError("batch: every gt mask must have at least one point")
    refine = refinement_iters(cfg.prompt_iters, rng)
    amp = autocast_dtype(cfg.precision, coords.device)  # the model under autocast, the losses in fp32
    with _autocast(coords.device, amp):
        cloud = model.encode(coords, features)
    choose = None
    if cfg.oracle_prompt_prob > 0:
        def choose(i: int, logits: Tensor, iou_preds: Tensor) -> Tensor:
            if i > 0:
                return iou_preds.detach().argmax(dim=1)
            return oracle_prompt_choice(logits, iou_preds, gt_flat, cfg.oracle_prompt_prob, rng)
    steps = click_rollout(model, cloud, gt_flat, cfg.prompt_iters, refine, autocast=amp, choose=choose)
    return rollout_loss([(s.masks, s.iou_preds) for s in steps], gt_flat.to(coords.device),
                        cfg.iou_loss_all_candidates)


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


class RolloutModule(nn.Module):
    """The whole click rollout as `forward`, so that DistributedDataParallel all-reduces its gradients.

    forward(coords, features, gt) returns (total loss, per-iteration mask losses, IoU losses, hard IoUs).
    """

    def __init__(self, model: PointSAM, cfg: TrainConfig, rng: np.random.Generator) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.rng = rng

    def forward(self, coords: Tensor, features: Tensor, gt: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """See `train_step`; the last three outputs are detached."""
        out = train_step(self.model, TrainSample(coords, features, gt), self.cfg, self.rng)
        return (out.total, torch.stack(out.loss_mask).detach(), torch.stack(out.loss_iou).detach(),
                torch.stack(out.iou))


class Trainer:
    """AdamW, warm-up + step decay, gradient accumulation, value clipping; one process or DDP.

    dataset: a sequence of clouds, a `DatasetMixture`, or None to open `cfg.datasets`.
    overwrite: a new run may replace another run's files in `cfg.out_dir` (deleted when training
    starts); without it such a folder is refused, and only `resume` continues the run there.
    """

    def __init__(
        self,
        model: PointSAM | None,
        dataset: Sequence[LabelledCloud] | None,
        cfg: TrainConfig,
        device: torch.device | str = "cpu",
        overwrite: bool = False,
    ) -> None:
        self.cfg = cfg.validate()
        if dataset is None:
            if not cfg.datasets:
                raise InputError("no training data: pass a dataset or list `datasets` in the config")
            dataset = load_mixture(cfg.datasets, perturb=cfg.perturb)
        if len(dataset) == 0:
            raise InputError("training dataset is empty")
        self.dist = dist_info()
        self.device = torch.device(device)
        self.precision = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        self.model = (model if model is not None else build_model(cfg.model_config())).to(self.device)
        self.dataset = dataset
        self.rng = np.random.default_rng(cfg.seed + self.dist.rank)  # different clouds on every rank
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup, milestones, gamma = cfg.warmup_steps, list(cfg.milestones), cfg.gamma
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, milestones, gamma)
        )
        self.step = 0
        self._order: list[int] = []
        parts = len(dataset.parts) if isinstance(dataset, DatasetMixture) else 0
        self._orders: list[list[int]] = [[] for _ in range(parts)]
        self.out_dir = Path(cfg.out_dir)
        self.overwrite = overwrite
        self._claimed = False  # whether this run owns out_dir (checked, or resumed from it)
        self._rollout = RolloutModule(self.model, self.cfg, self.rng)
        self._ddp: nn.Module | None = None
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # Unused parameters: the official layout keeps ViT parts (cls token, image patch embed,
            # head) that no point cloud reaches, and a 1-iteration rollout skips the mask encoder.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(self._rollout, device_ids=ids, find_unused_parameters=False)

    # ------------------------------------------------------------------ data
    def _next_index(self) -> int:
        """Next cloud index of a shuffled pass over the dataset (reshuffled each epoch)."""
        if not self._order:
            self._order = [int(i) for i in self.rng.permutation(len(self.dataset))]
        return self._order.pop(0)

    def _next_cloud(self) -> tuple[LabelledCloud, bool]:
        """Next training cloud and whether to perturb it (per dataset in a mixture)."""
        if not isinstance(self.dataset, DatasetMixture):
            return self.dataset[self._next_index()], self.cfg.perturb
        k = self.dataset.pick_part(self.rng)
        part = self.dataset.parts[k]
        if not self._orders[k]:
            self._orders[k] = [int(i) for i in self.rng.permutation(len(part.clouds))]
        return part.clouds[self._orders[k].pop(0)], part.perturb

    def next_batch(self) -> TrainSample:
        """Sample, augment and collate `cfg.batch_size` clouds."""
        cfg = self.cfg
        samples = []
        for _ in range(cfg.batch_size):
            cloud, perturb = self._next_cloud()
            samples.append(make_sample(cloud, cfg.num_points, cfg.masks_per_cloud, self.rng,
                                       augment=cfg.augment, perturb=perturb))
        batch = collate(samples)
        dev = self.device
        return TrainSample(batch.coords.to(dev), batch.features.to(dev), batch.gt.to(dev))

    # ------------------------------------------------------------------ optimisation
    def train_one_step(self) -> dict[str, Any]:
        """One optimizer step over `grad_accum` micro-batches (on every rank); returns its metrics.

        Under DDP the metrics are means over the ranks, so every rank returns the same.
        """
        cfg = self.cfg
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        runner = self._ddp if self._ddp is not None else self._rollout
        sums = np.zeros(3 + cfg.prompt_iters)
        totals: list[float] = []
        for k in range(cfg.grad_accum):
            batch = self.next_batch()
            sync = self._ddp is None or k == cfg.grad_accum - 1  # all-reduce once, on the last micro-batch
            with contextlib.nullcontext() if sync else self._ddp.no_sync():
                total, loss_mask, loss_iou, iou = runner(batch.coords, batch.features, batch.gt)
                (total / cfg.grad_accum).backward()
            totals.append(total.item())
            sums += [totals[-1], float(loss_mask.mean()), float(loss_iou.mean()), *iou.tolist()]
        means = all_reduce_mean((sums / cfg.grad_accum).tolist(), self.device)
        if not math.isfinite(means[0]):
            raise FloatingPointError(f"non-finite loss at step {self.step} (this rank: {totals})")
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), cfg.clip_value)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return {
            "step": self.step,
            "lr": lr,
            "loss": means[0],
            "loss_mask": means[1],
            "loss_iou": means[2],
            "iou": [round(float(x), 6) for x in means[3:]],
        }

    def fit(self, max_steps: int | None = None, progress: bool = False,
            status_every_s: float = STATUS_EVERY_S) -> list[dict[str, Any]]:
        """Train until `max_steps` (default cfg.max_steps); log and checkpoint on rank 0; return metrics.

        progress: on rank 0, a tqdm bar on a terminal, otherwise a status line (step time, ETA) after
        the first step, every `status_every_s` seconds and at the end, on stderr.
        """
        end = self.cfg.max_steps if max_steps is None else max_steps
        self._claim_out_dir()
        monitor = (RunMonitor(self.out_dir, self.step, end, self.cfg.tensorboard, progress, status_every_s)
                   if self.dist.is_main else None)
        history: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        try:
            while self.step < end:
                metrics = self.train_one_step()
                metrics["time_s"] = round(time.perf_counter() - t0, 3)
                history.append(metrics)
                if monitor is not None:
                    monitor.update(metrics, write=self.step % self.cfg.log_every == 0 or self.step == end)
                if self.step % self.cfg.ckpt_every == 0 and self.step != end:
                    self.save_checkpoint()
            if history:
                self.save_checkpoint()
        finally:
            if monitor is not None:
                monitor.close()
        return history

    # ------------------------------------------------------------------ checkpoints
    def _claim_out_dir(self) -> None:
        """Before this run first writes: refuse another run's files in out_dir, or delete them with
        `overwrite` (rank 0 decides; every rank must call it)."""
        if self._claimed:
            return
        problem = None
        if self.dist.is_main:
            try:
                check_run_dir(self.out_dir, overwrite=self.overwrite)
                clear_run_files(self.out_dir)
            except FileExistsError as exc:
                problem = str(exc)
        problem = all_gather_objects(problem)[0]
        if problem:
            raise FileExistsError(problem)
        self._claimed = True

    def _data_state(self) -> dict[str, Any]:
        """This rank's data order and RNG states."""
        state: dict[str, Any] = {"order": list(self._order), "numpy_rng": _rng_state(self.rng),
                                 "torch_rng": torch.get_rng_state()}
        if self._orders:
            state["orders"] = [list(o) for o in self._orders]
        return state

    def _load_data_state(self, state: dict[str, Any]) -> None:
        self._order = [int(i) for i in state["order"]]
        if self._orders and len(state.get("orders", [])) == len(self._orders):
            self._orders = [[int(i) for i in o] for o in state["orders"]]
        _set_rng_state(self.rng, state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])

    def _full_state(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        state = {
            "step": self.step,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            **ranks[0],
            "config": self.cfg.to_dict(),
            "world_size": len(ranks),
        }
        if len(ranks) > 1:
            state["rank_states"] = ranks
        return state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: model, optimizer, scheduler, step, data order and RNG states.

        Under DDP it gathers every rank's data state, so every rank must call it.
        """
        return self._full_state(all_gather_objects(self._data_state()))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict` (a checkpoint of another world size re-seeds the data order)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        saved_world = int(state.get("world_size", 1))
        if saved_world == self.dist.world_size:
            self._load_data_state(state["rank_states"][self.dist.rank] if saved_world > 1 else state)
            return
        if self.dist.is_main:
            warnings.warn(f"checkpoint written by {saved_world} process(es), resumed on "
                          f"{self.dist.world_size}: the data order is re-seeded", stacklevel=2)
        self.rng.bit_generator.state = np.random.default_rng(
            [self.cfg.seed, self.dist.rank, self.step]).bit_generator.state
        self._order = []
        self._orders = [[] for _ in self._orders]

    def save_checkpoint(self) -> Path:
        """Write `checkpoint.pt` (full state) and `model.safetensors` (weights) into out_dir atomically.

        Under DDP every rank must call it; only rank 0 writes.
        """
        self._claim_out_dir()
        ranks = all_gather_objects(self._data_state())
        path = self.out_dir / CHECKPOINT_FILE
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            torch.save(self._full_state(ranks), tmp)
            tmp.replace(path)
            save_model(self.model, self.out_dir / MODEL_FILE, overwrite=True)
        barrier()
        return path

    def resume(self, path: str | Path | None = None) -> int:
        """Restore the state saved in `path` (default out_dir/checkpoint.pt); return the step reached.

        Resuming from out_dir's own checkpoint continues that run there (its metrics past the
        checkpoint's step are dropped); from elsewhere, out_dir is checked as for a new run.
        """
        own = self.out_dir / CHECKPOINT_FILE
        path = Path(path) if path is not None else own
        if not path.is_file():
            raise FileNotFoundError(f"no training checkpoint at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)
        if path.resolve() == own.resolve():
            self._claimed = True
        return self.step
