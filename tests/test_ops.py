"""Geometry ops: fast paths against plain-torch references, known answers, bad input."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam.ops import (
    farthest_point_sampling,
    farthest_point_sampling_reference,
    gather_groups,
    interpolate,
    interpolate_reference,
    knn,
    knn_reference,
    mask_logits,
    mask_logits_reference,
    pointnet,
    pointnet_reference,
    three_nn_interpolation_weights,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCENE = DATA / "scannet" / "scene0011_00" / "coord.npy"


@pytest.fixture(scope="module")
def scene() -> torch.Tensor:
    """20k points of a real ScanNet scene, [1, 20000, 3] float32."""
    if not SCENE.exists():
        pytest.skip(f"real-data test needs {SCENE} (shared data directory is absent)")
    xyz = np.load(SCENE).astype(np.float32)
    sel = np.random.default_rng(0).choice(len(xyz), 20_000, replace=False)
    return torch.from_numpy(xyz[sel])[None]


def _rand(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) * 2 - 1) * scale


# ---------------------------------------------------------------------------- FPS


@pytest.mark.parametrize("n,m", [(1, 1), (7, 7), (1000, 64), (30_000, 300)])
def test_fps_matches_reference_random(n: int, m: int) -> None:
    xyz = _rand(2, n, 3, seed=n, scale=5.0)
    ref = farthest_point_sampling_reference(xyz, m)
    fast = farthest_point_sampling(xyz, m)  # CPU: fpsample, start 0
    assert ref.dtype == fast.dtype == torch.long and ref.shape == (2, m)
    assert torch.equal(ref, fast)
    assert (ref[:, 0] == 0).all()
    assert all(len(set(r.tolist())) == m for r in ref)  # distinct points -> unique picks


def test_fps_matches_reference_real_scene(scene: torch.Tensor) -> None:
    ref = farthest_point_sampling_reference(scene, 512)
    fast = farthest_point_sampling(scene, 512)
    assert torch.equal(ref, fast)
    assert ref[0, 0] == 0 and len(set(ref[0].tolist())) == 512


def test_fps_old_method_names_warn() -> None:
    xyz = _rand(1, 50, 3)
    with pytest.warns(DeprecationWarning):
        old = farthest_point_sampling(xyz, 8, method="numba")
    assert torch.equal(old, farthest_point_sampling_reference(xyz, 8))


def test_fps_known_answer_on_a_line() -> None:
    xs = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, 10.0, 6.0])
    xyz = torch.stack([xs, torch.zeros(7), torch.zeros(7)], dim=-1)[None]
    # from 0: farthest is 10 (idx 5); then min-dist max is 4 or 6 -> 6 is 4 from 10, 4 is 4 from 0
    # -> tie between idx 4 (x=4, d=min(16,36)=16) and idx 6 (x=6, d=min(36,16)=16): first wins.
    for method in ("auto", "reference"):
        assert farthest_point_sampling(xyz, 4, method=method)[0].tolist() == [0, 5, 4, 2]


def test_fps_duplicates_and_all_zero_distances() -> None:
    xyz = torch.zeros(1, 5, 3)
    for method in ("auto", "reference"):
        idx = farthest_point_sampling(xyz, 3, method=method)
        assert idx[0].tolist() == [0, 0, 0]  # argmax of all-zero running min -> first index


def _is_fps_sequence(xyz: np.ndarray, seq: np.ndarray) -> bool:
    """Each pick after the first is (one of) the farthest points from those already picked."""
    d = ((xyz - xyz[seq[0]]) ** 2).sum(-1)
    for nxt in seq[1:]:
        if d[nxt] < d.max() * (1 - 1e-6):
            return False
        d = np.minimum(d, ((xyz - xyz[nxt]) ** 2).sum(-1))
    return True


def test_fps_bucket_is_an_exact_fps_sequence() -> None:
    xyz = _rand(1, 3000, 3, seed=3)
    idx = farthest_point_sampling(xyz, 128, method="bucket")
    assert idx.shape == (1, 128) and len(set(idx[0].tolist())) == 128
    assert _is_fps_sequence(xyz[0].double().numpy(), idx[0].numpy())
    ref = farthest_point_sampling_reference(xyz, 128)
    assert _is_fps_sequence(xyz[0].double().numpy(), ref[0].numpy())


def test_fps_bad_inputs() -> None:
    xyz = _rand(1, 10, 3)
    with pytest.raises(ValueError, match=r"num_samples must be in \[1, N=10\]"):
        farthest_point_sampling(xyz, 11)
    with pytest.raises(ValueError, match="num_samples"):
        farthest_point_sampling(xyz, 0)
    with pytest.raises(ValueError, match=r"expected shape \[B, N, 3\]"):
        farthest_point_sampling(xyz[0], 5)
    with pytest.raises(ValueError, match=r"expected shape \[B, N, 3\]"):
        farthest_point_sampling(_rand(1, 10, 4), 5)
    with pytest.raises(ValueError, match="unknown method"):
        farthest_point_sampling(xyz, 5, method="cuda")


# ---------------------------------------------------------------------------- kNN


def _check_knn_agree(query: torch.Tensor, points: torch.Tensor, k: int) -> None:
    d_ref, i_ref = knn_reference(query, points, k)
    d_kd, i_kd = knn(query, points, k)  # CPU: KD-tree
    assert d_ref.shape == i_ref.shape == d_kd.shape == i_kd.shape == (*query.shape[:2], k)
    assert i_kd.dtype == torch.long and d_kd.dtype == query.dtype
    torch.testing.assert_close(d_kd, d_ref, atol=1e-6, rtol=1e-6)
    assert (d_kd[..., 1:] >= d_kd[..., :-1]).all() and (d_ref[..., 1:] >= d_ref[..., :-1]).all()
    # distances are exactly those of the returned indices
    for d, i in ((d_ref, i_ref), (d_kd, i_kd)):
        nb = gather_groups(points, i)
        exact = ((nb - query[:, :, None]) ** 2).sum(-1)
        torch.testing.assert_close(d, exact, atol=1e-6, rtol=1e-6)
    # index sets agree wherever the k-th / (k+1)-th distances are not tied
    d_all = ((query[:, :, None] - points[:, None]) ** 2).sum(-1)
    if k < points.shape[1]:
        kth = d_all.topk(k + 1, dim=-1, largest=False).values
        untied = (kth[..., k] - kth[..., k - 1]) > 1e-5
    else:
        untied = torch.ones(query.shape[:2], dtype=torch.bool)
    a = i_ref.sort(-1).values[untied]
    b = i_kd.sort(-1).values[untied]
    assert untied.float().mean() > 0.9 and torch.equal(a, b)


@pytest.mark.parametrize("b,m,n,k", [(1, 64, 500, 1), (2, 100, 3000, 16), (1, 37, 37, 37)])
def test_knn_kdtree_matches_torch(b: int, m: int, n: int, k: int) -> None:
    points = _rand(b, n, 3, seed=n, scale=5.0)
    query = _rand(b, m, 3, seed=m + 1, scale=5.0)
    _check_knn_agree(query, points, k)


def test_knn_real_scene(scene: torch.Tensor) -> None:
    centers = scene[:, farthest_point_sampling(scene, 128)[0]]
    _check_knn_agree(centers, scene, 64)
    d, i = knn(centers, scene, 1)
    assert (d[..., 0] == 0).all()  # centers are members of the cloud


def test_knn_torch_chunking_matches_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    knn_mod = importlib.import_module("pointsam.ops.knn")  # the name `knn` is the function

    points = _rand(2, 700, 3, seed=5)
    query = _rand(2, 50, 3, seed=6)
    d_big, i_big = knn_reference(query, points, 10)
    monkeypatch.setattr(knn_mod, "_TORCH_CHUNK_ELEMS", 256)  # forces chunks over both L and N
    d_small, i_small = knn_reference(query, points, 10)
    torch.testing.assert_close(d_small, d_big, atol=0, rtol=0)
    assert torch.equal(i_small.sort(-1).values, i_big.sort(-1).values)


def test_knn_bad_inputs() -> None:
    points = _rand(1, 10, 3)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, N=10\]"):
        knn(points, points, 11)
    with pytest.raises(ValueError, match="k must be"):
        knn(points, points, 0)
    with pytest.raises(ValueError, match=r"expected shape \[B, N, 3\]"):
        knn(points[0], points, 3)
    with pytest.raises(ValueError, match="batch sizes differ"):
        knn(_rand(2, 4, 3), points, 3)
    with pytest.raises(ValueError, match="unknown method"):
        knn(points, points, 3, method="faiss")


def test_gather_groups() -> None:
    points = _rand(2, 20, 5)
    idx = torch.randint(0, 20, (2, 4, 3), generator=torch.Generator().manual_seed(0))
    out = gather_groups(points, idx)
    assert out.shape == (2, 4, 3, 5)
    for b in range(2):
        assert torch.equal(out[b], points[b][idx[b]])


# ---------------------------------------------------------------------------- interpolation


@pytest.mark.parametrize("method", ["reference", "kdtree"])
def test_three_nn_weights(method: str) -> None:
    centers = _rand(2, 32, 3, seed=1, scale=3.0)
    points = torch.cat([_rand(2, 200, 3, seed=2, scale=3.0), centers[:, :5]], dim=1)
    idx, w = three_nn_interpolation_weights(points, centers, method=method)
    assert idx.shape == w.shape == (2, 205, 3) and idx.dtype == torch.long
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 205))
    assert (w >= 0).all()
    # points coinciding with a center put (almost) all weight on it
    assert torch.equal(idx[:, 200:, 0], torch.arange(5).expand(2, 5))
    assert (w[:, 200:, 0] > 0.999).all()
    # formula check against the naive definition
    d2 = ((gather_groups(centers, idx) - points[:, :, None]) ** 2).sum(-1)
    r = 1.0 / d2.clamp_min(1e-8)
    torch.testing.assert_close(w, r / r.sum(-1, keepdim=True), atol=1e-6, rtol=1e-5)


def test_three_nn_weights_methods_agree() -> None:
    centers = _rand(1, 64, 3, seed=7)
    points = _rand(1, 1000, 3, seed=8)
    _, w_t = three_nn_interpolation_weights(points, centers, method="reference")
    _, w_k = three_nn_interpolation_weights(points, centers, method="kdtree")
    torch.testing.assert_close(w_t, w_k, atol=1e-5, rtol=1e-5)


def test_three_nn_weights_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least 3 centers"):
        three_nn_interpolation_weights(_rand(1, 10, 3), _rand(1, 2, 3))
    with pytest.raises(ValueError, match=r"expected shape \[B, N, 3\]"):
        three_nn_interpolation_weights(_rand(10, 3), _rand(1, 5, 3))


def test_interpolate_matches_naive() -> None:
    feats = _rand(2, 16, 8, seed=9)
    idx = torch.randint(0, 16, (2, 50, 3), generator=torch.Generator().manual_seed(1))
    w = torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(2))
    naive = torch.zeros(2, 50, 8)
    for b in range(2):
        for n in range(50):
            for j in range(3):
                naive[b, n] += w[b, n, j] * feats[b, idx[b, n, j]]
    torch.testing.assert_close(interpolate(feats, idx, w), naive)
    torch.testing.assert_close(interpolate_reference(feats, idx, w), naive)
    # callers may pass slices of idx / weight
    torch.testing.assert_close(interpolate(feats, idx[:, 10:30], w[:, 10:30]), naive[:, 10:30])
    # autograd path gives the same values and gradients flow
    f = feats.clone().requires_grad_(True)
    out = interpolate(f, idx, w)
    torch.testing.assert_close(out, naive)
    out.sum().backward()
    assert f.grad is not None and f.grad.shape == f.shape


def test_interpolate_bad_inputs() -> None:
    feats = _rand(1, 16, 8)
    idx = torch.zeros(1, 5, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="same as idx"):
        interpolate(feats, idx, torch.ones(1, 5, 2))
    with pytest.raises(ValueError, match="idx: expected shape"):
        interpolate(feats, idx[0], torch.ones(5, 3))
    with pytest.raises(ValueError, match="index tensor"):
        interpolate(feats, idx.float(), torch.ones(1, 5, 3))


# ---------------------------------------------------------------------------- network fast paths


def _mlp(i: int, h: int, o: int, *tail: torch.nn.Module) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(i, h), torch.nn.LayerNorm(h), torch.nn.GELU(),
                               torch.nn.Linear(h, o), *tail)


@pytest.mark.parametrize("shape", [(1, 3, 5, 6), (2, 40, 64, 6), (1, 300, 32, 4)])
def test_pointnet_matches_reference(shape, monkeypatch: pytest.MonkeyPatch) -> None:
    pn_mod = importlib.import_module("pointsam.ops.pointnet")

    torch.manual_seed(0)
    mlp1, mlp2 = _mlp(shape[-1], 16, 16), _mlp(32, 24, 20)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = pointnet_reference(x, mlp1, mlp2)
        torch.testing.assert_close(pointnet(x, mlp1, mlp2), ref, atol=1e-5, rtol=1e-5)
        monkeypatch.setattr(pn_mod, "CHUNK_POINTS", 64)  # several chunks of patches
        torch.testing.assert_close(pointnet(x, mlp1, mlp2), ref, atol=1e-5, rtol=1e-5)
    assert ref.shape == (*shape[:2], 20)
    # gradients agree too (the fast path is plain torch)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    pointnet(xa, mlp1, mlp2).square().sum().backward()
    pointnet_reference(xb, mlp1, mlp2).square().sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-4, rtol=1e-4)


def _upsample_case(p: int, n: int, shared: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(p, 40, 32, generator=g) * 3
    hyper = torch.randn(p, 3, 32, generator=g)
    idx = torch.randint(0, 40, (1 if shared else p, n, 3), generator=g)
    w = torch.rand(idx.shape, generator=g)
    return src, hyper, idx, w / w.sum(-1, keepdim=True)


@pytest.mark.parametrize(
    "p,n,shared,chunk", [(1, 5000, True, 16384), (3, 700, True, 64), (2, 333, False, 100)]
)
def test_mask_logits_matches_reference(p, n, shared, chunk) -> None:
    torch.manual_seed(1)
    up = _mlp(32, 32, 32, torch.nn.GELU())
    src, hyper, idx, w = _upsample_case(p, n, shared)
    with torch.no_grad():
        fast = mask_logits(src, hyper, idx, w, up, chunk)
        ref = mask_logits_reference(src, hyper, idx.expand(p, -1, -1), w.expand(p, -1, -1), up)
    assert fast.shape == (p, 3, n)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)


def test_mask_logits_point_on_a_center_gets_its_token() -> None:
    """A point with all weight on one center sees exactly that token through the MLP."""
    torch.manual_seed(2)
    up = _mlp(8, 8, 8, torch.nn.GELU())
    src, hyper = torch.randn(1, 5, 8), torch.randn(1, 2, 8)
    idx = torch.tensor([[[3, 0, 1]]])
    w = torch.tensor([[[1.0, 0.0, 0.0]]])
    with torch.no_grad():
        out = mask_logits(src, hyper, idx, w, up)
        torch.testing.assert_close(out[0, :, 0], hyper[0] @ up(src[0, 3]))


@pytest.mark.parametrize("kind", ["grid", "duplicates", "voxels"])
def test_fps_ties_keep_the_first_index(kind: str) -> None:
    """Tie-heavy clouds (integer grids, duplicated points, voxelised coordinates) pick like the loop."""
    rng = np.random.default_rng(0)
    if kind == "grid":
        pts = rng.permutation(np.stack(np.meshgrid(*[np.arange(10)] * 3), -1).reshape(-1, 3))
    elif kind == "duplicates":
        pts = np.repeat(rng.normal(size=(200, 3)), 4, axis=0)
    else:
        pts = np.round(rng.normal(size=(5000, 3)) * 10) / 10
    xyz = torch.from_numpy(pts.astype(np.float32))[None]
    assert torch.equal(farthest_point_sampling(xyz, 200), farthest_point_sampling_reference(xyz, 200))


@pytest.mark.parametrize("kind", ["grid", "duplicates", "voxels", "uniform", "one_point_blocks"])
def test_fps_blocked_path_matches_reference(kind: str) -> None:
    """The large-cloud path (Morton blocks, box bounds) picks exactly like the loop, ties included."""
    fps_mod = importlib.import_module("pointsam.ops.fps")
    rng = np.random.default_rng(1)
    if kind == "grid":
        pts = rng.permutation(np.stack(np.meshgrid(*[np.arange(12)] * 3), -1).reshape(-1, 3))
    elif kind == "duplicates":
        pts = np.repeat(rng.normal(size=(300, 3)), 5, axis=0)
    elif kind == "voxels":
        pts = np.round(rng.normal(size=(6000, 3)) * 10) / 10
    elif kind == "uniform":
        pts = rng.uniform(-5, 5, size=(8_000, 3))
    else:
        pts = rng.normal(size=(1001, 3))  # last block holds a single real point
    xyz = pts.astype(np.float32)
    ref = farthest_point_sampling_reference(torch.from_numpy(xyz)[None], 300)[0].numpy()
    for block in (1, 64, 256):
        assert np.array_equal(fps_mod._fps_blocked_one(xyz, 300, block), ref), block


def test_fps_auto_uses_blocked_path_on_large_clouds(scene: torch.Tensor) -> None:
    fps_mod = importlib.import_module("pointsam.ops.fps")
    big = torch.cat([scene, scene * 0.5 + 1.0, scene * 0.25 - 2.0], dim=1)  # 60k points
    assert big.shape[1] >= fps_mod.BLOCKED_MIN_POINTS
    assert torch.equal(farthest_point_sampling(big, 96), farthest_point_sampling_reference(big, 96))
