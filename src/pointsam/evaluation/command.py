"""`pointsam eval`: interactive IoU@k / NoC evaluation of a checkpoint on a pointsam dataset."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pointsam.cli_common import (
    add_common_arguments,
    add_generator_arguments,
    add_views_argument,
    generator_from_args,
    load_model_from_args,
)


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `eval` subcommand."""
    ev = sub.add_parser(
        "eval",
        description="Simulate clicks (first click at the mask point farthest from its border, "
        "then the farther of the false-negative / false-positive candidates) on every mask of "
        "DATASET and report IoU@1..10 and NoC@80/85/90 (capped at --max-clicks), per object and "
        "per class. Writes results.json, report.md and iou_vs_clicks.png into --out.",
    )
    ev.add_argument("dataset", type=Path, help="pointsam dataset folder (see `pointsam convert`)")
    ev.add_argument("--out", type=Path, required=True, help="folder for the report")
    ev.add_argument("--split", help="evaluate only this split of dataset.json (e.g. val)")
    ev.add_argument("--categories", nargs="+", metavar="CAT", help="evaluate only these categories")
    ev.add_argument("--max-clicks", type=int, default=20, help="clicks per mask (default 20)")
    ev.add_argument("--min-mask-points", type=int, default=1, help="skip smaller masks (default 1)")
    ev.add_argument("--limit", type=int, help="evaluate at most this many clouds")
    ev.add_argument("--num-patches", type=int, help="override the number of patches L")
    ev.add_argument("--patch-size", type=int, help="override the patch size K")
    add_views_argument(ev, everything=True)
    add_common_arguments(ev, overwrite_help="replace an existing report")
    ev.add_argument("--baseline", choices=["mv-sam"], help="evaluate a baseline instead of Point-SAM: "
                    "mv-sam = 2D SAM clicked per view, lifted to the points (paper Sec. 5.1)")
    ev.add_argument("--sam-checkpoint", type=Path, help="mv-sam: local transformers SAM folder")
    prop = ev.add_argument_group("object proposals (--proposals): average recall of the masks by "
                                 "segment-everything proposals, as in paper Sec. 5.2")
    prop.add_argument("--proposals", action="store_true",
                      help="evaluate AR / AR@25 / AR@50 of `pointsam everything` instead of clicks")
    add_generator_arguments(prop, num_prompts=1024, nms=0.3, max_masks=250,
                            min_points_flag="--min-proposal-points")
    prop.add_argument("--ignore-names", nargs="*", default=["floor", "undefined"],
                      help="ground-truth mask names left out (default: floor undefined)")


def run_eval(args: argparse.Namespace) -> None:
    """Run the `eval` subcommand."""
    from pointsam.data.dataset import PointCloudDataset
    from pointsam.errors import InputError
    from pointsam.evaluation.interactive import evaluate_interactive, summarize
    from pointsam.evaluation.report import markdown_table, refuse_existing, write_report
    from pointsam.predictor import PointCloudPredictor

    if args.max_clicks < 1:
        raise InputError("--max-clicks must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out} is a file; give a folder for the report")
    # Refuse an existing report before any compute (mv-sam checks its own files).
    reports = {"proposals": ("proposals.json", "proposals.md"),
               "interactive": ("results.json", "report.md", "iou_vs_clicks.png")}
    if args.baseline is None:
        refuse_existing([args.out / n for n in reports["proposals" if args.proposals else "interactive"]],
                        args.overwrite)
    dataset = PointCloudDataset(args.dataset, split=args.split)
    clouds = list(range(len(dataset)))
    if args.categories:
        wanted = set(args.categories)
        clouds = [i for i, c in enumerate(dataset.categories) if c in wanted]
    if args.limit is not None:
        clouds = clouds[: args.limit]
    if not clouds:
        raise InputError(f"no clouds to evaluate in {args.dataset} with the given split/categories")
    if args.baseline == "mv-sam":
        from pointsam.evaluation.mvsam import run_mvsam_eval

        if args.views not in (None, 1):
            raise InputError("--views is for Point-SAM models; the mv-sam baseline has no views option")

        return run_mvsam_eval(args, dataset.subset(clouds))
    model = load_model_from_args(args)
    subset = dataset.subset(clouds)
    if args.proposals:
        _run_proposals(args, model, subset)
        return
    predictor = PointCloudPredictor(model, views=args.views or 1)
    start = time.perf_counter()
    results = evaluate_interactive(
        predictor, subset, args.max_clicks, args.min_mask_points,
        progress=lambda i, c: print(f"[{i + 1}/{len(subset)}] {c.name} ({c.num_masks} masks)",
                                    file=sys.stderr, flush=True),
        num_patches=args.num_patches, patch_size=args.patch_size,
    )
    summary = summarize(results)
    title = f"{args.dataset.name}: {args.checkpoint.name if args.checkpoint else 'model'}"
    files = write_report(results, summary, args.out, title=title, overwrite=args.overwrite,
                         note=lambda m: print(f"note: {m}", file=sys.stderr))
    print(markdown_table(summary, title))
    print(f"{len(results)} masks in {len(subset)} clouds, {time.perf_counter() - start:.1f} s; "
          f"wrote {', '.join(str(f) for f in files)}")


def _run_proposals(args: argparse.Namespace, model, subset) -> None:
    import json

    from pointsam.evaluation.proposals import evaluate_proposals
    from pointsam.utils.files import atomic_output

    json_path, md_path = args.out / "proposals.json", args.out / "proposals.md"
    generator = generator_from_args(model, args)
    start = time.perf_counter()
    rows, pooled = evaluate_proposals(
        generator, subset, args.ignore_names,
        progress=lambda i, c: print(f"[{i + 1}/{len(subset)}] {c.name}", file=sys.stderr, flush=True),
    )
    lines = ["| cloud | gt masks | proposals | AR | AR@25 | AR@50 |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows + [{"cloud": "**all (pooled)**", "num_gt": sum(r["num_gt"] for r in rows),
                      "num_proposals": sum(r["num_proposals"] for r in rows), **pooled}]:
        lines.append(f"| {r['cloud']} | {r['num_gt']} | {r['num_proposals']} | {r['AR']:.1f} | "
                     f"{r['AR@25']:.1f} | {r['AR@50']:.1f} |")
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(json_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"pooled": pooled, "clouds": rows}, indent=1))
    with atomic_output(md_path, overwrite=True) as tmp:
        tmp.write_text(table)
    print(table)
    print(f"{len(rows)} clouds in {time.perf_counter() - start:.1f} s; wrote {json_path}, {md_path}")
    if pooled["AR"] == 0:
        kept = sum(r["num_proposals"] for r in rows)
        print(f"pointsam: note: AR is 0: no ground-truth mask was matched at IoU >= 0.5 ({kept} proposals "
              f"kept at "
              f"--pred-iou-thresh {generator.pred_iou_thresh} and --stability-thresh "
              f"{generator.stability_score_thresh}); "
              "lower them (e.g. 0.3 and 0.5), and for the bundled small model, whose scores run low, "
              "prefer the official checkpoint", file=sys.stderr)
