"""`pointsam convert`: turn a labelled 3D dataset into the pointsam dataset format."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pointsam.cli_common import add_common_arguments
from pointsam.errors import PointSAMError

CONVERT_FORMATS = ("partnet", "partnet-mobility", "shapenet-part", "ply", "scannet-pointcept", "scannet",
                   "s3dis", "semantickitti", "agile3d", "scanobjectnn", "partnet-mobility-eval")


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `convert` subcommand."""
    conv = sub.add_parser(
        "convert",
        description="Convert INPUT (a file, an item folder or a dataset root, searched recursively) "
        "into a pointsam dataset folder (dataset.json + one .npz per cloud).",
    )
    conv.add_argument("format", choices=CONVERT_FORMATS, help="source format")
    conv.add_argument("input", type=Path, help="source file or folder")
    conv.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    conv.add_argument("--name", help="dataset name (default: the --out folder name)")
    conv.add_argument("--val-categories", nargs="+", metavar="CAT", default=[],
                      help="write train/val splits: these categories go to val")
    conv.add_argument("--field", help="ply: the per-point label field (default: instance, label, ...)")
    conv.add_argument("--points", type=int, default=10000,
                      help="partnet: use point_sample/pts-POINTS.txt; partnet-mobility: points sampled "
                      "per object (default 10000)")
    conv.add_argument("--setup", choices=("auto", "multi", "single"), default="auto",
                      help="agile3d: multi-object scans/ or single-object crops (default: auto)")
    conv.add_argument("--y-up", action="store_true",
                      help="agile3d: rotate z-up data to y-up, as the official KITTI-360 evaluation does")
    conv.add_argument("--categories", nargs="+", metavar="CAT",
                      help="partnet-mobility-eval: categories to render (default: the paper's held-out ones)")
    conv.add_argument("--strict", action="store_true",
                      help="partnet-mobility: skip objects flagged urdf_nonstandard_mesh_names in INDEX.csv")
    conv.add_argument("--blocks", action="store_true",
                      help="also cut each scene into BLOCK x BLOCK m blocks in x, y (ScanNet-Block)")
    conv.add_argument("--block-size", type=float, default=3.0, help="block side in metres (default 3)")
    conv.add_argument("--stride", type=float, default=1.5, help="block stride in metres (default 1.5)")
    conv.add_argument("--min-block-points", type=int, default=1024,
                      help="skip blocks with fewer points (default 1024)")
    conv.add_argument("--min-mask-points", type=int, default=10,
                      help="drop block / partnet-mobility masks with fewer points (default 10)")
    add_common_arguments(conv, model=False, device=False,
                         overwrite_help="replace an existing dataset at --out")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_convert(args: argparse.Namespace) -> None:
    """Run the `convert` subcommand."""
    from pointsam.data import DatasetWriter
    from pointsam.data.converters import FORMATS, scene_blocks

    options = {"ply": {"field": args.field}, "partnet": {"points": args.points},
               "partnet-mobility": {"points": args.points, "strict": args.strict,
                                    "min_mask_points": args.min_mask_points},
               "agile3d": {"setup": args.setup, "y_up": args.y_up},
               "partnet-mobility-eval": {"points": args.points,
                                         **({"categories": args.categories} if args.categories else {})}}
    conversion = FORMATS[args.format](args.input, **options.get(args.format, {}))
    report = conversion.report
    val = set(args.val_categories)
    t0 = time.perf_counter()
    with DatasetWriter(args.out, name=args.name or args.out.name, source=report.source,
                       licence=report.licence, overwrite=args.overwrite) as writer:
        for cloud in conversion:
            pieces = [cloud]
            if args.blocks:
                pieces += scene_blocks(cloud, args.block_size, args.stride, args.min_block_points,
                                       args.min_mask_points, report)
            for piece in pieces:
                writer.add(piece, split=("val" if piece.category in val else "train") if val else None)
            if len(writer) and len(writer) % 50 == 0:
                _say(f"{len(writer)} clouds written ...")
        if len(writer) == 0:
            raise PointSAMError(f"nothing converted from {args.input}:\n{report.summary()}")
    print(report.summary())
    print(f"wrote {len(writer)} clouds with {writer.num_masks:,} masks to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s")
