"""Reproduce pointsam's bundled default model: data, training, calibration, held-out evaluation, shipping.

    python tools/train_default_model.py --work runs/default --prepare-only  # build the data, print sizes
    python tools/train_default_model.py --work runs/default                 # data + training (hours)
    python tools/train_default_model.py --work runs/default --resume        # continue a stopped run exactly
    python tools/train_default_model.py --work runs/default --calibrate --evaluate --ship
    python tools/train_default_model.py --work /tmp/smoke --smoke           # the whole pipeline, tiny

The recipe (held-out categories and scene, data mixture, point counts, model size, schedule) is in
tools/default_model_recipe.py; the data is built by tools/default_model_data.py, the held-out report by
tools/default_model_eval.py. The trained weights land in WORK/run/model.safetensors (copied to
WORK/model.safetensors at the end); `--calibrate` picks the `pointsam everything` thresholds on the
training scenes, `--evaluate` writes WORK/eval/report.{json,md}, and `--ship` writes the weights (fp16,
with the thresholds in their metadata) and MODEL_CARD.md into src/pointsam/assets/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from default_model_data import prepare, sizes, sizes_table
from default_model_recipe import (
    FINETUNE,
    FINETUNE_INIT,
    FINETUNE_NUM_POINTS,
    MIXTURE,
    NUM_POINTS,
    PROPOSED_TRAIN,
    REPO,
    SMOKE_MESH_DENSITIES,
    SMOKE_NUM_POINTS,
    SMOKE_TRAIN,
    TRAIN,
    mixture,
)
from torch import nn

from pointsam.data.dataset import read_index
from pointsam.errors import InputError
from pointsam.predictor import choose_grouping
from pointsam.train.config import TrainConfig
from pointsam.train.loop import CHECKPOINT_FILE, MODEL_FILE, Trainer
from pointsam.train.sampling import TrainSample, collate, make_sample


class GroupedModel(nn.Module):
    """The model seen by the click rollout: `encode` uses the grouping set for the current batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.grouping: tuple[int | None, int | None] = (None, None)

    def encode(self, coords, features):
        return self.inner.encode(coords, features, *self.grouping)

    def decode(self, *args, **kwargs):
        return self.inner.decode(*args, **kwargs)


def point_count_distribution(point_counts: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted point counts and their draw probabilities (the recipe's weights, normalised)."""
    counts = np.array(sorted(point_counts))
    weights = np.array([point_counts[n] for n in counts], dtype=float)
    return counts, weights / weights.sum()


class VariedTrainer(Trainer):
    """`Trainer` whose batches have a point count drawn from `point_counts` (probabilities as values).

    The count is capped at the smallest cloud of the batch (no point is drawn twice), and the cloud is
    grouped as `PointCloudPredictor` groups a cloud of that size, so training sees what users give.
    The draws use the trainer's RNG, so a resumed run continues exactly.
    """

    def __init__(self, model, dataset, cfg: TrainConfig, point_counts: dict[int, float],
                 device: str = "cpu") -> None:
        super().__init__(model, dataset, cfg, device)
        if self.dist.distributed:
            raise InputError("varied point counts are implemented for one process only")
        self.point_counts, self.point_probs = point_count_distribution(point_counts)
        self.grouped = GroupedModel(self.model)
        self._rollout.model = self.grouped

    def next_batch(self) -> TrainSample:
        cfg = self.cfg
        clouds = [self._next_cloud() for _ in range(cfg.batch_size)]
        n = int(self.rng.choice(self.point_counts, p=self.point_probs))
        n = min([n] + [c.num_points for c, _ in clouds])
        mc = self.model.config
        self.grouped.grouping = choose_grouping(n, n, mc.num_patches, mc.patch_size)
        samples = [make_sample(c, n, cfg.masks_per_cloud, self.rng, augment=cfg.augment, perturb=p)
                   for c, p in clouds]
        batch = collate(samples)
        dev = self.device
        return TrainSample(batch.coords.to(dev), batch.features.to(dev), batch.gt.to(dev))


def mixture_entries(folders: dict[str, Path], smoke: bool = False) -> list[dict]:
    """The config's `datasets` list: every mixture dataset that has clouds in its split."""
    entries = []
    for name, split, weight, perturb in mixture(SMOKE_MESH_DENSITIES) if smoke else MIXTURE:
        meta = read_index(folders[name])
        files = meta["clouds"] if split is None else (meta.get("splits") or {}).get(split, [])
        if not files:
            print(f"note: {name} has no {split or ''} clouds; left out of the mixture", flush=True)
            continue
        entry = {"path": str(folders[name]), "weight": weight, "perturb": perturb}
        if split is not None:
            entry["split"] = split
        entries.append(entry)
    return entries


def train(work: Path, folders: dict[str, Path], smoke: bool, resume: bool, max_steps: int | None,
          init: Path | None, finetune: bool = False) -> Path:
    """Train (or resume) into WORK/run (WORK/finetune); returns WORK/model.safetensors."""
    recipe = dict(SMOKE_TRAIN if smoke else FINETUNE if finetune else TRAIN)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, value in PROPOSED_TRAIN.items():
        if name in known:
            recipe[name] = value
        else:
            print(f"note: TrainConfig has no {name!r} yet (tools/ISSUE10_ANALYSIS.md); trained without it",
                  flush=True)
    run = work / ("finetune" if finetune else "run")
    cfg = TrainConfig(**{**recipe, "out_dir": str(run), "datasets": mixture_entries(folders, smoke)})
    model = None
    if init is not None:
        from pointsam.checkpoint import load_model

        model = load_model(init, device="cpu").train()
    counts = SMOKE_NUM_POINTS if smoke else FINETUNE_NUM_POINTS if finetune else NUM_POINTS
    trainer = VariedTrainer(model, None, cfg, counts)
    if resume and (run / CHECKPOINT_FILE).exists():
        print(f"resumed at step {trainer.resume(run / CHECKPOINT_FILE)}", flush=True)
    elif run.exists() and any(run.iterdir()):
        sys.exit(f"{run} already holds a run; pass --resume to continue it")
    (work / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    end = max_steps or cfg.max_steps
    t0 = time.time()
    while trainer.step < end:
        hist = trainer.fit(min(end, trainer.step + cfg.ckpt_every))
        last = hist[-1]
        print(f"step {trainer.step} loss {last['loss']:.3f} iou {np.round(last['iou'], 3).tolist()} "
              f"lr {last['lr']:.2e} elapsed {time.time() - t0:.0f}s", flush=True)
    shutil.copy(run / MODEL_FILE, work / MODEL_FILE)
    return work / MODEL_FILE


def training_hours(work: Path, run: str = "run") -> tuple[list[dict], float]:
    """The run's metrics and its training time in hours (summed over resumed segments)."""
    path = work / run / "metrics.jsonl"
    metrics = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    # time_s restarts at 0 in every fit() call: add up the last value of each segment
    total, prev = 0.0, 0.0
    for m in metrics:
        if m["time_s"] < prev:
            total += prev
        prev = m["time_s"]
    return metrics, (total + prev) / 3600


def ship(work: Path, smoke: bool = False) -> None:
    """Write the fp16 weights (with the calibrated thresholds in their metadata) and MODEL_CARD.md.

    Into the package's assets, or (smoke) into WORK/assets.
    """
    from default_model_card import ball_click, model_card

    from pointsam.amg_defaults import write_amg_metadata
    from pointsam.checkpoint import default_model_path, load_model, save_model

    report = json.loads((work / "eval" / "report.json").read_text())
    model = load_model(work / MODEL_FILE, device="cpu")
    dest = work / "assets" / default_model_path().name if smoke else default_model_path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, dest, overwrite=True, dtype=torch.float16)
    write_amg_metadata(dest, report["everything"]["thresholds"])
    shipped = load_model(dest, device="cpu")
    finetuned = (work / "finetune" / MODEL_FILE).is_file()
    metrics, hours = training_hours(work, "finetune" if finetuned else "run")
    baseline_file = work / "eval_baseline" / "report.json"
    baseline = json.loads(baseline_file.read_text()) if baseline_file.is_file() else None
    # the clicks with the views the checkpoint recommends for segment-everything (--evaluate --views K)
    views_file = work / f"eval_views{report['everything']['thresholds'].get('views', 1)}" / "report.json"
    views_report = json.loads(views_file.read_text()) if views_file.is_file() else None
    card = model_card(shipped, report, metrics, dest.stat().st_size, ball_click(shipped), hours,
                      finetuned=finetuned, baseline=baseline, views_report=views_report)
    (dest.parent / "MODEL_CARD.md").write_text(card)
    print(f"shipped {dest} ({dest.stat().st_size / 1e6:.1f} MB) and {dest.parent / 'MODEL_CARD.md'}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "default")
    ap.add_argument("--smoke", action="store_true", help="the whole pipeline on a tiny slice, 5 steps")
    ap.add_argument("--prepare-only", action="store_true", help="build the data, print its sizes, stop")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-steps", type=int, default=None, help="stop at this step (default: the recipe's)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (note: the first default model saw scene0046_02)")
    ap.add_argument("--finetune", action="store_true",
                    help="fine-tune the first bundled model (recipe FINETUNE) into WORK/finetune")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--calibrate", action="store_true", help="pick everything thresholds (WORK/amg.json)")
    ap.add_argument("--evaluate", action="store_true", help="held-out report of WORK/model.safetensors")
    ap.add_argument("--baseline", type=Path, default=None, metavar="WEIGHTS",
                    help="held-out report of these weights (their own thresholds) into WORK/eval_baseline")
    ap.add_argument("--eval-densities", type=int, nargs="+", default=None, metavar="N",
                    help="with --baseline: the URDF point counts to evaluate (default: the recipe's)")
    ap.add_argument("--sections", nargs="+", default=None, metavar="NAME",
                    help="with --evaluate/--baseline: compute only these report sections (partnet, "
                    "mobility_N, scene, everything, click_ms); cached, so parallel runs share the work")
    ap.add_argument("--views", type=int, default=1, metavar="K",
                    help="with --evaluate: answer the clicks with K-view ensembling (pointsam.views), "
                    "into WORK/eval_viewsK")
    ap.add_argument("--everything-only", action="store_true",
                    help="with --evaluate: recompute only the everything recall of WORK/eval/report.json")
    ap.add_argument("--ship", action="store_true", help="copy the weights + model card into the package")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folders = prepare(args.work, args.smoke)
    if args.prepare_only:
        print(sizes_table(sizes(folders)))
        return
    if not (args.calibrate or args.evaluate or args.ship or args.baseline):
        init = args.init or (FINETUNE_INIT if args.finetune and not args.resume else None)
        train(args.work, folders, args.smoke, args.resume, args.max_steps, init, args.finetune)
        return
    from default_model_eval import calibrate, evaluate, reevaluate_everything, report_markdown

    weights = args.work / MODEL_FILE
    sections = tuple(args.sections) if args.sections else None
    if args.baseline:
        from pointsam.amg_defaults import amg_defaults

        own = {k: v for k, v in amg_defaults(args.baseline).items() if k != "nms_iou_thresh"}
        report = evaluate(args.work, args.baseline, args.smoke, "eval_baseline", own,
                          densities=tuple(args.eval_densities or ()) or None, only=sections)
        print(report_markdown(report) if "partial" not in report else "(partial report)")
    if args.calibrate:
        print("thresholds", calibrate(args.work, weights, args.smoke)["thresholds"])
    if args.evaluate and args.everything_only:
        print(report_markdown(reevaluate_everything(args.work, weights, args.smoke)))
    elif args.evaluate:
        out_name = "eval" if args.views == 1 else f"eval_views{args.views}"
        report = evaluate(args.work, weights, args.smoke, out_name, only=sections, views=args.views)
        print(report_markdown(report) if "partial" not in report else "(partial report)")
    if args.ship:
        ship(args.work, args.smoke)


if __name__ == "__main__":
    main()
