"""Training samples: normalise, subsample and augment one `LabelledCloud` (official `transforms.py`).

Order as in the official pipeline: unit-sphere normalisation, colours to [-1, 1], pick
`masks_per_cloud` masks, sample `num_points` points, random scale, small x/y/z perturbation,
random rotation about y. Unlike the official loader, clouds smaller than `num_points` are sampled
with replacement instead of crashing, and a picked mask that loses all its points in the
subsample gets one of its points back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import Tensor

from pointsam.data import LabelledCloud
from pointsam.errors import InputError
from pointsam.preprocessing import normalize_points

__all__ = ["TrainSample", "collate", "make_sample", "normalize_points", "rotation_matrix"]

SCALE_RANGE = (0.8, 1.0)
PERTURB_STD = 0.06
PERTURB_CLIP = 0.18


@dataclass
class TrainSample:
    """One augmented training cloud: coords/features [N, 3] float32, gt [M, N] bool."""

    coords: Tensor
    features: Tensor
    gt: Tensor


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """Rotation R = Rx·Ry·Rz for intrinsic Euler angles "XYZ" (radians), applied as xyz @ R.T.

    scipy's `Rotation` is the one Euler-angle implementation (URDF's fixed-axis rpy is "xyz").
    """
    return Rotation.from_euler("XYZ", np.asarray(angles, np.float64).reshape(3)).as_matrix()


def _pick_masks(cloud: LabelledCloud, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`k` distinct masks at random, or all of them repeated cyclically (shuffled) when fewer."""
    m = cloud.num_masks
    if m == 0:
        raise InputError(f"cloud {cloud.name!r} has no masks to train on")
    if m >= k:
        order = rng.choice(m, size=k, replace=False)
    else:
        order = np.resize(rng.permutation(m), k)
    return [cloud.masks[int(i)] for i in order]


def make_sample(
    cloud: LabelledCloud,
    num_points: int,
    masks_per_cloud: int,
    rng: np.random.Generator,
    augment: bool = True,
    perturb: bool = True,
) -> TrainSample:
    """Normalised, subsampled and (optionally) augmented sample of `cloud`, deterministic given `rng`."""
    if num_points < 1 or masks_per_cloud < 1:
        raise InputError(
            f"num_points and masks_per_cloud must be positive, got {num_points}, {masks_per_cloud}"
        )
    n = cloud.num_points
    if n == 0:
        raise InputError(f"cloud {cloud.name!r} has no points")
    xyz = normalize_points(cloud.xyz)
    if cloud.rgb is None:
        rgb = np.zeros((n, 3))  # grey: (0.5 - 0.5) / 0.5
    else:
        rgb = (cloud.rgb.astype(np.float64) / 255.0 - 0.5) / 0.5
    masks = _pick_masks(cloud, masks_per_cloud, rng)
    idx = rng.choice(n, size=num_points, replace=n < num_points)
    dense = np.zeros((len(masks), n), dtype=bool)
    for row, m in zip(dense, masks, strict=True):
        row[m] = True
    gt = dense[:, idx]
    for j in np.flatnonzero(~gt.any(axis=1)):
        # The picked mask lost all its points: put one back, preferably over a background point,
        # never over the last point of another mask.
        counts = gt.sum(axis=1)
        background = np.flatnonzero(~gt.any(axis=0))
        free = background if len(background) else np.flatnonzero(~gt[counts == 1].any(axis=0))
        if len(free) == 0:
            raise InputError(f"num_points={num_points} is too small to keep {len(masks)} masks non-empty")
        idx[int(rng.choice(free))] = int(rng.choice(masks[j]))
        gt = dense[:, idx]
    xyz, rgb = xyz[idx], rgb[idx]
    if augment:
        xyz = xyz * rng.uniform(*SCALE_RANGE)
        if perturb:
            angles = np.clip(rng.normal(0.0, PERTURB_STD, size=3), -PERTURB_CLIP, PERTURB_CLIP)
            xyz = xyz @ rotation_matrix(angles).T
        theta = rng.uniform(-np.pi, np.pi)
        xyz = xyz @ rotation_matrix(np.array([0.0, theta, 0.0])).T
    return TrainSample(
        torch.from_numpy(xyz.astype(np.float32)),
        torch.from_numpy(rgb.astype(np.float32)),
        torch.from_numpy(gt),
    )


def collate(samples: Sequence[TrainSample]) -> TrainSample:
    """Stack B samples of equal N and M into coords/features [B, N, 3] and gt [B, M, N]."""
    if not samples:
        raise InputError("collate needs at least one sample")
    shapes = {tuple(s.gt.shape) for s in samples}
    if len(shapes) != 1:
        raise InputError(f"samples differ in (M, N): {sorted(shapes)}")
    return TrainSample(
        torch.stack([s.coords for s in samples]),
        torch.stack([s.features for s in samples]),
        torch.stack([s.gt for s in samples]),
    )
