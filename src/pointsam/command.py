"""`pointsam segment` and `pointsam everything`: the commands of the top-level package's API
(`PointCloudPredictor` from clicks, `AutomaticMaskGenerator` without clicks)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pointsam.cli_common import (
    add_common_arguments,
    add_generator_arguments,
    add_views_argument,
    generator_from_args,
    load_model_from_args,
)
from pointsam.errors import PointSAMError

MESH_OUTPUTS = (".obj", ".glb")
POINT_OUTPUTS = (".ply", ".npy", ".las", ".laz", ".txt", ".csv", ".xyz")
ALL_MASKS_OUTPUTS = (".ply", ".npy")
MAX_CLICKS = 100  # each click re-decodes with all earlier ones: 1000 clicks took minutes


def add_segment_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `segment` subcommand."""
    seg = sub.add_parser(
        "segment",
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
    seg.add_argument("--out", type=Path, required=True,
                     help="output: .ply (mask field), .npy, .las/.laz, .txt, or .obj/.glb for mesh "
                     "input (labelled faces)")
    seg.add_argument("--all-masks", action="store_true",
                     help="also write every candidate mask (mask_0.. fields in PLY, (C, N) in NPY)")
    seg.add_argument("--num-patches", type=int, help="override the number of patches L")
    seg.add_argument("--patch-size", type=int, help="override the patch size K")
    seg.add_argument("--mesh-samples", type=int, default=100_000,
                     help="points sampled from a mesh input (default 100000)")
    seg.add_argument("--mode", choices=("auto", "global", "local"), default="auto",
                     help="global: encode the whole cloud (the paper's protocol); local: answer the clicks "
                     "on a cached region around them (big scans); auto (default): local above "
                     "500,000 points")
    seg.add_argument("--region-points", type=int, default=16384, metavar="N",
                     help="local mode: points in the first region around the clicks (default 16384)")
    add_views_argument(seg)
    seg.add_argument("--classification-value", type=int, metavar="K",
                     help="LAS/LAZ output: also set the classification of the masked points to K "
                     "(0..255; by default the classification is left as it was)")
    add_common_arguments(seg, overwrite_help="replace OUTPUT if it exists")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _prompts(args: argparse.Namespace) -> tuple[np.ndarray | None, list[int], list[int]]:
    coords = [*args.point, *args.negative]
    labels = [1] * len(args.point) + [0] * len(args.negative)
    indices = [*args.point_index, *args.negative_index]
    labels += [1] * len(args.point_index) + [0] * len(args.negative_index)
    if not labels:
        raise PointSAMError("give at least one click: --point X Y Z or --point-index I")
    if len(labels) > MAX_CLICKS:
        raise PointSAMError(f"{len(labels)} clicks given; at most {MAX_CLICKS} per run (each click is "
                            "decoded with all earlier ones)")
    negative = [i for i in indices if i < 0]
    if negative:
        raise PointSAMError(f"point index {negative[0]} is out of range: indices are in [0, N), "
                            "N = the input's point count")
    return (np.array(coords, np.float64) if coords else None), indices, labels


def _ply_has_faces(path: Path) -> bool:
    """Whether a PLY header declares faces (read from the first 64 KB only; unreadable = maybe)."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(65536).split(b"end_header", 1)[0]
    except OSError:
        return True  # the reader reports the real problem
    return any(line.split()[1:2] == [b"face"] and line.split()[2:3] != [b"0"]
               for line in header.splitlines() if line.startswith(b"element"))


def _check_output(args: argparse.Namespace) -> None:
    """Refuse, before reading or computing anything, an output that could not be written."""
    from pointsam.io.mesh import MESH_EXTENSIONS

    suffix = args.out.suffix.lower()
    if suffix not in (*POINT_OUTPUTS, *MESH_OUTPUTS):
        raise PointSAMError(f"--out {args.out.name!r}: unknown extension; use one of "
                            f"{', '.join(POINT_OUTPUTS + MESH_OUTPUTS)}")
    if args.all_masks and suffix not in ALL_MASKS_OUTPUTS:
        raise PointSAMError(f"--all-masks needs a .ply or .npy output, got {args.out.name!r}")
    source = args.input.suffix.lower()
    if suffix in MESH_OUTPUTS and (source not in (*MESH_EXTENSIONS, ".ply")
                                   or source == ".ply" and not _ply_has_faces(args.input)):
        raise PointSAMError(f"{suffix} output needs a mesh input; use .ply or .npy for point clouds")
    if args.classification_value is not None:
        if suffix not in (".las", ".laz"):
            raise PointSAMError(f"--classification-value needs a .las/.laz output, got {args.out.name!r}")
        if not 0 <= args.classification_value <= 255:
            raise PointSAMError(f"--classification-value must be in 0..255, got {args.classification_value}")
    if args.out.is_dir():
        raise PointSAMError(f"--out {args.out} is a folder; give a file name")
    _check_writable(args)


def _check_writable(args: argparse.Namespace, cloud=None) -> None:
    """Existing file, unwritable folder, or the input itself (once read): refused before compute."""
    from pointsam.io.writers import check_output

    kind = "mesh" if args.out.suffix.lower() in MESH_OUTPUTS else "labels"
    check_output(args.out, args.overwrite, kind=kind, source=cloud)


def _write_output(args, cloud, masks: np.ndarray, scores: np.ndarray) -> None:
    from pointsam.io import labels_to_faces, write_labels, write_mesh_labels, write_ply

    best = masks[int(scores.argmax())]
    suffix = args.out.suffix.lower()
    if suffix in MESH_OUTPUTS:
        if cloud.mesh is None or cloud.face_index is None:
            raise PointSAMError(f"{suffix} output needs a mesh input; use .ply or .npy for clouds")
        faces = labels_to_faces(cloud.mesh, cloud.xyz, cloud.face_index, best.astype(np.int64))
        write_mesh_labels(args.out, cloud.mesh, faces, overwrite=args.overwrite, source_path=args.input)
        return
    if args.all_masks:
        if suffix == ".npy":
            from pointsam.utils.files import atomic_output

            with atomic_output(args.out, overwrite=args.overwrite) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, masks)
            return
        if suffix != ".ply":
            raise PointSAMError("--all-masks needs a .ply or .npy output")
        fields = {"mask": best.astype(bool)}
        fields.update({f"mask_{i}": m.astype(bool) for i, m in enumerate(masks)})
        names = write_ply(args.out, cloud.xyz, cloud.rgb, fields=fields, overwrite=args.overwrite,
                          source=cloud)
        renamed = {k: v for k, v in names.items() if k != v}
        if renamed:
            _say(f"the input already has fields named {', '.join(renamed)}: wrote "
                 f"{', '.join(renamed.values())} instead")
        return
    name = write_labels(args.out, cloud.xyz, best.astype(bool), cloud.rgb, source=cloud, field="mask",
                        overwrite=args.overwrite, classification_value=args.classification_value)
    if name != "mask":
        _say(f"the input already has a field named 'mask': the mask is written as {name!r}")


def run_segment(args: argparse.Namespace) -> None:
    """Run the `segment` subcommand."""
    from pointsam.io import read_point_cloud
    from pointsam.predictor import PointCloudPredictor

    coords, indices, labels = _prompts(args)
    if args.region_points < 64:
        raise PointSAMError(f"--region-points must be at least 64, got {args.region_points}")
    _check_output(args)
    t0 = time.perf_counter()
    cloud = read_point_cloud(args.input, mesh_samples=args.mesh_samples)
    _say(f"read {cloud.num_points:,} points from {args.input}")
    _check_writable(args, cloud)
    t1 = time.perf_counter()
    model = load_model_from_args(args)
    t2 = time.perf_counter()
    name = args.checkpoint.name if args.checkpoint else "bundled default model"
    params = sum(p.numel() for p in model.parameters()) / 1e6
    _say(f"loaded {name} ({params:.1f}M parameters) in {t2 - t1:.1f} s on {next(model.parameters()).device}")
    predictor = PointCloudPredictor(model, mode=args.mode, views=args.views or 1,
                                    local_options={"region_points": args.region_points})
    predictor.set_point_cloud(cloud.xyz, cloud.rgb, num_patches=args.num_patches,
                              patch_size=args.patch_size, progress=lambda m: _say(m + " ..."))
    t3 = time.perf_counter()
    if len(labels) > 10:
        _say(f"replaying {len(labels)} clicks ...")
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



def add_everything_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `everything` subcommand."""
    ev = sub.add_parser(
        "everything",
        description="Prompt the model at FPS points, keep confident and stable masks, remove "
        "duplicates by point-set NMS and write per-point labels (-1 = unlabelled).",
    )
    ev.add_argument("input", type=Path, help="point cloud or mesh")
    ev.add_argument("--out", type=Path, required=True,
                    help="output: .ply (input points + integer 'label' field), .npy (labels) or "
                    ".json (mask records with point indices)")
    add_generator_arguments(ev, num_prompts=256, nms=0.7, max_masks=None)
    ev.add_argument("--num-patches", type=int, help="override the number of patches L")
    ev.add_argument("--patch-size", type=int, help="override the patch size K")
    add_views_argument(ev, everything=True)
    ev.add_argument("--mesh-samples", type=int, default=100_000)
    ev.add_argument("--tile-size", type=float, metavar="S",
                    help="big scans: segment overlapping S x S tiles (in the cloud's units, on x/y) and "
                    "merge them on full-cloud indices (pointsam.scene.segment_tiles); default: one pass")
    ev.add_argument("--tile-overlap", type=float, metavar="O",
                    help="tile overlap (default: a quarter of --tile-size); larger than the objects")
    ev.add_argument("--tiles-dir", type=Path, metavar="DIR",
                    help="keep each finished tile here, so an interrupted run resumes where it stopped")
    add_common_arguments(ev, overwrite_help="replace OUTPUT if it exists")


def _records_json(records: list[dict]) -> list[dict]:
    return [{k: (v.tolist() if isinstance(v, np.ndarray) else
                 v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in records]


def run_everything(args: argparse.Namespace) -> None:
    """Run the `everything` subcommand."""
    from pointsam.automatic import records_to_labels
    from pointsam.io import read_point_cloud, write_labels
    from pointsam.io.writers import check_output
    from pointsam.utils.files import atomic_output, check_output_path

    suffix = args.out.suffix.lower()
    if suffix not in (".ply", ".npy", ".json"):
        raise PointSAMError(f"--out must end in .ply, .npy or .json, got {args.out.name!r}")
    check_output_path(args.out, args.overwrite)
    if args.tile_size is not None and not args.tile_size > 0:
        raise PointSAMError(f"--tile-size must be positive, got {args.tile_size}")
    overlap = args.tile_overlap if args.tile_overlap is not None else (args.tile_size or 0) / 4
    if args.tile_size is not None and not 0 <= overlap < args.tile_size:
        raise PointSAMError(f"--tile-overlap must be in [0, --tile-size), got {overlap}")
    if args.tile_size is None and (args.tile_overlap is not None or args.tiles_dir is not None):
        raise PointSAMError("--tile-overlap and --tiles-dir need --tile-size")
    cloud = read_point_cloud(args.input, mesh_samples=args.mesh_samples)
    if suffix != ".json":
        check_output(args.out, args.overwrite, source=cloud)
    model = load_model_from_args(args)
    generator = generator_from_args(model, args)
    start = time.perf_counter()
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.tile_size is None:
        records = generator.generate(cloud.xyz, cloud.rgb, progress=say)
    else:
        from pointsam.scene import segment_tiles

        records = segment_tiles(generator, cloud.xyz, cloud.rgb, tile_size=args.tile_size,
                                overlap=overlap, out_dir=args.tiles_dir, nms_iou_thresh=args.nms_thresh,
                                progress=say)
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
        print(f"pointsam: note: few candidates reached --pred-iou-thresh {generator.pred_iou_thresh} and "
              f"--stability-thresh {generator.stability_score_thresh}; lower them (e.g. 0.3 and 0.5), or "
              "use a stronger model (the official checkpoint)", file=sys.stderr)
