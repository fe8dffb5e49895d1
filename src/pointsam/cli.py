"""The `pointsam` command line: segment a point cloud or mesh from a few clicks."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from pointsam.app.command import add_annotate_parser, run_annotate
from pointsam.automatic_command import add_everything_parser, run_everything
from pointsam.engine.command import add_engine_parser, run_engine
from pointsam.errors import PointSAMError
from pointsam.evaluation.command import add_eval_parser, run_eval
from pointsam.fewshot.command import add_fewshot_parser, run_fewshot
from pointsam.train.command import add_train_parser, run_train

MESH_OUTPUTS = (".obj", ".glb", ".gltf")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pointsam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser(
        "segment",
        help="segment an object or part from point prompts",
        description="Segment INPUT from clicks and write the best mask. Clicks are replayed in "
        "order (positives, then negatives, then indices), as a person would click.",
    )
    seg.add_argument("input", type=Path, help="point cloud or mesh (.ply .las .laz .pcd .npy "
                     ".npz .xyz .txt .obj .glb ...)")
    seg.add_argument("--point", nargs=3, type=float, action="append", default=[],
                     metavar=("X", "Y", "Z"), help="positive click, in the cloud's coordinates")
    seg.add_argument("--negative", nargs=3, type=float, action="append", default=[],
                     metavar=("X", "Y", "Z"), help="negative click (not part of the object)")
    seg.add_argument("--point-index", type=int, action="append", default=[], metavar="I",
                     help="positive click on point number I of the input")
    seg.add_argument("--negative-index", type=int, action="append", default=[], metavar="I",
                     help="negative click on point number I of the input")
    seg.add_argument("--checkpoint", type=Path, help="model weights, e.g. the official Point-SAM "
                     "model.safetensors (default: the bundled small model)")
    seg.add_argument("--config", default="large",
                     help="architecture: large, giant, base or auto (default: large)")
    seg.add_argument("--out", type=Path, required=True,
                     help="output: .ply (mask field), .npy, .las/.laz, .txt, or .obj/.glb for mesh "
                     "input (labelled faces)")
    seg.add_argument("--all-masks", action="store_true",
                     help="also write every candidate mask (mask_0.. fields in PLY, (C, N) in NPY)")
    seg.add_argument("--num-patches", type=int, help="override the number of patches L")
    seg.add_argument("--patch-size", type=int, help="override the patch size K")
    seg.add_argument("--mesh-samples", type=int, default=100_000,
                     help="points sampled from a mesh input (default 100000)")
    seg.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    seg.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    _add_convert_parser(sub)
    add_eval_parser(sub)
    add_everything_parser(sub)
    add_train_parser(sub)
    add_engine_parser(sub)
    add_annotate_parser(sub)
    add_fewshot_parser(sub)
    return parser


CONVERT_FORMATS = ("partnet", "partnet-mobility", "shapenet-part", "ply", "scannet-pointcept", "scannet",
                   "s3dis", "semantickitti")


def _add_convert_parser(sub: argparse._SubParsersAction) -> None:
    conv = sub.add_parser(
        "convert",
        help="convert a labelled 3D dataset into the pointsam training format",
        description="Convert INPUT (a file, an item folder or a dataset root, searched recursively) "
        "into a pointsam dataset folder (dataset.json + one .npz per cloud).",
    )
    conv.add_argument("format", choices=CONVERT_FORMATS, help="source format")
    conv.add_argument("input", type=Path, help="source file or folder")
    conv.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    conv.add_argument("--name", help="dataset name (default: the --out folder name)")
    conv.add_argument("--val-categories", nargs="+", metavar="CAT", default=[],
                      help="write train/val splits: these categories go to val")
    conv.add_argument("--field", help="ply: the per-point label field (default: instance, label, ...)")
    conv.add_argument("--points", type=int, default=10000,
                      help="partnet: use point_sample/pts-POINTS.txt; partnet-mobility: points sampled "
                      "per object (default 10000)")
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


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _prompts(args: argparse.Namespace) -> tuple[np.ndarray | None, list[int], list[int]]:
    coords = [*args.point, *args.negative]
    labels = [1] * len(args.point) + [0] * len(args.negative)
    indices = [*args.point_index, *args.negative_index]
    labels += [1] * len(args.point_index) + [0] * len(args.negative_index)
    if not labels:
        raise PointSAMError("give at least one click: --point X Y Z or --point-index I")
    return (np.array(coords, np.float64) if coords else None), indices, labels


def _write_output(args, cloud, masks: np.ndarray, scores: np.ndarray) -> None:
    from pointsam.io import labels_to_faces, write_labels, write_mesh_labels, write_ply

    best = masks[int(scores.argmax())]
    suffix = args.out.suffix.lower()
    if suffix in MESH_OUTPUTS:
        if cloud.mesh is None or cloud.face_index is None:
            raise PointSAMError(f"{suffix} output needs a mesh input; use .ply or .npy for clouds")
        faces = labels_to_faces(cloud.mesh, cloud.xyz, cloud.face_index, best.astype(np.int64))
        write_mesh_labels(args.out, cloud.mesh, faces, overwrite=args.overwrite)
        return
    if args.all_masks:
        if suffix == ".npy":
            from pointsam.io.writers import atomic_output

            with atomic_output(args.out, overwrite=args.overwrite) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, masks)
            return
        if suffix != ".ply":
            raise PointSAMError("--all-masks needs a .ply or .npy output")
        fields = {"mask": best.astype(np.uint8)}
        fields.update({f"mask_{i}": m.astype(np.uint8) for i, m in enumerate(masks)})
        write_ply(args.out, cloud.xyz, cloud.rgb, fields=fields, overwrite=args.overwrite)
        return
    write_labels(args.out, cloud.xyz, best.astype(np.int32), cloud.rgb, source=cloud,
                 field="mask", overwrite=args.overwrite)


def _segment(args: argparse.Namespace) -> None:
    from pointsam.checkpoint import load_model
    from pointsam.io import read_point_cloud
    from pointsam.predictor import PointCloudPredictor

    if args.out.exists() and not args.overwrite:
        raise PointSAMError(f"{args.out} exists; pass --overwrite to replace it")
    coords, indices, labels = _prompts(args)
    t0 = time.perf_counter()
    cloud = read_point_cloud(args.input, mesh_samples=args.mesh_samples)
    _say(f"read {cloud.num_points:,} points from {args.input}")
    t1 = time.perf_counter()
    model = load_model(args.checkpoint, config=args.config, device=args.device)
    t2 = time.perf_counter()
    name = args.checkpoint.name if args.checkpoint else "bundled default model"
    params = sum(p.numel() for p in model.parameters()) / 1e6
    _say(f"loaded {name} ({params:.1f}M parameters) in {t2 - t1:.1f} s on {next(model.parameters()).device}")
    predictor = PointCloudPredictor(model)
    predictor.set_point_cloud(cloud.xyz, cloud.rgb, num_patches=args.num_patches,
                              patch_size=args.patch_size, progress=lambda m: _say(m + " ..."))
    t3 = time.perf_counter()
    masks, scores, _ = predictor.predict_clicks(coords, labels, point_indices=indices or None)
    t4 = time.perf_counter()
    _write_output(args, cloud, masks, scores)
    best = int(scores.argmax())
    n_in = int(masks[best].sum())
    print(
        f"mask: {n_in:,} of {cloud.num_points:,} points ({100 * n_in / cloud.num_points:.1f}%), "
        f"predicted IoU {scores[best]:.3f} | read {t1 - t0:.1f} s, load {t2 - t1:.1f} s, "
        f"encode {t3 - t2:.2f} s, decode {1000 * (t4 - t3):.0f} ms -> {args.out}"
    )


def _convert(args: argparse.Namespace) -> None:
    from pointsam.data import DatasetWriter
    from pointsam.data.converters import FORMATS, scene_blocks

    options = {"ply": {"field": args.field}, "partnet": {"points": args.points},
               "partnet-mobility": {"points": args.points, "strict": args.strict,
                                    "min_mask_points": args.min_mask_points}}
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pointsam` command."""
    args = _build_parser().parse_args(argv)
    runners = {"segment": _segment, "convert": _convert, "eval": run_eval, "everything": run_everything,
               "train": run_train, "engine": run_engine, "annotate": run_annotate, "fewshot": run_fewshot}
    try:
        runners[args.command](args)
    except (PointSAMError, FileExistsError, FileNotFoundError) as exc:
        print(f"pointsam: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
