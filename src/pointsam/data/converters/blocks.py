"""Cut a large scene into overlapping square blocks in the horizontal (x, y) plane, z up."""

from __future__ import annotations

import numpy as np

from pointsam.data.converters.report import ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError


def _starts(lo: float, hi: float, block: float, stride: float) -> np.ndarray:
    """Block start positions covering [lo, hi] (at least one block)."""
    count = max(int(np.ceil(max(hi - lo - block, 0.0) / stride)) + 1, 1)
    return lo + stride * np.arange(count)


def scene_blocks(
    cloud: LabelledCloud,
    block: float = 3.0,
    stride: float = 1.5,
    min_points: int = 1024,
    min_mask_points: int = 10,
    report: ConversionReport | None = None,
) -> list[LabelledCloud]:
    """Blocks of `block` x `block` metres every `stride` metres; masks cut to each block."""
    if block <= 0 or stride <= 0:
        raise InputError(f"block and stride must be positive, got {block} and {stride}")
    report = report if report is not None else ConversionReport()
    xy = cloud.xyz[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    out = []
    for i, x0 in enumerate(_starts(float(lo[0]), float(hi[0]), block, stride)):
        for j, y0 in enumerate(_starts(float(lo[1]), float(hi[1]), block, stride)):
            name = f"{cloud.name}_block_{i}_{j}"
            inside = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x0 + block)
                                    & (xy[:, 1] >= y0) & (xy[:, 1] <= y0 + block))
            if len(inside) < min_points:
                report.skip(name, f"{len(inside)} points < min_points={min_points}")
                continue
            sub = restrict_cloud(cloud, inside, name, min_mask_points, report)
            if sub.num_masks == 0:
                report.skip(name, "no mask left in the block")
                continue
            out.append(sub)
    return out


def restrict_cloud(cloud: LabelledCloud, inside: np.ndarray, name: str, min_mask_points: int,
              report: ConversionReport) -> LabelledCloud:
    """The cloud restricted to the sorted point indices `inside`, masks re-indexed."""
    new_index = np.full(cloud.num_points, -1, dtype=np.int64)
    new_index[inside] = np.arange(len(inside))
    masks, keep = [], []
    for k, mask in enumerate(cloud.masks):
        local = new_index[mask]
        local = local[local >= 0]
        if len(local) == 0:
            continue
        if len(local) < min_mask_points:
            label = cloud.names[k] if cloud.names else f"mask {k}"
            report.drop_mask(f"{name}: {label}", f"{len(local)} points < min_mask_points={min_mask_points}")
            continue
        masks.append(local)
        keep.append(k)
    return LabelledCloud(
        xyz=cloud.xyz[inside],
        masks=masks,
        rgb=None if cloud.rgb is None else cloud.rgb[inside],
        names=None if cloud.names is None else [cloud.names[k] for k in keep],
        levels=None if cloud.levels is None else cloud.levels[keep],
        category=cloud.category,
        source=cloud.source,
        name=name,
    )
