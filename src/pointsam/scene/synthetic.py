"""Synthetic scenes of many separated objects (tests and benchmarks of scene-scale inference)."""

from __future__ import annotations

import numpy as np


def separated_objects(num_points: int, num_objects: int, *, spacing: float = 3.0, ground: bool = False,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, spheres and cylinders (surfaces, 0.4-1.6 units across) on a jittered grid `spacing` apart.

    Returns xyz (N, 3) float32, rgb (N, 3) uint8 (one colour per object) and instance (N,) int32
    (-1 for the optional ground plane). Points are split among objects by surface area.
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(num_objects)))
    cells = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)
    centres = np.zeros((num_objects, 3))
    centres[:, :2] = cells[:num_objects] * spacing + rng.uniform(-0.3, 0.3, (num_objects, 2))
    sizes = rng.uniform(0.4, 1.6, (num_objects, 3))
    kinds = rng.integers(0, 3, num_objects)
    area = sizes.prod(axis=1) ** (2 / 3)
    n_ground = int(num_points * 0.2) if ground else 0
    counts = np.maximum(rng.multinomial(num_points - n_ground - 16 * num_objects, area / area.sum()) + 16, 16)
    xyz = np.empty((num_points, 3), np.float32)
    inst = np.empty(num_points, np.int32)
    rgb = np.empty((num_points, 3), np.uint8)
    colours = rng.integers(30, 256, (num_objects, 3))
    start = 0
    for i in range(num_objects):
        n = int(counts[i])
        pts = _surface(kinds[i], n, rng) * sizes[i] / 2
        pts[:, 2] += sizes[i, 2] / 2 + 0.05
        xyz[start:start + n] = pts + centres[i]
        inst[start:start + n] = i
        rgb[start:start + n] = np.clip(colours[i] + rng.normal(0, 8, (n, 3)), 0, 255)
        start += n
    if n_ground:
        extent = side * spacing
        plane = rng.uniform(-spacing / 2, extent - spacing / 2, (n_ground, 2))
        xyz[start:] = np.column_stack([plane, np.zeros(n_ground)])
        inst[start:] = -1
        rgb[start:] = 120
    return xyz, rgb, inst


def _surface(kind: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points on a unit box (0), sphere (1) or cylinder (2) surface, in [-1, 1]^3."""
    if kind == 1:
        v = rng.normal(size=(n, 3))
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    if kind == 2:
        t = rng.uniform(0, 2 * np.pi, n)
        return np.column_stack([np.cos(t), np.sin(t), rng.uniform(-1, 1, n)])
    pts = rng.uniform(-1, 1, (n, 3))
    axis = rng.integers(0, 3, n)
    pts[np.arange(n), axis] = rng.choice([-1.0, 1.0], n)
    return pts
