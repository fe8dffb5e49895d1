"""`pointsam train CONFIG`: train or fine-tune Point-SAM on one pointsam dataset or a mixture.

Under `torchrun --nproc_per_node G -m pointsam train ...` it trains data-parallel on G processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from pointsam.cli_common import add_common_arguments


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `train` subcommand."""
    tr = sub.add_parser(
        "train",
        description="Train with simulated interactive clicks (paper Sec. 3 and Appendix A). CONFIG is "
        "a .json or .yaml file of pointsam.train.TrainConfig fields; command-line options override it. "
        "Run under `torchrun --nproc_per_node G -m pointsam train ...` for data-parallel training.",
    )
    tr.add_argument("config", type=Path, help="training config (.json / .yaml)")
    tr.add_argument("--data", type=Path, help="pointsam dataset folder (replaces the config's `datasets` "
                    "mixture; one of the two is required)")
    tr.add_argument("--split", help="use only this split of dataset.json (e.g. train); for a mixture, "
                    "the default of entries that name none")
    tr.add_argument("--out-dir", help="run folder (checkpoint.pt, model.safetensors, metrics.jsonl)")
    tr.add_argument("--max-steps", type=int, help="train until this step")
    tr.add_argument("--init", type=Path, help="start from these weights (e.g. the official "
                    "model.safetensors) to fine-tune")
    tr.add_argument("--init-uni3d", type=Path, metavar="PATH", help="initialise the ViT from a Uni3D "
                    "checkpoint (model.pt of uni3d-b/l/g) before training")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out-dir exactly")
    tr.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                    help="autocast precision (default from the config: auto = bf16 on CUDA, fp32 on CPU)")
    tr.add_argument("--no-progress", action="store_true", help="no progress output (rank 0 shows a bar "
                    "on a terminal, status lines with ETA in logs)")
    add_common_arguments(tr, model=False, overwrite_help="start a new run in a folder holding another run's "
                         "files (deletes only checkpoint.pt, model.safetensors, metrics.jsonl, tensorboard/)",
                         device_help="cpu, cuda ... (default: cuda if "
                         "available; under torchrun each rank uses cuda:LOCAL_RANK)")


def run_train(args: argparse.Namespace) -> None:
    """Run the `train` subcommand (joining the torchrun process group when launched by torchrun)."""
    from pointsam.train.distributed import init_distributed, shutdown_distributed

    info, device = init_distributed(args.device)
    try:
        _train(args, info.is_main, device)
    finally:
        shutdown_distributed()


def _train(args: argparse.Namespace, main: bool, device) -> None:
    from pointsam.checkpoint import load_model
    from pointsam.data.dataset import PointCloudDataset
    from pointsam.errors import InputError
    from pointsam.train.config import TrainConfig
    from pointsam.train.loop import Trainer
    from pointsam.train.mixture import load_mixture
    from pointsam.train.run_dir import check_run_dir

    if not args.config.is_file():
        raise InputError(f"training config not found: {args.config}")
    cfg = TrainConfig.from_file(args.config)
    overrides = (("out_dir", args.out_dir), ("max_steps", args.max_steps), ("precision", args.precision))
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides if v is not None}).validate()
    if args.resume and args.overwrite:
        raise InputError("--resume continues the run in --out-dir; --overwrite starts a new one: pass one")
    check_run_dir(cfg.out_dir, resume=args.resume, overwrite=args.overwrite)
    if args.resume and (args.init or args.init_uni3d):
        raise InputError("--resume restores the run's own weights; drop --init / --init-uni3d")
    if args.init and args.init_uni3d:
        raise InputError("--init loads a whole model; --init-uni3d only the ViT: pass one of them")
    if args.data is not None:
        dataset = PointCloudDataset(args.data, split=args.split)
        if cfg.datasets and main:
            print(f"--data {args.data} replaces the config's {len(cfg.datasets)} datasets", file=sys.stderr)
    elif cfg.datasets:
        dataset = load_mixture(cfg.datasets, split=args.split, perturb=cfg.perturb)
    else:
        raise InputError("no training data: pass --data DIR or list `datasets` in the config")
    model = load_model(args.init, config=cfg.model_config(), device=device) if args.init else None
    if args.init_uni3d:
        import torch

        from pointsam.modeling.point_sam import build_model
        from pointsam.train.uni3d import load_uni3d

        torch.manual_seed(cfg.seed)  # the same random init of the other parts on every rank
        model = build_model(cfg.model_config())
        report = load_uni3d(model, args.init_uni3d)
        if main:
            print(report.summary(), file=sys.stderr)
    trainer = Trainer(model, dataset, cfg, device=device, overwrite=args.overwrite)
    if args.resume:
        step = trainer.resume()
        if main:
            print(f"resumed {cfg.out_dir} at step {step}", file=sys.stderr)
    if main:
        procs = f", {trainer.dist.world_size} processes" if trainer.dist.distributed else ""
        print(f"training on {device} ({trainer.precision}{procs}), {len(dataset)} clouds", file=sys.stderr)
    start = time.perf_counter()
    history = trainer.fit(progress=main and not args.no_progress)
    last = history[-1] if history else {}
    if main:
        print(f"trained to step {trainer.step} in {time.perf_counter() - start:.1f} s; last loss "
              f"{last.get('loss', float('nan')):.4f}; wrote {cfg.out_dir}/model.safetensors")
