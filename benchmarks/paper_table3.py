"""Reproduce one dataset block of the paper's Table 3 from the data set as it is published.

    python benchmarks/paper_table3.py DATASET DATA [--model large] [--out results.json]

DATASET is partnet-mobility (object folders with mobility.urdf; the held-out categories are
rendered from 12 views and fused to 10,000 points), scanobjectnn (an h5 file or folder with
per-point masks), s3dis or kitti360 (AGILE3D's preprocessed benchmark folder). Clicks follow the
paper (Sec. 5.1, Appendix C); IoU@1/3/5/7/10 are averaged over instances and printed beside the
paper's rows. See benchmarks/PAPER.md for the command of each row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATASETS = {"partnet-mobility": "PartNet-Mobility", "scanobjectnn": "ScanObjectNN", "s3dis": "S3DIS",
            "kitti360": "KITTI360"}


def conversion(args: argparse.Namespace):
    """The dataset's clouds, read straight from the published layout."""
    if args.dataset == "partnet-mobility":
        from pointsam.engine.evalclouds import HELD_OUT, convert_mobility_eval

        return convert_mobility_eval(args.data, categories=args.categories or HELD_OUT)
    if args.dataset == "scanobjectnn":
        from pointsam.data.converters.scanobjectnn import convert_scanobjectnn

        return convert_scanobjectnn(args.data)
    from pointsam.data.converters.agile3d import convert_agile3d

    return convert_agile3d(args.data, setup=args.setup, y_up=args.dataset == "kitti360" and not args.no_y_up)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=list(DATASETS))
    parser.add_argument("data", type=Path, help="the data set folder (or h5 file) as published")
    parser.add_argument("--model", default="large",
                        help="large (official ViT-L), default, hf://owner/repo[@rev]/file or a weights file")
    parser.add_argument("--config", default=None, help="architecture preset when the file does not say")
    parser.add_argument("--setup", default="auto", choices=["auto", "multi", "single"],
                        help="s3dis / kitti360: AGILE3D multi-object samples or single-object crops")
    parser.add_argument("--no-y-up", action="store_true", help="kitti360: keep the z-up coordinates")
    parser.add_argument("--categories", nargs="+", help="partnet-mobility: categories (default: held out)")
    parser.add_argument("--num-patches", type=int, help="override L (e.g. 2048 for S3DIS, paper Table 6)")
    parser.add_argument("--patch-size", type=int, help="override K (e.g. 256 for S3DIS)")
    parser.add_argument("--limit", type=int, help="evaluate at most this many clouds")
    parser.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    parser.add_argument("--out", type=Path, help="write the summary and every IoU curve as JSON")
    parser.add_argument("--save-dataset", type=Path, metavar="DIR",
                        help="also write the evaluated clouds as a pointsam dataset (for --baseline mv-sam)")
    args = parser.parse_args(argv)

    from pointsam import hub
    from pointsam.checkpoint import load_model
    from pointsam.evaluation.interactive import evaluate_cloud, results_to_json, summarize
    from pointsam.evaluation.paper import table3_markdown
    from pointsam.predictor import PointCloudPredictor

    path = hub.resolve_checkpoint(args.model)
    config = args.config or (hub.config_for(args.model) if hub.is_model_name(args.model) else None) or "large"
    predictor = PointCloudPredictor(load_model(path, config=config, device=args.device))
    grouping = {"num_patches": args.num_patches, "patch_size": args.patch_size}
    results, start = [], time.perf_counter()
    clouds = conversion(args)
    writer = None
    if args.save_dataset:
        from pointsam.data.dataset import DatasetWriter

        writer = DatasetWriter(args.save_dataset, name=f"{args.dataset}-eval", source=clouds.report.source,
                               licence=clouds.report.licence)
    for i, cloud in enumerate(clouds):
        if args.limit is not None and i >= args.limit:
            break
        print(f"[{i + 1}] {cloud.name}: {cloud.num_points:,} points, {cloud.num_masks} masks",
              file=sys.stderr, flush=True)
        results += evaluate_cloud(predictor, cloud, max_clicks=10, **grouping)
        if writer is not None:
            writer.add(cloud)
    if writer is not None:
        writer.close()
    print(clouds.report.summary(), file=sys.stderr)
    summary = summarize(results)
    method = f"Point-SAM ({args.model if hub.is_model_name(args.model) else Path(args.model).name})"
    print(table3_markdown({DATASETS[args.dataset]: {method: summary}}))
    print(f"{summary.get('num_objects', 0)} masks in {time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(results_to_json(results, summary), indent=1))


if __name__ == "__main__":
    main()
