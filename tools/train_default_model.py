"""Reproduce pointsam's bundled default model: data preparation, training, held-out evaluation.

    python tools/train_default_model.py --work runs/default            # everything (hours on 2 CPU cores)
    python tools/train_default_model.py --work runs/default --resume   # continue an interrupted run

Data: the PartNet point samples in ../shared/data (Faucet and KitchenPot held out for validation), procedural
part-labelled shapes (pointsam.data.synthetic) and ScanNet 3 m blocks, mixed by the weights below. The
trained weights land in WORK/run/model.safetensors; `--ship` copies them (fp16) into the package.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pointsam.data.dataset import LabelledCloud, PointCloudDataset
from pointsam.data.synthetic import write_synthetic_dataset
from pointsam.train.config import TrainConfig
from pointsam.train.loop import CHECKPOINT_FILE, Trainer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
VAL_CATEGORIES = ["Faucet", "KitchenPot"]

# The default model: a 6-block, 256-wide EVA-02 encoder over 128 patches of 32 points (about 6M parameters).
MODEL_OVERRIDES = dict(
    vit_width=256, vit_depth=6, vit_heads=4, embed_dim=128, decoder_heads=4, decoder_mlp_dim=512,
    vit_img_size=1, vit_patch_size=1, vit_num_classes=1, patch_embed_dim=256, pointnet_hidden=[64, 256],
    num_patches=128, patch_size=32,
)
TRAIN = dict(
    model="base", model_overrides=MODEL_OVERRIDES, num_points=4096, masks_per_cloud=4, prompt_iters=5,
    batch_size=4, lr=2e-4, weight_decay=0.05, warmup_steps=200, milestones=[2500], gamma=0.2,
    max_steps=3200, log_every=10, ckpt_every=200, seed=0,
)
# mixture: (dataset folder name, split, share of the clouds drawn)
MIXTURE = [("pm", "train", 0.5), ("synthetic", "train", 0.35), ("scannet", None, 0.15)]
NUM_SYNTHETIC = 3000


class Mixture(Sequence):
    """Several datasets seen as one list, each repeated so that it is drawn with its given share."""

    def __init__(self, parts: list[tuple[Sequence[LabelledCloud], float]], size: int) -> None:
        self.index: list[tuple[int, int]] = []
        self.parts = [p for p, _ in parts]
        total = sum(w for _, w in parts)
        for k, (ds, w) in enumerate(parts):
            count = max(1, round(size * w / total))
            self.index += [(k, i % len(ds)) for i in range(count)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> LabelledCloud:  # type: ignore[override]
        k, j = self.index[i]
        return self.parts[k][j]


def prepare(work: Path) -> None:
    """Convert the shared data and generate the synthetic shapes (skipped when already there)."""
    data = work / "data"
    if not (data / "pm" / "dataset.json").exists():
        subprocess.run([sys.executable, "-m", "pointsam", "convert", "partnet",
                        str(SHARED / "partnet_mobility"), "--out", str(data / "pm"),
                        "--val-categories", *VAL_CATEGORIES], check=True)
    if not (data / "scannet" / "dataset.json").exists():
        subprocess.run([sys.executable, "-m", "pointsam", "convert", "scannet-pointcept",
                        str(SHARED / "scannet"), "--out", str(data / "scannet"), "--blocks"], check=True)
    if not (data / "synthetic" / "dataset.json").exists():
        write_synthetic_dataset(data / "synthetic", NUM_SYNTHETIC, num_points=8192, seed=0)


def build_mixture(work: Path) -> Mixture:
    parts = [(PointCloudDataset(work / "data" / name, split=split), w) for name, split, w in MIXTURE]
    return Mixture(parts, size=4000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "default")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-steps", type=int, default=TRAIN["max_steps"])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prepare(args.work)
    cfg = TrainConfig(**{**TRAIN, "out_dir": str(args.work / "run")})
    trainer = Trainer(None, build_mixture(args.work), cfg)
    run = args.work / "run"
    if args.resume and (run / CHECKPOINT_FILE).exists():
        print(f"resumed at step {trainer.resume(run / CHECKPOINT_FILE)}", flush=True)
    elif run.exists() and any(run.iterdir()):
        sys.exit(f"{run} already holds a run; pass --resume to continue it")
    (args.work / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    t0 = time.time()
    while trainer.step < args.max_steps:
        end = min(args.max_steps, trainer.step + cfg.ckpt_every)
        hist = trainer.fit(end)
        last = hist[-1]
        print(f"step {trainer.step} loss {last['loss']:.3f} iou {np.round(last['iou'], 3).tolist()} "
              f"lr {last['lr']:.2e} elapsed {time.time() - t0:.0f}s", flush=True)
    shutil.copy(run / "model.safetensors", args.work / "model.safetensors")


if __name__ == "__main__":
    main()
