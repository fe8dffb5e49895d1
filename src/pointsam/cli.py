"""The `pointsam` command line: segment a point cloud or mesh from a few clicks."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from pointsam.errors import PointSAMError

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
    seg.add_argument("--checkpoint", type=Path, help="model weights (.safetensors), e.g. the "
                     "official Point-SAM model.safetensors")
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
    return parser


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
    _say(f"loaded model ({args.config}) in {t2 - t1:.1f} s on {next(model.parameters()).device}")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pointsam` command."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "segment":
            _segment(args)
    except (PointSAMError, FileExistsError, FileNotFoundError) as exc:
        print(f"pointsam: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
