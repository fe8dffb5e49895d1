"""Generate the bundled example cloud: a coloured table with a mug and a ball (synthetic).

Run: python tools/make_example_cloud.py  (writes src/pointsam/assets/example_table.ply)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

OUT = Path(__file__).resolve().parents[1] / "src" / "pointsam" / "assets" / "example_table.ply"


def box_surface(rng, n, lo, hi):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    size = hi - lo
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]]).repeat(2)
    face = rng.choice(6, n, p=areas / areas.sum())
    pts = lo + rng.random((n, 3)) * size
    axis, side = face // 2, face % 2
    pts[np.arange(n), axis] = np.where(side == 1, hi[axis], lo[axis])
    return pts


def cylinder_surface(rng, n, center, radius, height):
    theta = rng.random(n) * 2 * np.pi
    z = rng.random(n) * height
    return np.stack([center[0] + radius * np.cos(theta), center[1] + z,
                     center[2] + radius * np.sin(theta)], 1)


def sphere_surface(rng, n, center, radius):
    v = rng.normal(size=(n, 3))
    return np.asarray(center) + radius * v / np.linalg.norm(v, axis=1, keepdims=True)


def main() -> None:
    rng = np.random.default_rng(7)
    parts = [  # (points, rgb, label); y is up, units are metres
        (box_surface(rng, 5000, [-0.6, 0.70, -0.4], [0.6, 0.75, 0.4]), (150, 100, 60), 0),
    ]
    for i, (x, z) in enumerate([(-0.55, -0.35), (0.55, -0.35), (-0.55, 0.35), (0.55, 0.35)]):
        parts.append((box_surface(rng, 700, [x - 0.03, 0.0, z - 0.03], [x + 0.03, 0.70, z + 0.03]),
                      (110, 70, 40), 1 + i))
    parts.append((cylinder_surface(rng, 1500, (0.2, 0.75, 0.0), 0.05, 0.12), (230, 230, 240), 5))
    parts.append((sphere_surface(rng, 1500, (-0.25, 0.83, 0.1), 0.08), (200, 40, 40), 6))
    xyz = np.concatenate([p[0] for p in parts]).astype(np.float32)
    rgb = np.concatenate([np.tile(np.array(p[1], np.uint8), (len(p[0]), 1)) for p in parts])
    rgb = np.clip(rgb.astype(int) + rng.integers(-12, 13, rgb.shape), 0, 255).astype(np.uint8)
    label = np.concatenate([np.full(len(p[0]), p[2], np.int32) for p in parts])
    vertex = np.empty(len(xyz), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"),
                                       ("green", "u1"), ("blue", "u1"), ("label", "i4")])
    for i, k in enumerate("xyz"):
        vertex[k] = xyz[:, i]
    for i, k in enumerate(("red", "green", "blue")):
        vertex[k] = rgb[:, i]
    vertex["label"] = label
    OUT.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(OUT))
    print(f"wrote {OUT} ({len(xyz)} points; labels: 0 top, 1-4 legs, 5 mug, 6 ball)")


if __name__ == "__main__":
    main()
