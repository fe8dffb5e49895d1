"""Encode / per-click decode time and peak memory of Point-SAM on CPU, against the matmul floor.

Run: python benchmarks/bench_model.py [--sizes 10000 100000 1000000 5000000] [--configs large small]
       [--compare /path/to/other/src] [--busy-size 237360]
Each (config, size) runs in a fresh subprocess so its peak RSS is its own. Prints Markdown tables.
`--compare SRC` runs every case a second time with PYTHONPATH=SRC (e.g. /work/main/src), giving a
same-run before/after table. Two more tables: the first click on the bundled example in a fresh
process (any JIT or lazy start-up cost shows here), and the bundled model's encode of a
scene-sized cloud alone and with one CPU-burning neighbour process (thread oversubscription).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE_SRC = str(Path(__file__).resolve().parents[1] / "src")
SMALL = dict(vit_depth=6, vit_width=384, vit_heads=6)  # a ViT-S-like encoder, same decoder
DECODE_FLOP_PER_POINT = 2 * 256 * 256 + 2 * 3 * 256  # upscaling Linear + 3 hypernetwork dots


def matmul_gflops(n: int = 4096, repeats: int = 3) -> float:
    """Measured float32 matmul rate of this machine (GFLOP/s, median)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times)) / 1e9


def encoder_flops(cfg, num_patches: int, patch_size: int) -> float:
    """Multiply-add FLOPs (x2) of the patch PointNet, projections and ViT blocks."""
    lk = num_patches * patch_size
    pointnet = lk * (6 * 128 + 128 * 128 + 256 * 512 + 512 * 512)
    w, h, tokens = cfg.vit_width, cfg.mlp_hidden_dim, num_patches
    mlp = 3 * w * h if cfg.vit_variant == "eva02" else 2 * w * h
    block = tokens * (4 * w * w + mlp) + 2 * tokens * tokens * w
    proj = tokens * (512 * w + 3 * 128 + 128 * w + w * cfg.embed_dim)
    return 2.0 * (pointnet + cfg.vit_depth * block + proj)


def cloud(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic scene-like cloud: points on a few boxes and spheres, with colours."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-5, 5, size=(32, 3))
    which = rng.integers(0, 32, n)
    v = rng.normal(size=(n, 3))
    radius = rng.uniform(0.3, 1.5, 32)[which, None]
    xyz = centers[which] + v / np.linalg.norm(v, axis=1, keepdims=True) * radius
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    return xyz.astype(np.float32), rgb


def time_encoder_network(model, emb, feats: torch.Tensor) -> float:
    """Seconds for the PointNet + ViT as the predictor runs them (works on older trees too)."""
    try:
        from pointsam.modeling.patch_embed import patch_inputs
        from pointsam.ops import pointnet
    except ImportError:  # an older tree: the module itself was the fast path
        pointnet = None
    with torch.no_grad():
        t = time.perf_counter()
        if pointnet is None:
            model.pc_encoder(emb.coords, feats, emb.patches)
        else:
            pn = model.pc_encoder.patch_embed.patch_encoder
            x = pointnet(patch_inputs(emb.coords, feats, emb.patches), pn.conv1, pn.conv2)
            model.pc_encoder.encode_patches(x, emb.patches.centers)
        return time.perf_counter() - t


def run_busy_case(n: int) -> dict:
    """Encode of an n-point cloud with the bundled model: alone, then beside one CPU-burning process."""
    from pointsam import PointCloudPredictor, load_model

    xyz, rgb = cloud(n, seed=1)
    pred = PointCloudPredictor(load_model(device="cpu"))
    pred.set_point_cloud(xyz[:2000], rgb[:2000])  # warm-up
    out = {"n": n, "threads": torch.get_num_threads()}
    for label in ("idle_s", "busy_s"):
        burner = None
        if label == "busy_s":
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            t = time.perf_counter()
            pred.set_point_cloud(xyz, rgb)
            out[label] = time.perf_counter() - t
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    return out


def run_first_click(views: int = 1) -> dict:
    """Fresh process: bundled model with `views`-view ensembling, the bundled example table, time of the
    very first click, of later first clicks and of refining clicks (2 clicks + the previous mask)."""
    from pointsam import PointCloudPredictor, load_model
    from pointsam.checkpoint import default_model_path
    from pointsam.io import read_point_cloud

    cloud = read_point_cloud(default_model_path().parent / "example_table.ply")
    # views=1 is passed as nothing, so a --compare tree from before view ensembling runs too
    pred = PointCloudPredictor(load_model(device="cpu"), **({"views": views} if views > 1 else {}))
    t = time.perf_counter()
    pred.set_point_cloud(cloud.xyz, cloud.rgb)
    encode_s = time.perf_counter() - t
    times, refine = [], []
    for i in range(11):
        t = time.perf_counter()
        _, scores, logits = pred.predict(point_indices=[i * 101], point_labels=[1])
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        pred.predict(point_indices=[i * 101, i * 101 + 50], point_labels=[1, 0],
                     mask_input=logits[scores.argmax()], multimask_output=False)
        refine.append(time.perf_counter() - t)
    return {"n": pred.num_points, "views": views, "encode_s": encode_s, "first_ms": 1000 * times[0],
            "later_ms": 1000 * float(np.median(times[1:])), "refine_ms": 1000 * float(np.median(refine[1:]))}


def run_case(config: str, n: int, clicks: int) -> dict:
    """One measurement, in this process."""
    import resource

    from pointsam import PointCloudPredictor, PointSAMConfig, build_model

    torch.set_num_threads(2)
    cfg = PointSAMConfig.large() if config == "large" else PointSAMConfig.large(**SMALL)
    model = build_model(cfg).eval()
    xyz, rgb = cloud(n)
    pred = PointCloudPredictor(model)
    t = time.perf_counter()
    pred.set_point_cloud(xyz, rgb)
    encode_s = time.perf_counter() - t
    emb = pred.embedding
    feats = torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1).unsqueeze(0)
    net_s = time_encoder_network(model, emb, feats)
    pred.predict(point_indices=[1], point_labels=[1])  # warm-up
    times = []
    for i in range(clicks):
        t = time.perf_counter()
        pred.predict(point_indices=[1 + i * 7], point_labels=[1])
        times.append(time.perf_counter() - t)
    _, scores, logits = pred.predict(point_indices=[1], point_labels=[1])
    best = logits[scores.argmax()]
    refine = []
    for i in range(clicks):
        t = time.perf_counter()
        pred.predict(point_indices=[1, 2 + i * 7], point_labels=[1, 0], mask_input=best,
                     multimask_output=False)
        refine.append(time.perf_counter() - t)
    return dict(
        refine_ms=1000 * float(np.median(refine)),
        config=config, n=n, L=pred.num_patches, K=pred.patch_size, encode_s=encode_s,
        network_s=net_s, flops=encoder_flops(cfg, pred.num_patches, pred.patch_size),
        decode_ms=1000 * float(np.median(times)),
        peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    )


def _subprocess(src: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": src}
    return subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)


def _fail(out: subprocess.CompletedProcess) -> str:
    lines = (out.stderr or out.stdout or "no output").strip().splitlines()
    return lines[-1] if lines else "no output"


def _child(name: str, src: str, *args: str, row: str = "") -> dict | None:
    """This script's JSON result in a fresh process on `src`, or None after printing the failed row
    (`row`: the cells that go between the tree's name and the failure)."""
    out = _subprocess(src, *args)
    if out.returncode:
        print(f"| {name} | {row}failed: {_fail(out)} |", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 5_000_000])
    parser.add_argument("--configs", nargs="+", default=["small", "large"])
    parser.add_argument("--compare", metavar="SRC", help="another tree's src/ folder to time in the same run")
    parser.add_argument("--busy-size", type=int, default=237_360,
                        help="points of the busy-neighbour encode row (0 skips it)")
    parser.add_argument("--clicks", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--busy", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-click", type=int, metavar="VIEWS", help=argparse.SUPPRESS)
    parser.add_argument("--example-only", action="store_true",
                        help="only the bundled model on the example table (1, 2 and 4 views)")
    args = parser.parse_args()
    if args.case:
        config, n = args.case.split(":")
        clicks = args.clicks or (20 if int(n) <= 100_000 else 2)
        print(json.dumps(run_case(config, int(n), clicks=clicks)))
        return
    if args.busy:
        torch.set_num_threads(2)
        print(json.dumps(run_busy_case(args.busy)))
        return
    if args.first_click:
        torch.set_num_threads(2)
        print(json.dumps(run_first_click(args.first_click)))
        return
    trees = [("this", HERE_SRC)] + ([("compare", args.compare)] if args.compare else [])
    torch.set_num_threads(2)
    rate = matmul_gflops()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; float32 matmul 4096^2: {rate:.0f} GFLOP/s")
    for name, src in trees:
        print(f"tree {name}: {src}")
    print()
    print("| tree | config | points | L x K | encode (s) | encoder net (s) | net GFLOP/s | vs matmul | "
          "click (ms) | decode floor (ms) | vs floor | refine click (ms) | peak RSS (GB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    extra = ["--clicks", str(args.clicks)] if args.clicks else []
    for config in [] if args.example_only else args.configs:
        for n in args.sizes:
            for name, src in trees:
                r = _child(name, src, "--case", f"{config}:{n}", *extra, row=f"{config} | {n:,} | ")
                if r is None:
                    continue
                achieved = r["flops"] / r["network_s"] / 1e9
                floor_ms = 1000 * n * DECODE_FLOP_PER_POINT / (rate * 1e9)
                print(f"| {name} | {config} | {n:,} | {r['L']}x{r['K']} | {r['encode_s']:.2f} | "
                      f"{r['network_s']:.2f} | {achieved:.0f} | {achieved / rate:.2f} | "
                      f"{r['decode_ms']:.0f} | {floor_ms:.0f} | {r['decode_ms'] / floor_ms:.1f}x | "
                      f"{r['refine_ms']:.0f} | "
                      f"{r['peak_rss_gb']:.2f} |", flush=True)
    print("\n| tree | example table, bundled model (fresh process) | views | encode (s) | first click (ms) | "
          "later clicks (ms) | refine click (ms) |")
    print("|---|---|---|---|---|---|---|")
    for views in (1, 2, 4):
        for name, src in trees:
            r = _child(name, src, "--first-click", str(views))
            if r is None:
                continue
            print(f"| {name} | {r['n']:,} points | {views} | {r['encode_s']:.2f} | {r['first_ms']:.0f} | "
                  f"{r['later_ms']:.0f} | {r['refine_ms']:.0f} |", flush=True)
    if args.busy_size:
        print("\n| tree | encode, bundled model | threads | alone (s) | one busy neighbour (s) | slowdown |")
        print("|---|---|---|---|---|---|")
        for name, src in trees:
            r = _child(name, src, "--busy", str(args.busy_size), row=f"{args.busy_size:,} points | ")
            if r is None:
                continue
            print(f"| {name} | {r['n']:,} points | {r['threads']} | {r['idle_s']:.2f} | {r['busy_s']:.2f} | "
                  f"{r['busy_s'] / r['idle_s']:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
