"""`pointsam train CONFIG`: train or fine-tune Point-SAM on a pointsam dataset."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `train` subcommand."""
    tr = sub.add_parser(
        "train",
        help="train or fine-tune a model on a pointsam dataset",
        description="Train with simulated interactive clicks (paper Sec. 3 and Appendix A). CONFIG is "
        "a .json or .yaml file of pointsam.train.TrainConfig fields; command-line options override it.",
    )
    tr.add_argument("config", type=Path, help="training config (.json / .yaml)")
    tr.add_argument("--data", type=Path, required=True, help="pointsam dataset folder")
    tr.add_argument("--split", help="use only this split of dataset.json (e.g. train)")
    tr.add_argument("--out-dir", help="run folder (checkpoint.pt, model.safetensors, metrics.jsonl)")
    tr.add_argument("--max-steps", type=int, help="train until this step")
    tr.add_argument("--init", type=Path, help="start from these weights (e.g. the official "
                    "model.safetensors) to fine-tune")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out-dir exactly")
    tr.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")


def run_train(args: argparse.Namespace) -> None:
    """Run the `train` subcommand."""
    from pointsam.checkpoint import default_device, load_model
    from pointsam.data.dataset import PointCloudDataset
    from pointsam.errors import InputError
    from pointsam.train.config import TrainConfig
    from pointsam.train.loop import CHECKPOINT_FILE, Trainer

    if not args.config.is_file():
        raise InputError(f"training config not found: {args.config}")
    cfg = TrainConfig.from_file(args.config)
    changes = {k: v for k, v in (("out_dir", args.out_dir), ("max_steps", args.max_steps)) if v is not None}
    cfg = dataclasses.replace(cfg, **changes).validate()
    ckpt = Path(cfg.out_dir) / CHECKPOINT_FILE
    if ckpt.exists() and not args.resume:
        raise FileExistsError(f"{ckpt} exists: pass --resume to continue that run, or choose another "
                              "--out-dir (nothing is overwritten)")
    if args.resume and args.init:
        raise InputError("--resume restores the run's own weights; drop --init")
    dataset = PointCloudDataset(args.data, split=args.split)
    device = args.device or str(default_device())
    model = load_model(args.init, config=cfg.model_config(), device=device) if args.init else None
    trainer = Trainer(model, dataset, cfg, device=device)
    if args.resume:
        print(f"resumed {cfg.out_dir} at step {trainer.resume()}", file=sys.stderr)
    start = time.perf_counter()
    history = trainer.fit()
    last = history[-1] if history else {}
    print(f"trained to step {trainer.step} in {time.perf_counter() - start:.1f} s; last loss "
          f"{last.get('loss', float('nan')):.4f}; wrote {cfg.out_dir}/model.safetensors")
