"""Encode / per-click decode time and peak memory of Point-SAM on CPU, against the matmul floor.

Run: python benchmarks/bench_model.py [--sizes 10000 100000 1000000 5000000] [--configs large small]
Each (config, size) runs in a fresh subprocess so its peak RSS is its own. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np
import torch

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
    with torch.no_grad():
        t = time.perf_counter()
        model.pc_encoder(emb.coords, feats, emb.patches)
        net_s = time.perf_counter() - t
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 5_000_000])
    parser.add_argument("--configs", nargs="+", default=["small", "large"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        config, n = args.case.split(":")
        print(json.dumps(run_case(config, int(n), clicks=20 if int(n) <= 100_000 else 2)))
        return
    torch.set_num_threads(2)
    rate = matmul_gflops()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; float32 matmul 4096^2: {rate:.0f} GFLOP/s\n")
    print("| config | points | L x K | encode (s) | encoder net (s) | net GFLOP/s | vs matmul | "
          "click (ms) | decode floor (ms) | vs floor | refine click (ms) | peak RSS (GB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for config in args.configs:
        for n in args.sizes:
            out = subprocess.run([sys.executable, __file__, "--case", f"{config}:{n}"],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"| {config} | {n:,} | failed: {out.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            achieved = r["flops"] / r["network_s"] / 1e9
            floor_ms = 1000 * n * DECODE_FLOP_PER_POINT / (rate * 1e9)
            print(f"| {config} | {n:,} | {r['L']}x{r['K']} | {r['encode_s']:.2f} | {r['network_s']:.2f} | "
                  f"{achieved:.0f} | {achieved / rate:.2f} | {r['decode_ms']:.0f} | {floor_ms:.0f} | "
                  f"{r['decode_ms'] / floor_ms:.1f}x | {r['refine_ms']:.0f} | {r['peak_rss_gb']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
