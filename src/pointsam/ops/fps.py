"""Farthest point sampling with the official semantics (start at index 0, float32 distances)."""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from pointsam.errors import InputError
from pointsam.ops.knn import check_xyz

FPS_METHODS = ("auto", "torch", "numba", "bucket")

# Below this many points the single-threaded numba loop beats the chunked parallel one.
_PARALLEL_MIN_POINTS = 20_000


def _fps_torch(xyz: Tensor, num_samples: int) -> Tensor:
    """Reference loop; d = dx*dx + dy*dy + dz*dz in float32, running min, first-index argmax."""
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


# Kernels live at module level so numba's on-disk cache hits (closures always recompile).
# 'nnan'/'nsz' only let LLVM vectorise the min/max loops; no 'contract' (FMA) or 'reassoc',
# so each distance is rounded exactly like the torch reference: (dx*dx + dy*dy) + dz*dz.
_FLAGS = {"nnan", "nsz"}


@numba.njit(cache=True, fastmath=_FLAGS, boundscheck=False)
def _update_chunk(x, y, z, dist, lo, hi, lx, ly, lz):  # pragma: no cover - numba
    """Running-min update of dist[lo:hi]; returns (max, first index of max) in the chunk."""
    m = np.float32(-1.0)
    for i in range(lo, hi):
        dx = x[i] - lx
        dy = y[i] - ly
        dz = z[i] - lz
        d = dx * dx + dy * dy + dz * dz
        v = min(dist[i], d)
        dist[i] = v
        m = max(m, v)
    bi = lo
    for i in range(lo, hi):
        if dist[i] == m:
            bi = i
            break
    return m, bi


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _fps_serial_kernel(x, y, z, num_samples, out):  # pragma: no cover - numba
    n = x.shape[0]
    dist = np.full(n, np.inf, dtype=np.float32)
    last = 0
    out[0] = 0
    for s in range(1, num_samples):
        _, last = _update_chunk(x, y, z, dist, 0, n, x[last], y[last], z[last])
        out[s] = last


@numba.njit(cache=True, parallel=True, boundscheck=False)
def _fps_parallel_kernel(x, y, z, num_samples, out, n_chunks):  # pragma: no cover - numba
    n = x.shape[0]
    dist = np.full(n, np.inf, dtype=np.float32)
    bestv = np.empty(n_chunks, dtype=np.float32)
    besti = np.empty(n_chunks, dtype=np.int64)
    step = (n + n_chunks - 1) // n_chunks
    last = 0
    out[0] = 0
    for s in range(1, num_samples):
        lx = x[last]
        ly = y[last]
        lz = z[last]
        for c in numba.prange(n_chunks):
            lo = c * step
            hi = min(n, lo + step)
            bestv[c], besti[c] = _update_chunk(x, y, z, dist, lo, hi, lx, ly, lz)
        bv = bestv[0]
        last = besti[0]
        for c in range(1, n_chunks):  # chunks in index order: strict > keeps first index
            if bestv[c] > bv:
                bv = bestv[c]
                last = besti[c]
        out[s] = last


def _fps_numba(xyz: Tensor, num_samples: int) -> Tensor:
    """Numba loop on CPU, float32, same picks as `_fps_torch`."""
    pts = xyz.detach().to("cpu", torch.float32).numpy()
    B, N, _ = pts.shape
    out = np.empty((B, num_samples), dtype=np.int64)
    n_threads = torch.get_num_threads()
    n_threads = min(n_threads, numba.config.NUMBA_NUM_THREADS)
    for b in range(B):
        x, y, z = (np.ascontiguousarray(pts[b, :, c]) for c in range(3))
        if N >= _PARALLEL_MIN_POINTS and n_threads > 1:
            _fps_parallel_kernel(x, y, z, num_samples, out[b], n_threads)
        else:
            _fps_serial_kernel(x, y, z, num_samples, out[b])
    return torch.from_numpy(out).to(xyz.device)


def _fps_bucket(xyz: Tensor, num_samples: int) -> Tensor:
    """fpsample QuickFPS: an exact FPS sequence from its own start point (not official picks)."""
    import fpsample

    pts = xyz.detach().to("cpu", torch.float32).numpy()
    B, N, _ = pts.shape
    h = 3 if N < 50_000 else (5 if N < 500_000 else 7)
    h = max(1, min(h, int(np.log2(max(N, 2))) - 1))
    out = np.empty((B, num_samples), dtype=np.int64)
    for b in range(B):
        out[b] = fpsample.bucket_fps_kdline_sampling(pts[b], num_samples, h)
    return torch.from_numpy(out).to(xyz.device)


def farthest_point_sampling(xyz: Tensor, num_samples: int, method: str = "auto") -> Tensor:
    """Farthest point sampling from index 0 (official semantics); returns LongTensor [B, L]."""
    check_xyz("xyz", xyz)
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
    if method == "auto":
        method = "torch" if xyz.device.type != "cpu" else "numba"
    if method == "torch":
        return _fps_torch(xyz, num_samples)
    if method == "numba":
        return _fps_numba(xyz, num_samples)
    return _fps_bucket(xyz, num_samples)
