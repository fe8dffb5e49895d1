"""Which grouping (patches L x points per patch K) suits a model on a whole ScanNet scene: the paper's click
protocol on every instance of a scene, once per grouping, IoU@1..k and the encode time.

    python tools/compare_scene_grouping.py --checkpoint runs/default/model.safetensors \
        --scene ../shared/data/scannet/scene0046_02 --grouping 128x32 512x64 2048x256

The predictor's own choice for the scene's size is printed first (`pointsam.predictor.choose_grouping`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from diagnose_clicks import collect

from pointsam.checkpoint import load_model
from pointsam.data.converters.scannet_pointcept import pointcept_scene
from pointsam.predictor import choose_grouping


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--scene", type=Path, required=True, help="a Pointcept-layout ScanNet scene folder")
    ap.add_argument("--grouping", nargs="+", default=["128x32", "512x64", "2048x256"], metavar="LxK")
    ap.add_argument("--clicks", type=int, default=5)
    args = ap.parse_args(argv)
    model = load_model(args.checkpoint, device="cpu")
    scene = pointcept_scene(args.scene)
    cfg = model.config
    own = choose_grouping(scene.num_points, scene.num_points, cfg.num_patches, cfg.patch_size)
    print(f"{scene.name}: {scene.num_points:,} points, {scene.num_masks} instances; the predictor's "
          f"choice: {own[0]}x{own[1]}", file=sys.stderr)
    print("| grouping | " + " | ".join(f"IoU@{k}" for k in range(1, args.clicks + 1)) + " | seconds |")
    print("|---|" + "---:|" * (args.clicks + 1))
    for text in args.grouping:
        num_patches, patch_size = (int(v) for v in text.lower().split("x"))
        start = time.perf_counter()
        r = collect(model, [scene], args.clicks, variants=False, num_patches=num_patches,
                    patch_size=patch_size)
        curve = r["curve"].mean(axis=0) * 100
        print(f"| {text} | " + " | ".join(f"{v:.1f}" for v in curve)
              + f" | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
