"""`pointsam everything`: label a whole cloud without clicks (segment-everything proposals)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def add_everything_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `everything` subcommand."""
    ev = sub.add_parser(
        "everything",
        help="propose every object/part of a cloud automatically",
        description="Prompt the model at FPS points, keep confident and stable masks, remove "
        "duplicates by point-set NMS and write per-point labels (-1 = unlabelled).",
    )
    ev.add_argument("input", type=Path, help="point cloud or mesh")
    ev.add_argument("--out", type=Path, required=True,
                    help="output: .ply (input points + integer 'label' field), .npy (labels) or "
                    ".json (mask records with point indices)")
    ev.add_argument("--checkpoint", type=Path, help="model weights (default: the bundled small model)")
    ev.add_argument("--config", default="large", help="large, giant, base or auto (default large)")
    ev.add_argument("--num-prompts", type=int, default=256,
                    help="FPS prompt points (default 256; the paper uses 1024 for scenes)")
    ev.add_argument("--points-per-batch", type=int, default=64, help="prompts decoded together")
    ev.add_argument("--pred-iou-thresh", type=float, default=0.7)
    ev.add_argument("--stability-thresh", type=float, default=0.85)
    ev.add_argument("--nms-thresh", type=float, default=0.7, help="point-set IoU for duplicates")
    ev.add_argument("--min-mask-points", type=int, default=20)
    ev.add_argument("--max-masks", type=int, help="keep at most this many masks (top score)")
    ev.add_argument("--max-points", type=int, default=100_000,
                    help="down-sample bigger clouds to this many points, then propagate labels "
                    "to every point by nearest neighbour (default 100000)")
    ev.add_argument("--num-patches", type=int, help="override the number of patches L")
    ev.add_argument("--patch-size", type=int, help="override the patch size K")
    ev.add_argument("--mesh-samples", type=int, default=100_000)
    ev.add_argument("--device", help="cpu, cuda ... (default: cuda if available)")
    ev.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def _records_json(records: list[dict]) -> list[dict]:
    return [{k: (v.tolist() if isinstance(v, np.ndarray) else
                 v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in records]


def run_everything(args: argparse.Namespace) -> None:
    """Run the `everything` subcommand."""
    from pointsam.automatic import AutomaticMaskGenerator, records_to_labels
    from pointsam.checkpoint import load_model
    from pointsam.errors import PointSAMError
    from pointsam.io import read_point_cloud, write_labels
    from pointsam.io.writers import atomic_output

    suffix = args.out.suffix.lower()
    if suffix not in (".ply", ".npy", ".json"):
        raise PointSAMError(f"--out must end in .ply, .npy or .json, got {args.out.name!r}")
    if args.out.exists() and not args.overwrite:
        raise PointSAMError(f"{args.out} exists; pass --overwrite to replace it")
    cloud = read_point_cloud(args.input, mesh_samples=args.mesh_samples)
    model = load_model(args.checkpoint, config=args.config, device=args.device)
    generator = AutomaticMaskGenerator(
        model, num_prompts=args.num_prompts, points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_thresh,
        nms_iou_thresh=args.nms_thresh, min_mask_points=args.min_mask_points,
        max_masks=args.max_masks, max_points=args.max_points, num_patches=args.num_patches,
        patch_size=args.patch_size,
    )
    start = time.perf_counter()
    records = generator.generate(cloud.xyz, cloud.rgb,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    labels = records_to_labels(records, cloud.num_points)
    if suffix == ".json":
        with atomic_output(args.out, overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps({"input": str(args.input), "num_points": cloud.num_points,
                                       "masks": _records_json(records)}))
    else:
        write_labels(args.out, cloud.xyz, labels, cloud.rgb, source=cloud, field="label",
                     overwrite=args.overwrite)
    covered = int((labels >= 0).sum())
    print(f"{len(records)} masks covering {covered:,} of {cloud.num_points:,} points "
          f"({100 * covered / cloud.num_points:.1f}%) in {time.perf_counter() - start:.1f} s "
          f"-> {args.out}")
    if len(records) < 3:
        print(f"pointsam: note: few candidates reached --pred-iou-thresh {args.pred_iou_thresh} and "
              f"--stability-thresh {args.stability_thresh}; lower them (e.g. 0.3 and 0.5), and for the "
              "bundled small model, whose scores run low, prefer the official checkpoint",
              file=sys.stderr)
