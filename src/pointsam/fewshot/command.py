"""`pointsam fewshot`: k-shot part segmentation with a head on frozen Point-SAM features (Sec. 5.3)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pointsam.cli_common import add_common_arguments, load_model_from_args


def _level(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        level = int(text)
    except ValueError:
        level = 0
    if level < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a level >= 1, got {text!r}")
    return level


def add_fewshot_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `fewshot` subcommand."""
    fs = sub.add_parser(
        "fewshot",
        description="For each category, draw --shots labelled shapes (seeded), train a part "
        "segmentation head (feature propagation + MLP, cross-entropy) on frozen features of ViT "
        "blocks 4, 8 and the last, and report the mIoU on the category's other shapes: per category, "
        "class mIoU (mean over categories, as the paper reports) and instance mIoU.",
    )
    fs.add_argument("--data", type=Path, required=True, help="pointsam dataset folder (see `pointsam "
                    "convert`), with categories and named masks")
    fs.add_argument("--split", help="use only this split of dataset.json")
    fs.add_argument("--shots", type=int, required=True, help="labelled training shapes per category")
    fs.add_argument("--categories", nargs="+", metavar="CAT", help="only these categories")
    fs.add_argument("--part-level", type=_level, default=None, metavar="auto|N",
                    help="hierarchy level of the part labels (default auto: the first level that "
                    "splits each shape)")
    fs.add_argument("--layers", type=int, nargs="+", metavar="B",
                    help="ViT blocks to read, 1-based, -1 = last (default 4 8 -1, clamped for "
                    "shallow models)")
    fs.add_argument("--epochs", type=int, default=300, help="training steps of each head (default 300)")
    fs.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    fs.add_argument("--max-test", type=int, help="test at most this many shapes per category")
    fs.add_argument("--seed", type=int, default=0, help="seed of the support draw and training")
    fs.add_argument("--out", type=Path, help="write the JSON report here")
    add_common_arguments(fs, overwrite_help="replace an existing --out")


def run_fewshot(args: argparse.Namespace) -> None:
    """Run the `fewshot` subcommand."""
    from pointsam.data.dataset import PointCloudDataset
    from pointsam.errors import InputError
    from pointsam.fewshot.data import split_categories
    from pointsam.fewshot.evaluate import evaluate_episodes, format_table
    from pointsam.fewshot.features import DEFAULT_LAYERS, FeatureExtractor
    from pointsam.fewshot.head import HeadConfig
    from pointsam.utils.files import atomic_output

    if args.out is not None:
        if args.out.suffix.lower() != ".json":
            raise InputError(f"--out must end in .json, got {args.out.name!r}")
        if args.out.exists() and not args.overwrite:
            raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    if args.shots < 1:
        raise InputError(f"--shots must be at least 1, got {args.shots}")
    head_cfg = HeadConfig(epochs=args.epochs, lr=args.lr).validate()
    dataset = PointCloudDataset(args.data, split=args.split)
    episodes = split_categories(dataset, args.shots, args.seed, args.categories, args.part_level,
                                args.max_test)
    model = load_model_from_args(args)
    extractor = FeatureExtractor(model, args.layers or DEFAULT_LAYERS)
    start = time.perf_counter()
    report = evaluate_episodes(extractor, episodes, head_cfg, args.seed,
                               progress=lambda m: print(m, file=sys.stderr, flush=True))
    report = {"data": str(args.data), "split": args.split, "shots": args.shots,
              "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
              "config": model.config.to_dict(), "part_level": args.part_level or "auto",
              "seconds": round(time.perf_counter() - start, 1), **report}
    print(f"{args.shots}-shot part segmentation, ViT blocks {extractor.layers}, "
          f"{head_cfg.epochs} epochs, seed {args.seed}")
    print(format_table(report))
    if args.out is not None:
        with atomic_output(args.out, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
