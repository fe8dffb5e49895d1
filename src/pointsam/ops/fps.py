"""Farthest point sampling with the official semantics (start at index 0, float32 distances).

`farthest_point_sampling_reference` is the plain loop: squared distance dx*dx + dy*dy + dz*dz in
float32, running minimum, first index of the maximum. `farthest_point_sampling` gives exactly the
same picks: on CPU through fpsample's single-threaded compiled loop (`fps_sampling`), on other
devices through the reference loop. fpsample keeps the *last* of tied maxima, so it runs on the
reversed cloud from its last point: the last tied index there is the first one here (ties are
common in voxelised scans and duplicated points; tests/test_ops.py checks grids and duplicates).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from pointsam.errors import InputError
from pointsam.ops.knn import check_xyz

FPS_METHODS = ("auto", "reference", "bucket")


def farthest_point_sampling_reference(xyz: Tensor, num_samples: int) -> Tensor:
    """Plain torch FPS from index 0 on any device; LongTensor [B, num_samples]."""
    B, N, _ = xyz.shape
    x, y, z = (xyz[..., c].float().contiguous() for c in range(3))
    out = torch.zeros(B, num_samples, dtype=torch.long, device=xyz.device)
    dist = torch.full((B, N), float("inf"), dtype=torch.float32, device=xyz.device)
    last = torch.zeros(B, 1, dtype=torch.long, device=xyz.device)
    for i in range(1, num_samples):
        dx, dy, dz = (c - c.gather(1, last) for c in (x, y, z))
        d = (dx * dx + dy * dy) + dz * dz
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


def _fps_bucket(xyz: Tensor, num_samples: int) -> Tensor:
    """fpsample QuickFPS: an exact FPS sequence, but from a start point of its own (opt-in only)."""
    import fpsample

    pts = xyz.detach().to("cpu", torch.float32).numpy()
    B, N, _ = pts.shape
    h = 3 if N < 50_000 else (5 if N < 500_000 else 7)
    h = max(1, min(h, int(np.log2(max(N, 2))) - 1))
    out = np.stack([fpsample.bucket_fps_kdline_sampling(p, num_samples, h) for p in pts])
    return torch.from_numpy(out.astype(np.int64)).to(xyz.device)


def farthest_point_sampling(xyz: Tensor, num_samples: int, method: str = "auto") -> Tensor:
    """Farthest point sampling from index 0 (official picks); returns LongTensor [B, num_samples].

    method: 'auto' (fpsample on CPU, the reference loop elsewhere; both exact), 'reference', or
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
        return _fps_fpsample(xyz, num_samples)
    return farthest_point_sampling_reference(xyz, num_samples)
