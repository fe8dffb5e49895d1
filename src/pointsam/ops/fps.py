"""Farthest point sampling with the official semantics (start at index 0, float32 distances).

`farthest_point_sampling_reference` is the plain loop: squared distance dx*dx + dy*dy + dz*dz in
float32, running minimum, first index of the maximum. `farthest_point_sampling` gives exactly the
same picks, on CPU by one of two single-threaded exact paths (so it never fights other processes
for cores):
- small clouds: fpsample's compiled loop (`fps_sampling`). fpsample keeps the *last* of tied
  maxima, so it runs on the reversed cloud from its last point: the last tied index there is the
  first one here (ties are common in voxelised scans and duplicated points).
- large clouds: a blocked loop in numpy. Points are sorted along a Morton curve into blocks with
  bounding boxes; a new center only updates the blocks whose box is nearer than the block's
  current largest distance (the others cannot change), so late iterations touch few points.
  Distances use the reference formula and a box bound that never exceeds them, so the running
  minima, the maximum and its first index are exactly the reference's.
Other devices use the reference loop. tests/test_ops.py checks all paths on grids and duplicates.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from pointsam.errors import InputError
from pointsam.ops.knn import check_xyz

FPS_METHODS = ("auto", "reference", "bucket")
BLOCKED_MIN_POINTS = 20_000  # from about here the blocked loop beats fpsample's full scans
BLOCK_SIZE = 256


def farthest_point_sampling_reference(xyz: Tensor, num_samples: int) -> Tensor:
    """Plain torch FPS from index 0 on any device; LongTensor [B, num_samples].

    d = (dx*dx + dy*dy) + dz*dz in float32 (no FMA), running minimum, first index of the maximum;
    written with in-place ops into reused buffers (this is also the GPU path).
    """
    B, N, _ = xyz.shape
    x, y, z = (xyz[..., c].float().contiguous() for c in range(3))
    out = torch.zeros(B, num_samples, dtype=torch.long, device=xyz.device)
    dist = torch.full((B, N), float("inf"), dtype=torch.float32, device=xyz.device)
    last = torch.zeros(B, 1, dtype=torch.long, device=xyz.device)
    d = torch.empty_like(dist)
    t = torch.empty_like(dist)
    for i in range(1, num_samples):
        torch.sub(x, x.gather(1, last), out=d)
        d.mul_(d)
        for c in (y, z):
            torch.sub(c, c.gather(1, last), out=t)
            d.add_(t.mul_(t))
        torch.minimum(dist, d, out=dist)
        last = torch.argmax(dist, dim=1, keepdim=True)
        out[:, i] = last[:, 0]
    return out


def _fps_fpsample(xyz: Tensor, num_samples: int) -> Tensor:
    """fpsample's vanilla FPS with the reference's start (index 0) and tie rule (first index)."""
    import fpsample

    pts = xyz.detach().to("cpu", torch.float32).numpy()
    last = pts.shape[1] - 1
    out = np.stack([last - fpsample.fps_sampling(np.ascontiguousarray(p[::-1]), num_samples,
                                                 start_idx=last).astype(np.int64) for p in pts])
    return torch.from_numpy(out).to(xyz.device)


def _morton_order(p: np.ndarray) -> np.ndarray:
    """Indices sorting points [N, 3] along a 10-bit-per-axis Morton (Z-order) curve."""
    lo = p.min(0)
    extent = max(float((p.max(0) - lo).max()), 1e-30)
    q = np.clip(((p - lo) / extent * 1023).astype(np.int64), 0, 1023)

    def spread(v: np.ndarray) -> np.ndarray:  # insert two zero bits between the 10 bits of v
        v = (v | (v << 16)) & 0x030000FF
        v = (v | (v << 8)) & 0x0300F00F
        v = (v | (v << 4)) & 0x030C30C3
        return (v | (v << 2)) & 0x09249249

    return np.argsort(spread(q[:, 0]) | (spread(q[:, 1]) << 1) | (spread(q[:, 2]) << 2), kind="stable")


def _fps_blocked_one(p: np.ndarray, num_samples: int, block: int = BLOCK_SIZE) -> np.ndarray:
    """Exact FPS of one cloud p [N, 3] float32 from index 0, updating only reachable blocks.

    numpy on purpose: its element-wise ops are single-threaded, so this loop of small steps
    never waits on a thread pool that other processes keep busy.
    """
    n = p.shape[0]
    order = _morton_order(p)
    nb = (n + block - 1) // block
    pad = nb * block - n
    if pad:  # fill the last block with copies of its last point, never eligible (distance -1)
        order = np.concatenate([order, np.full(pad, order[-1])])
    x, y, z = (np.ascontiguousarray(p[order, axis].reshape(nb, block)) for axis in range(3))
    orig = order.reshape(nb, block).copy()
    dist = np.full((nb, block), np.inf, dtype=np.float32)
    if pad:
        dist.reshape(-1)[n:] = -1.0
        orig.reshape(-1)[n:] = n
    box_lo = np.stack([x.min(1), y.min(1), z.min(1)], axis=1)
    box_hi = np.stack([x.max(1), y.max(1), z.max(1)], axis=1)
    block_max = np.full(nb, np.inf, dtype=np.float32)  # largest running distance in each block
    block_first = orig.min(1)  # smallest original index holding it
    out = np.zeros(num_samples, dtype=np.int64)
    last = 0
    for i in range(1, num_samples):
        c = p[last]
        gap = np.maximum(box_lo - c, 0) + np.maximum(c - box_hi, 0)
        gap *= gap
        bound = (gap[:, 0] + gap[:, 1]) + gap[:, 2]  # <= every distance from c into the block
        sel = np.flatnonzero(bound <= block_max)
        d = x[sel] - c[0]
        d *= d
        for coord, value in ((y, c[1]), (z, c[2])):
            t = coord[sel] - value
            t *= t
            d += t
        np.minimum(dist[sel], d, out=d)
        dist[sel] = d
        m = d.max(1)
        block_max[sel] = m
        block_first[sel] = np.where(d == m[:, None], orig[sel], n).min(1)
        last = int(block_first[block_max == block_max.max()].min())
        out[i] = last
    return out


def _fps_bucket(xyz: Tensor, num_samples: int) -> Tensor:
    """fpsample QuickFPS: an exact FPS sequence from point 0 (deterministic; ties may differ from the
    official loop, so opt-in only)."""
    import fpsample

    pts = xyz.detach().to("cpu", torch.float32).numpy()
    B, N, _ = pts.shape
    h = 3 if N < 50_000 else (5 if N < 500_000 else 7)
    h = max(1, min(h, int(np.log2(max(N, 2))) - 1))
    out = np.stack([fpsample.bucket_fps_kdline_sampling(p, num_samples, h, start_idx=0) for p in pts])
    return torch.from_numpy(out.astype(np.int64)).to(xyz.device)


def farthest_point_sampling(xyz: Tensor, num_samples: int, method: str = "auto") -> Tensor:
    """Farthest point sampling from index 0 (official picks); returns LongTensor [B, num_samples].

    method: 'auto' (exact fast paths on CPU, the reference loop elsewhere), 'reference', or
    'bucket' (fpsample's QuickFPS: much faster, exact FPS but NOT the official start point).
    """
    check_xyz("xyz", xyz)
    if method in ("torch", "numba"):  # names of the removed numba era
        warnings.warn(f"farthest_point_sampling(method={method!r}) is deprecated; use 'auto' or "
                      "'reference'", DeprecationWarning, stacklevel=2)
        method = "reference" if method == "torch" else "auto"
    if method not in FPS_METHODS:
        raise InputError(f"farthest_point_sampling: unknown method {method!r}; expected one of {FPS_METHODS}")
    N = xyz.shape[1]
    if isinstance(num_samples, bool) or not isinstance(num_samples, int):
        raise InputError(f"farthest_point_sampling: num_samples must be an int, got {num_samples!r}")
    if num_samples < 1 or num_samples > N:
        raise InputError(
            f"farthest_point_sampling: num_samples must be in [1, N={N}] (number of points), "
            f"got {num_samples}"
        )
    if method == "bucket":
        return _fps_bucket(xyz, num_samples)
    if method == "auto" and xyz.device.type == "cpu":
        if N < BLOCKED_MIN_POINTS:
            return _fps_fpsample(xyz, num_samples)
        pts = xyz.detach().to("cpu", torch.float32).numpy()
        out = np.stack([_fps_blocked_one(np.ascontiguousarray(p), num_samples) for p in pts])
        return torch.from_numpy(out).to(xyz.device)
    return farthest_point_sampling_reference(xyz, num_samples)
