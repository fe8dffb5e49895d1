"""`pointsam engine`: pseudo labels for meshes from 2D SAM lifted to 3D with Point-SAM (paper Sec. 4)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pointsam.cli_common import add_common_arguments, load_model_from_args


def add_engine_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `engine` subcommand."""
    en = sub.add_parser(
        "engine",
        description="Render each mesh (a file, or an object folder: all its meshes combined) from "
        "fixed cameras, fuse an RGB-D point cloud, take SAM's automatic proposals per view and lift "
        "each to a 3D mask by prompting Point-SAM, refining on the other views (paper Sec. 4). "
        "Writes a pointsam dataset to --out. Ranks launched by torchrun (RANK, WORLD_SIZE) each "
        "label their share; a stopped run resumes where it was, failed meshes are logged.",
    )
    en.add_argument("meshes", type=Path, help="mesh file or folder searched recursively")
    en.add_argument("--sam-checkpoint", type=Path, required=True,
                    help="local folder of a transformers SAM model (config.json + weights)")
    en.add_argument("--out", type=Path, required=True, help="dataset folder to create or resume")
    en.add_argument("--name", help="dataset name (default: the --out folder name)")
    en.add_argument("--views", type=int, default=6, help="cameras per mesh (default 6)")
    en.add_argument("--image-size", type=int, default=512, help="render size in pixels (default 512)")
    en.add_argument("--num-points", type=int, default=32768, help="fused cloud size (default 32768)")
    en.add_argument("--points-per-side", type=int, default=16,
                    help="SAM proposal grid per view (default 16 x 16)")
    en.add_argument("--pred-iou-thresh", type=float, default=0.88, help="SAM proposal filter (0.88)")
    en.add_argument("--stability-thresh", type=float, default=0.92, help="SAM proposal filter (0.92)")
    en.add_argument("--iou-threshold", type=float, default=0.85,
                    help="stop prompting when IoU(2D proposal, projected 3D mask) exceeds this (0.85)")
    en.add_argument("--refine-threshold", type=float, default=0.5,
                    help="discard a 3D mask when SAM's best mask at another view matches it less (0.5)")
    en.add_argument("--max-prompts", type=int, default=8, help="Point-SAM prompts per view (default 8)")
    en.add_argument("--dedup-iou", type=float, default=0.8, help="3D mask IoU of duplicates (0.8)")
    en.add_argument("--min-pixels", type=int, default=64, help="smallest 2D proposal (default 64)")
    en.add_argument("--min-on-object", type=float, default=0.8,
                    help="smallest fraction of a 2D proposal on the object, not the background (0.8)")
    en.add_argument("--no-refine", action="store_true", help="lift on the proposal's own view only")
    en.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    en.add_argument("--limit", type=int, help="label at most this many meshes (of all ranks)")
    en.add_argument("--rank", type=int, help="this rank (default: $RANK or 0)")
    en.add_argument("--world-size", type=int, help="number of ranks (default: $WORLD_SIZE or 1)")
    en.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common_arguments(en, device_help="cpu, cuda ... (default: cuda:$LOCAL_RANK if available)",
                         overwrite_help="discard an earlier engine run at --out")


def _settings(args: argparse.Namespace):
    from pointsam.engine.lifting import LiftSettings
    from pointsam.engine.runner import EngineSettings
    from pointsam.engine.sam2d import ProposalSettings
    from pointsam.errors import InputError

    checks = {"--views": args.views >= 1, "--image-size": args.image_size >= 16,
              "--num-points": args.num_points >= 16, "--max-prompts": args.max_prompts >= 1,
              "--points-per-side": args.points_per_side >= 1, "--min-pixels": args.min_pixels >= 1}
    for thr in ("iou_threshold", "refine_threshold", "dedup_iou", "min_on_object"):
        checks["--" + thr.replace("_", "-")] = 0.0 <= getattr(args, thr) <= 1.0
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise InputError(f"out of range: {', '.join(bad)} (see pointsam engine --help)")
    lift = LiftSettings(iou_threshold=args.iou_threshold, refine_threshold=args.refine_threshold,
                        max_prompts=args.max_prompts, min_pixels=args.min_pixels,
                        dedup_iou=args.dedup_iou, min_on_object=args.min_on_object,
                        refine=not args.no_refine)
    proposals = ProposalSettings(points_per_side=args.points_per_side, pred_iou_thresh=args.pred_iou_thresh,
                                 stability_score_thresh=args.stability_thresh, min_area=args.min_pixels)
    models = {"sam": str(args.sam_checkpoint.resolve()),
              "point_sam": str(args.checkpoint.resolve()) if args.checkpoint else "default"}
    return EngineSettings(views=args.views, image_size=args.image_size, num_points=args.num_points,
                          seed=args.seed, lift=lift, proposals=proposals, models=models)


def run_engine(args: argparse.Namespace) -> None:
    """Run the `engine` subcommand."""
    import torch

    from pointsam.engine.runner import EngineOutput, dist_rank, find_meshes, run_shard, shard
    from pointsam.engine.sam2d import SamSegmenter, load_sam
    from pointsam.errors import InputError
    from pointsam.predictor import PointCloudPredictor

    env_rank, env_world = dist_rank()
    rank = env_rank if args.rank is None else args.rank
    world = env_world if args.world_size is None else args.world_size
    settings = _settings(args)
    items = find_meshes(args.meshes)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError("--limit must be at least 1")
        items = items[: args.limit]
    mine = shard(items, rank, world)
    device = args.device
    if device is None and torch.cuda.is_available():
        from pointsam.utils.distributed import launch_env

        device = f"cuda:{launch_env().local_rank}"
    # Both models load before --out is touched: a failed start leaves nothing that blocks the rerun.
    segmenter = SamSegmenter(load_sam(args.sam_checkpoint, device), settings.proposals)
    predictor = PointCloudPredictor(load_model_from_args(args, device))
    output = EngineOutput(args.out)
    output.prepare(settings.to_dict(), overwrite=args.overwrite, may_reset=world == 1)
    say = lambda msg: print(f"[rank {rank}/{world}] {msg}", file=sys.stderr, flush=True)
    say(f"{len(mine)} of {len(items)} meshes in this shard")
    start = time.perf_counter()
    stats = run_shard(mine, output, predictor, segmenter, settings, not args.no_progress, say)
    meta = output.write_index(args.name or args.out.name)
    finished = len(output.records("done"))
    failed = len(output.records("failed"))
    print(f"rank {rank}: {stats['done']} meshes labelled ({stats['masks']} masks), "
          f"{stats['skipped_done']} already done, {stats['failed']} failed, "
          f"{time.perf_counter() - start:.1f} s. Run total: {finished}/{len(items)} meshes done, "
          f"{failed} failed; {meta['num_clouds']} clouds in {args.out / 'dataset.json'}")
    if failed:
        print(f"failures are listed in {args.out / '.engine' / 'failed'}; rerun to retry them",
              file=sys.stderr)
