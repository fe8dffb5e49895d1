"""Benchmark the ops: CPU fast paths against their plain-torch reference twins, same run."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

try:
    from pointsam.ops import (
        farthest_point_sampling,
        farthest_point_sampling_reference,
        interpolate,
        knn,
        knn_reference,
        mask_logits,
        mask_logits_reference,
        pointnet,
        pointnet_reference,
        three_nn_interpolation_weights,
    )
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pointsam.ops import (
        farthest_point_sampling,
        farthest_point_sampling_reference,
        interpolate,
        knn,
        knn_reference,
        mask_logits,
        mask_logits_reference,
        pointnet,
        pointnet_reference,
        three_nn_interpolation_weights,
    )


def _cloud(n: int, seed: int) -> torch.Tensor:
    """Uniform points in an 8 m x 8 m x 3 m room-sized box, [1, n, 3] float32."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, n, 3, generator=g) * torch.tensor([8.0, 8.0, 3.0])


def _subset(xyz: torch.Tensor, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return xyz[:, torch.randperm(xyz.shape[1], generator=g)[:m]].contiguous()


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _case(
    op: str,
    size: str,
    fast_name: str,
    fast: Callable[[], object],
    ref: Callable[[], object] | float,
    repeats: int,
    ref_repeats: int,
) -> dict:
    fast()  # warm-up (page-in, allocator); not timed
    fast_ms = _median_ms(fast, repeats)
    ref_ms = ref if isinstance(ref, float) else _median_ms(ref, ref_repeats)
    row = {
        "op": op,
        "size": size,
        "fast": fast_name,
        "fast_ms": fast_ms,
        "torch_ms": ref_ms,
        "speedup": ref_ms / fast_ms,
        "runs": f"{repeats}/{ref_repeats}",
    }
    print(
        f"  {op:<12} {size:<26} {fast_name:<8} {fast_ms:9.1f} ms  torch {ref_ms:9.1f} ms",
        file=sys.stderr,
    )
    return row


def run(quick: bool = False) -> list[dict]:
    """Run all cases and return one dict per row (op, size, fast, fast_ms, torch_ms, speedup)."""
    torch.set_num_threads(2)
    rows: list[dict] = []
    big = [] if quick else [1_000_000]

    fps_cases = [(10_000, 512, 5, 5), (100_000, 2048, 3, 3)] + [(n, 2048, 1, 1) for n in big]
    for n, m, rep, rrep in fps_cases:
        xyz = _cloud(n, seed=n)
        rows.append(
            _case(
                "fps",
                f"N={n:,} -> L={m}",
                "fpsample",
                lambda xyz=xyz, m=m: farthest_point_sampling(xyz, m),
                lambda xyz=xyz, m=m: farthest_point_sampling_reference(xyz, m),
                rep,
                rrep,
            )
        )
        if n >= 100_000:
            rows.append(
                _case(
                    "fps",
                    f"N={n:,} -> L={m}",
                    "bucket",
                    lambda xyz=xyz, m=m: farthest_point_sampling(xyz, m, method="bucket"),
                    rows[-1]["torch_ms"],  # same torch reference as the row above
                    rep,
                    rrep,
                )
            )

    knn_cases = [(512, 64, 10_000, 5, 5), (2048, 256, 100_000, 3, 3)]
    knn_cases += [(2048, 256, n, 3, 1) for n in big]
    for m, k, n, rep, rrep in knn_cases:
        xyz = _cloud(n, seed=n + 1)
        q = _subset(xyz, m, seed=1)
        rows.append(
            _case(
                "knn",
                f"L={m}, K={k}, N={n:,}",
                "kdtree",
                lambda q=q, xyz=xyz, k=k: knn(q, xyz, k),
                lambda q=q, xyz=xyz, k=k: knn_reference(q, xyz, k),
                rep,
                rrep,
            )
        )

    for n, rep, rrep in [(100_000, 3, 3)] + [(n, 3, 1) for n in big]:
        xyz = _cloud(n, seed=n + 2)
        centers = _subset(xyz, 2048, seed=2)
        rows.append(
            _case(
                "3nn_weights",
                f"N={n:,}, L=2048",
                "kdtree",
                lambda xyz=xyz, c=centers: three_nn_interpolation_weights(xyz, c, "kdtree"),
                lambda xyz=xyz, c=centers: three_nn_interpolation_weights(xyz, c, "reference"),
                rep,
                rrep,
            )
        )

    for n in [100_000, 500_000]:  # the reference holds an N x 3 x C temporary
        g = torch.Generator().manual_seed(3)
        feats = torch.randn(1, 2048, 256, generator=g)
        idx = torch.randint(0, 2048, (1, n, 3), generator=g)
        w = torch.rand(1, n, 3, generator=g)

        def naive(feats: torch.Tensor = feats, idx: torch.Tensor = idx, w: torch.Tensor = w):
            return (feats[0][idx[0]] * w[0, :, :, None]).sum(1)[None]  # [N, 3, C] temporary

        rows.append(
            _case(
                "interpolate",
                f"N={n:,}, L=2048, C=256",
                "chunked",
                lambda feats=feats, idx=idx, w=w: interpolate(feats, idx, w),
                naive,
                3,
                3,
            )
        )

    torch.manual_seed(4)
    mlp = lambda i, h, o, *tail: torch.nn.Sequential(  # noqa: E731
        torch.nn.Linear(i, h), torch.nn.LayerNorm(h), torch.nn.GELU(), torch.nn.Linear(h, o), *tail)
    mlp1, mlp2 = mlp(6, 128, 128), mlp(256, 512, 512)
    for l_, k_ in [(512, 64)] + ([] if quick else [(2048, 256)]):
        x = torch.randn(1, l_, k_, 6)
        with torch.no_grad():
            rows.append(_case("pointnet", f"L x K = {l_} x {k_}", "split",
                              lambda x=x: pointnet(x, mlp1, mlp2),
                              lambda x=x: pointnet_reference(x, mlp1, mlp2), 3, 1))
    up = mlp(256, 256, 256, torch.nn.GELU())
    for n in [100_000] + ([] if quick else [1_000_000]):
        g = torch.Generator().manual_seed(5)
        src, hyper = torch.randn(1, 2048, 256, generator=g), torch.randn(1, 3, 256, generator=g)
        idx = torch.randint(0, 2048, (1, n, 3), generator=g)
        w = torch.rand(1, n, 3, generator=g)
        w = w / w.sum(-1, keepdim=True)
        with torch.no_grad():
            rows.append(_case("mask_logits", f"N={n:,}, L=2048, D=256", "chunked",
                              lambda src=src, hyper=hyper, idx=idx, w=w: mask_logits(src, hyper, idx, w, up),
                              lambda src=src, hyper=hyper, idx=idx, w=w: mask_logits_reference(
                                  src, hyper, idx, w, up), 3, 1))
    return rows


def to_markdown(rows: list[dict]) -> str:
    """Render rows from `run` as a Markdown table."""
    lines = [
        "| op | size | fast path | fast (ms) | plain torch (ms) | speedup | runs fast/torch |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['op']} | {r['size']} | {r['fast']} | {r['fast_ms']:.1f} | "
            f"{r['torch_ms']:.1f} | {r['speedup']:.1f}x | {r['runs']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(to_markdown(run(quick="--quick" in sys.argv)))
