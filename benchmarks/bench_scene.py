"""Scene-scale inference: local (cached regions) vs global mode, speed, memory and fidelity.

    python benchmarks/bench_scene.py speed --points 1000000 5000000     # synthetic LAS scenes
    python benchmarks/bench_scene.py scannet-speed                     # the real ScanNet scene
    python benchmarks/bench_scene.py fidelity --clicks 5               # IoU@1/3/5, local vs global
    python benchmarks/bench_scene.py segment --points 20000000         # `pointsam segment` end to end

speed: a synthetic scene of many separated objects is written as LAS, then in a fresh process:
open (read_large_cloud + spatial index), first mask, a click on another object (new region),
a refinement click on it (same region); peak RSS of that process (getrusage). fidelity: the
official click protocol (pointsam.data.clicks) on every annotated instance of the shared ScanNet
scenes, bundled model, same run for both modes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import pointsam  # noqa: F401
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pointsam import PointCloudPredictor, load_model
from pointsam.data.clicks import first_click, next_click
from pointsam.io import read_point_cloud
from pointsam.io.large import read_large_cloud
from pointsam.scene import LocalPredictor
from pointsam.scene.synthetic import separated_objects

SCANNET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scannet"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _object_click(xyz: np.ndarray, inst: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The point of object k nearest its centroid, and the object's mask."""
    gt = inst == k
    pts = xyz[gt]
    return pts[np.argmin(((pts - pts.mean(axis=0)) ** 2).sum(axis=1))], gt


# ------------------------------------------------------------------------------------- speed


LAS_ORIGIN = (500_000.0, 4_000_000.0, 0.0)  # georeferenced-looking coordinates of the synthetic scenes


def _synthetic_scene(n: int, objects_per_million: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xyz, rgb and instance ids of a synthetic scene of `n` points (separated objects)."""
    return separated_objects(n, max(16, objects_per_million * n // 1_000_000), seed=0)


def _write_las(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    import laspy

    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = [0.001] * 3
    header.offsets = list(LAS_ORIGIN)
    las = laspy.LasData(header)
    las.x, las.y, las.z = (xyz[:, k].astype(np.float64) + LAS_ORIGIN[k] for k in range(3))
    las.red, las.green, las.blue = (rgb[:, k].astype(np.uint16) * 257 for k in range(3))
    las.write(path)


def _model(architecture: str):
    """The bundled model, or the official large architecture with random weights (speed only)."""
    if architecture == "bundled":
        return load_model()
    import torch

    from pointsam import PointSAMConfig, build_model

    torch.manual_seed(0)
    return build_model(PointSAMConfig.large()).eval()


def speed_child(path: str, labels: str, mode: str, architecture: str = "bundled") -> dict:
    """Run in a fresh process: open, first mask, new-region click, refinement; peak RSS."""
    inst = np.load(labels)
    model = _model(architecture)
    t0 = time.perf_counter()
    cloud = read_large_cloud(path)
    t_read = time.perf_counter() - t0
    if mode == "local":
        pred = LocalPredictor(model)
    else:
        pred = PointCloudPredictor(model)
    pred.set_point_cloud(cloud.xyz, cloud.rgb)
    t_open = time.perf_counter() - t0
    objects = np.unique(inst[inst >= 0])
    a, b = objects[len(objects) // 3], objects[2 * len(objects) // 3]
    click_a, gt_a = _object_click(cloud.xyz, inst, a)
    masks, scores, _ = pred.predict(click_a[None], [1])
    t_first = time.perf_counter() - t0
    iou_a = _iou(masks[int(scores.argmax())], gt_a)
    click_b, gt_b = _object_click(cloud.xyz, inst, b)
    t1 = time.perf_counter()
    masks, scores, logits = pred.predict(click_b[None], [1])
    t_new = time.perf_counter() - t1
    best = int(scores.argmax())
    pts_b = cloud.xyz[gt_b]
    second = pts_b[np.argmax(((pts_b - click_b) ** 2).sum(axis=1))]
    t2 = time.perf_counter()
    if mode == "local":  # the region's answer (what the app keeps), then the (C, N) full-cloud arrays
        result = pred.predict_local(np.stack([click_b, second]), [1, 1], logits[best], False)
        t_region = time.perf_counter() - t2
        masks2 = result.to_global(cloud.num_points)[0]
        grown, region_points = result.growth_steps, result.region.num_points
    else:
        masks2, _, _ = pred.predict(np.stack([click_b, second]), [1, 1], logits[best], False)
        t_region, grown, region_points = None, 0, cloud.num_points
    t_refine = time.perf_counter() - t2
    return {"n": int(cloud.num_points), "mode": mode if architecture == "bundled" else f"{mode} (large)",
            "read_s": t_read, "open_s": t_open,
            "first_mask_s": t_first, "new_region_s": t_new, "refine_s": t_refine, "refine_region_s": t_region,
            "refine_growth_steps": grown, "refine_region_points": region_points,
            "iou_first": iou_a, "iou_new": _iou(masks[best], gt_b), "iou_refined": _iou(masks2[0], gt_b),
            "peak_rss_mb": _peak_rss_mb()}


def run_speed(points: list[int], objects_per_million: int, modes: list[str], architecture: str
              ) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in points:
            xyz, rgb, inst = _synthetic_scene(n, objects_per_million)
            las, labels = Path(tmp) / f"scene_{n}.las", Path(tmp) / f"inst_{n}.npy"
            _write_las(las, xyz, rgb)
            np.save(labels, inst)
            del xyz, rgb, inst
            for mode in modes:
                rows.append(_child(["speed-child", str(las), str(labels), mode, architecture]))
                _print_speed(rows[-1:])
    return rows


def scannet_speed(modes: list[str]) -> list[dict]:
    scene = SCANNET / "scene0011_00"
    return [_child(["speed-child", str(scene), str(scene / "instance.npy"), m]) for m in modes]


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _print_speed(rows: list[dict]) -> None:
    for r in rows:
        print(f"| {r['n']:>10,} | {r['mode']:6} | {r['read_s']:6.1f} | {r['open_s']:6.1f} | "
              f"{r['first_mask_s']:6.1f} | {r['new_region_s']:6.2f} | {r['refine_s']:6.2f} | "
              f"{'-' if r.get('refine_region_s') is None else format(r['refine_region_s'], '6.2f')} "
              f"({r.get('refine_region_points', 0) // 1024}k, grown {r.get('refine_growth_steps', 0)}x) | "
              f"{r['iou_first']:.2f} / {r['iou_new']:.2f} / {r['iou_refined']:.2f} | "
              f"{r['peak_rss_mb']:7.0f} |", flush=True)


SPEED_HEADER = ("| points | mode | read s | open s | first mask s (from open) | new-region click s | "
                "refine click s | of which on the region s | IoU first / new / refined | peak RSS MB |\n"
                "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|")


# ---------------------------------------------------------------------------------- fidelity


def _protocol(pred, xyz: np.ndarray, gt: np.ndarray, clicks: int) -> tuple[list[float], list[float]]:
    """IoU after each click of the official protocol, and the seconds each prediction took."""
    c = first_click(xyz, gt)
    coords, labels = [xyz[c.index]], [1]
    t = time.perf_counter()
    masks, scores, logits = pred.predict(np.stack(coords), np.array(labels))
    times = [time.perf_counter() - t]
    best = int(scores.argmax())
    mask, logit = masks[best], logits[best]
    ious = [_iou(mask, gt)]
    for _ in range(1, clicks):
        c = next_click(xyz, gt, mask)
        coords.append(xyz[c.index])
        labels.append(int(c.positive))
        t = time.perf_counter()
        masks, _, logits = pred.predict(np.stack(coords), np.array(labels), logit, False)
        times.append(time.perf_counter() - t)
        mask, logit = masks[0], logits[0]
        ious.append(_iou(mask, gt))
    return ious, times


def run_fidelity(scenes: list[str], clicks: int, max_instances: int | None, modes: list[str],
                 region_points: int, num_patches: int | None = None) -> dict:
    model = load_model()
    results: dict = {}
    for name in scenes:
        folder = SCANNET / name
        cloud = read_point_cloud(folder)
        xyz, rgb, inst = np.asarray(cloud.xyz, np.float32), cloud.rgb, np.load(folder / "instance.npy")
        ids = [k for k in np.unique(inst) if k >= 0][:max_instances]
        for mode in modes:
            pred = (LocalPredictor(model, region_points, num_patches=num_patches) if mode == "local"
                    else PointCloudPredictor(model))
            t = time.perf_counter()
            pred.set_point_cloud(xyz, rgb)
            setup = time.perf_counter() - t
            ious, times = [], []
            for k in ids:
                i, s = _protocol(pred, xyz, inst == k, clicks)
                ious.append(i)
                times.append(s)
            ious_a, times_a = np.array(ious), np.array(times)
            results.setdefault(name, {})[mode] = {
                "points": int(len(xyz)), "instances": len(ids), "setup_s": setup,
                "miou": ious_a.mean(axis=0).tolist(), "first_click_s": float(times_a[:, 0].mean()),
                "later_click_s": float(times_a[:, 1:].mean()) if clicks > 1 else None}
            r = results[name][mode]
            label = (f"local {region_points // 1024}k" + (f" x{num_patches}" if num_patches else "")
                     if mode == "local" else mode)
            print(f"| {name} | {r['points']:,} | {label} | {r['instances']} | "
                  + " | ".join(f"{r['miou'][k - 1]:.3f}" for k in (1, 3, 5) if k <= clicks)
                  + f" | {setup:.1f} | {r['first_click_s']:.2f} | {r['later_click_s'] or 0:.2f} |",
                  flush=True)
    return results


def run_segment(points: list[int], objects_per_million: int, out_suffix: str) -> list[dict]:
    """`pointsam segment SCENE.las --point x y z --out OUT` on a synthetic LAS scene, in a fresh process:
    wall time from the command's start (model load, read, index, click, write), its peak RSS, and the
    IoU of the written mask with the clicked object."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in points:
            xyz, rgb, inst = _synthetic_scene(n, objects_per_million)
            las, out = Path(tmp) / f"scene_{n}.las", Path(tmp) / f"out_{n}{out_suffix}"
            _write_las(las, xyz, rgb)
            objects = np.unique(inst[inst >= 0])
            click, gt = _object_click(xyz, inst, objects[len(objects) // 2])
            del xyz, rgb
            command = [sys.executable, "-m", "pointsam", "segment", str(las), "--point",
                       *(f"{v + o:.3f}" for v, o in zip(click, LAS_ORIGIN, strict=True)),
                       "--out", str(out)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if done.returncode != 0:
                raise RuntimeError(f"pointsam segment failed: {done.stderr[-2000:]}")
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            mask = _written_mask(out)
            row = {"n": n, "seconds": wall, "peak_rss_mb": max(peak, before) / 1024.0,
                   "iou": _iou(mask, gt), "mask_points": int(mask.sum()), "out": out.suffix}
            print(f"| {n:>10,} | {row['out']} | {wall:6.1f} | {row['peak_rss_mb']:7.0f} | {row['iou']:.2f} | "
                  f"{row['mask_points']:,} |", flush=True)
            rows.append(row)
            del inst, gt
    return rows


def _written_mask(path: Path) -> np.ndarray:
    """The `mask` field of a segment output (.npy: the mask itself; .las/.ply: its 'mask' field)."""
    if path.suffix == ".npy":
        return np.load(path).astype(bool).reshape(-1)
    cloud = read_point_cloud(path)
    return np.asarray(cloud.fields["mask"]).astype(bool)


SEGMENT_HEADER = ("| points | output | seconds (end to end) | peak RSS MB | IoU | mask points |\n"
                  "|---:|---|---:|---:|---:|---:|")


FIDELITY_HEADER = ("| scene | points | mode | instances | IoU@1 | IoU@3 | IoU@5 | setup s | "
                   "first click s | later click s |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--points", type=int, nargs="+", default=[1_000_000, 5_000_000])
    sp.add_argument("--objects-per-million", type=int, default=200)
    sp.add_argument("--modes", nargs="+", default=["local"], choices=["local", "global"])
    sp.add_argument("--architecture", default="bundled", choices=["bundled", "large"],
                    help="large: the official large architecture with random weights (timing only)")
    ss = sub.add_parser("scannet-speed")
    ss.add_argument("--modes", nargs="+", default=["local", "global"], choices=["local", "global"])
    child = sub.add_parser("speed-child")
    child.add_argument("path")
    child.add_argument("labels")
    child.add_argument("mode")
    child.add_argument("architecture", nargs="?", default="bundled")
    sg = sub.add_parser("segment")
    sg.add_argument("--points", type=int, nargs="+", default=[20_000_000])
    sg.add_argument("--objects-per-million", type=int, default=200)
    sg.add_argument("--out-suffix", default=".npy", choices=[".npy", ".las", ".ply"])
    fp = sub.add_parser("fidelity")
    fp.add_argument("--scenes", nargs="+", default=["scene0011_00", "scene0025_00", "scene0046_02"])
    fp.add_argument("--clicks", type=int, default=5)
    fp.add_argument("--max-instances", type=int, default=None)
    fp.add_argument("--modes", nargs="+", default=["local", "global"], choices=["local", "global"])
    fp.add_argument("--json", type=Path, default=None)
    fp.add_argument("--region-points", type=int, default=16384)
    fp.add_argument("--num-patches", type=int, default=None,
                    help="patches of a region (default: the model's)")
    args = parser.parse_args()
    if args.cmd == "speed-child":
        print(json.dumps(speed_child(args.path, args.labels, args.mode, args.architecture)))
    elif args.cmd == "speed":
        print(SPEED_HEADER)
        run_speed(args.points, args.objects_per_million, args.modes, args.architecture)
    elif args.cmd == "segment":
        print(SEGMENT_HEADER)
        run_segment(args.points, args.objects_per_million, args.out_suffix)
    elif args.cmd == "scannet-speed":
        print(SPEED_HEADER)
        _print_speed(scannet_speed(args.modes))
    else:
        print(FIDELITY_HEADER)
        res = run_fidelity(args.scenes, args.clicks, args.max_instances, args.modes, args.region_points,
                           args.num_patches)
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
