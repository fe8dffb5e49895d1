"""Benchmark the geometry ops: CPU fast paths against the plain-torch references, same run."""

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
        interpolate,
        knn,
        three_nn_interpolation_weights,
    )
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from pointsam.ops import (
        farthest_point_sampling,
        interpolate,
        knn,
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
    fast()  # warm-up (numba compile / page-in); not timed
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
                "numba",
                lambda xyz=xyz, m=m: farthest_point_sampling(xyz, m, method="numba"),
                lambda xyz=xyz, m=m: farthest_point_sampling(xyz, m, method="torch"),
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
                lambda q=q, xyz=xyz, k=k: knn(q, xyz, k, method="kdtree"),
                lambda q=q, xyz=xyz, k=k: knn(q, xyz, k, method="torch"),
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
                lambda xyz=xyz, c=centers: three_nn_interpolation_weights(xyz, c, "torch"),
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
