"""Exact k-nearest-neighbour search: a chunked plain-torch reference and a KD-tree fast path.

`knn_reference` runs on any device; `knn` dispatches to scipy's KD-tree on CPU (distances
recomputed with the reference formula, so the two agree) and to the reference elsewhere.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pointsam.errors import InputError

KNN_METHODS = ("auto", "reference", "torch", "kdtree")  # "torch" = "reference"

# Budget for the [B, l, n] float temporaries of the torch reference (a few live at once).
_TORCH_CHUNK_ELEMS = 1 << 23  # 8M elements = 32 MB per float32 temporary


def check_xyz(name: str, t: object, last: int | None = 3, floating: bool = True) -> Tensor:
    """Validate a batched point tensor of shape [B, N, last] (any last size when last is None)."""
    if not isinstance(t, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    want = "[B, N, 3]" if last == 3 else ("[B, N, C]" if last is None else f"[B, N, {last}]")
    if t.dim() != 3 or (last is not None and t.shape[-1] != last):
        hint = " (add a batch dimension with .unsqueeze(0))" if t.dim() == 2 else ""
        raise InputError(f"{name}: expected shape {want}, got {list(t.shape)}{hint}")
    if floating and not t.is_floating_point():
        raise InputError(f"{name}: expected a floating-point tensor, got {t.dtype}")
    return t


def check_index(name: str, t: object, batch: int, last: int | None = None) -> Tensor:
    """Validate a batched integer index tensor of shape [B, M, K]."""
    if not isinstance(t, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 3 or t.shape[0] != batch or (last is not None and t.shape[-1] != last):
        k = "K" if last is None else str(last)
        raise InputError(f"{name}: expected shape [{batch}, M, {k}], got {list(t.shape)}")
    if t.dtype not in (torch.int64, torch.int32):
        raise InputError(f"{name}: expected an int64 (or int32) index tensor, got {t.dtype}")
    return t


def _common_float(*ts: Tensor) -> torch.dtype:
    dtype = torch.promote_types(*(t.dtype for t in ts)) if len(ts) > 1 else ts[0].dtype
    return torch.float64 if dtype == torch.float64 else torch.float32


def _sqdist(q: Tensor, p: Tensor) -> Tensor:
    """Exact squared distances [B, l, n] by difference, summed x, y, z in that order."""
    d = q[:, :, None, 0] - p[:, None, :, 0]
    out = d * d
    for c in (1, 2):
        torch.sub(q[:, :, None, c], p[:, None, :, c], out=d)
        out.add_(d.mul_(d))  # no FMA: (dx*dx + dy*dy) + dz*dz, each rounded
    return out


def _knn_torch(query: Tensor, points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact difference-based distances + topk, chunked over L and N."""
    B, L, _ = query.shape
    N = points.shape[1]
    n_chunk = max(k, min(N, _TORCH_CHUNK_ELEMS // max(B, 1)))
    l_chunk = max(1, _TORCH_CHUNK_ELEMS // (max(B, 1) * min(N, n_chunk)))
    out_d = torch.empty(B, L, k, dtype=query.dtype, device=query.device)
    out_i = torch.empty(B, L, k, dtype=torch.long, device=query.device)
    for ls in range(0, L, l_chunk):
        q = query[:, ls : ls + l_chunk]
        best_d: Tensor | None = None
        best_i: Tensor | None = None
        for ns in range(0, N, n_chunk):
            d = _sqdist(q, points[:, ns : ns + n_chunk])
            kk = min(k, d.shape[-1])
            dv, di = torch.topk(d, kk, dim=-1, largest=False, sorted=True)
            di += ns
            if best_d is None:
                best_d, best_i = dv, di
            else:
                dv = torch.cat([best_d, dv], dim=-1)
                di = torch.cat([best_i, di], dim=-1)
                dv, sel = torch.topk(dv, k, dim=-1, largest=False, sorted=True)
                best_d, best_i = dv, torch.gather(di, -1, sel)
        out_d[:, ls : ls + l_chunk] = best_d
        out_i[:, ls : ls + l_chunk] = best_i
    return out_d, out_i


def _knn_kdtree(query: Tensor, points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Fast path: scipy cKDTree on `points`, distances recomputed exactly in the input dtype."""
    from scipy.spatial import cKDTree

    dev = query.device
    q_np = query.detach().cpu().numpy()
    p_np = points.detach().cpu().numpy()
    B, L, _ = q_np.shape
    out_d = np.empty((B, L, k), dtype=q_np.dtype)
    out_i = np.empty((B, L, k), dtype=np.int64)
    for b in range(B):
        tree = cKDTree(p_np[b], leafsize=16, balanced_tree=False, compact_nodes=False)
        _, idx = tree.query(q_np[b], k=k, workers=-1)
        idx = np.asarray(idx, dtype=np.int64).reshape(L, k)
        nb = p_np[b][idx]  # [L, k, 3]
        qb = q_np[b][:, None, :]
        dx = qb[..., 0] - nb[..., 0]
        dy = qb[..., 1] - nb[..., 1]
        dz = qb[..., 2] - nb[..., 2]
        d = dx * dx + dy * dy + dz * dz  # same formula and dtype as the torch reference
        if k > 1:  # float64 tree order vs recomputed values: re-sort stably (near-ties only)
            order = np.argsort(d, axis=1, kind="stable")
            d = np.take_along_axis(d, order, axis=1)
            idx = np.take_along_axis(idx, order, axis=1)
        out_d[b] = d
        out_i[b] = idx
    return torch.from_numpy(out_d).to(dev), torch.from_numpy(out_i).to(dev)


def knn(query: Tensor, points: Tensor, k: int, method: str = "auto") -> tuple[Tensor, Tensor]:
    """Exact k nearest `points` of each `query` point: (squared distances, indices), ascending.

    method: 'auto' (KD-tree on CPU, reference elsewhere), 'reference' or 'kdtree'.
    """
    check_xyz("query", query)
    check_xyz("points", points)
    if method not in KNN_METHODS:
        raise InputError(f"knn: unknown method {method!r}; expected one of {KNN_METHODS}")
    if query.shape[0] != points.shape[0]:
        raise InputError(f"knn: batch sizes differ: query has {query.shape[0]}, points has {points.shape[0]}")
    if query.device != points.device:
        raise InputError(f"knn: query on {query.device} but points on {points.device}")
    N = points.shape[1]
    if not isinstance(k, int) or k < 1 or k > N:
        raise InputError(f"knn: k must be an integer in [1, N={N}] (number of points), got {k}")
    dtype = _common_float(query, points)
    query = query.to(dtype).contiguous()
    points = points.to(dtype).contiguous()
    if method == "auto":
        method = "torch" if query.device.type != "cpu" else "kdtree"
    if query.shape[1] == 0:
        return (
            torch.empty(query.shape[0], 0, k, dtype=dtype, device=query.device),
            torch.empty(query.shape[0], 0, k, dtype=torch.long, device=query.device),
        )
    if method in ("torch", "reference"):
        return _knn_torch(query, points, k)
    return _knn_kdtree(query, points, k)


def knn_reference(query: Tensor, points: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Plain-torch twin of `knn` (chunked exact distances + topk) on any device."""
    return knn(query, points, k, method="reference")


def gather_groups(points: Tensor, idx: Tensor) -> Tensor:
    """Batched gather: out[b, l, j] = points[b, idx[b, l, j]], shape [B, L, K, C]."""
    check_xyz("points", points, last=None, floating=False)
    B, N, C = points.shape
    check_index("idx", idx, B)
    _, L, K = idx.shape
    flat = idx.to(device=points.device, dtype=torch.long).reshape(B, L * K)
    if B > 1:
        flat = flat + torch.arange(B, device=points.device)[:, None] * N
    out = points.reshape(B * N, C).index_select(0, flat.reshape(-1))
    return out.reshape(B, L, K, C)
