"""Crops of a scene around each instance, with the surrounding context a click in a scan really sees.

A user who clicks a chair in a scan sees the chair together with the floor under it, the table beside
it and the wall behind it. Each crop is the instance's axis-aligned box grown by a margin on every
side; it keeps every mask that still has enough points inside (the centre instance whole, its
neighbours cut at the crop's border), so a model trained on crops learns to stop at object borders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pointsam.data.converters.blocks import restrict_cloud
from pointsam.data.converters.report import ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError

__all__ = ["SKIP_NAMES", "crop_box", "instance_crops"]

#: Instances too large to be a crop's centre (they are in the whole scenes and blocks instead).
SKIP_NAMES = ("wall", "floor", "ceiling")


def crop_box(xyz: np.ndarray, margin: float, relative: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The box around `xyz` grown on each side by max(margin, relative x the box's extent) per axis."""
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    grow = np.maximum(margin, relative * (hi - lo))
    return lo - grow, hi + grow


def instance_crops(
    cloud: LabelledCloud,
    margins: Sequence[float] = (0.5,),
    relative: float = 0.0,
    max_extent: float = 4.0,
    min_instance_points: int = 100,
    min_mask_points: int = 10,
    skip_names: Iterable[str] = SKIP_NAMES,
    report: ConversionReport | None = None,
) -> list[LabelledCloud]:
    """One crop per instance mask of `cloud` and margin (metres, in the scene's units).

    Instances named in `skip_names`, larger than `max_extent` along any axis or smaller than
    `min_instance_points` are not used as crop centres. The centre instance is always the crop's
    first mask; other masks cut below `min_mask_points` points are dropped.
    """
    if not margins or any(not np.isfinite(m) or m < 0 for m in margins):
        raise InputError(f"margins must be non-negative numbers, got {list(margins)}")
    if relative < 0 or max_extent <= 0:
        raise InputError(f"relative must be >= 0 and max_extent > 0, got {relative} and {max_extent}")
    report = report if report is not None else ConversionReport()
    skip = {s.lower() for s in skip_names}
    out = []
    for k, mask in enumerate(cloud.masks):
        label = cloud.names[k] if cloud.names else f"mask {k}"
        if label.lower() in skip:
            continue
        if len(mask) < min_instance_points:
            report.skip(f"{cloud.name}: {label}", f"{len(mask)} points < {min_instance_points}")
            continue
        pts = cloud.xyz[mask]
        extent = pts.max(axis=0) - pts.min(axis=0)
        if (extent > max_extent).any():
            report.skip(f"{cloud.name}: {label}", f"extent {np.round(extent, 2).tolist()} > {max_extent}")
            continue
        for margin in margins:
            lo, hi = crop_box(pts, margin, relative)
            inside = np.flatnonzero(((cloud.xyz >= lo) & (cloud.xyz <= hi)).all(axis=1))
            name = f"{cloud.name}_crop_{k}_{margin:g}m"
            sub = restrict_cloud(cloud, inside, name, min_mask_points, report)
            order = _centre_first(sub, cloud.masks[k], inside)
            out.append(LabelledCloud(
                xyz=sub.xyz, masks=[sub.masks[i] for i in order], rgb=sub.rgb,
                names=None if sub.names is None else [sub.names[i] for i in order],
                levels=None if sub.levels is None else sub.levels[order],
                category=cloud.category, source=cloud.source, name=name,
            ))
    return out


def _centre_first(sub: LabelledCloud, centre: np.ndarray, inside: np.ndarray) -> list[int]:
    """Mask order of `sub` with the centre instance (all of whose points are inside) first."""
    local = np.searchsorted(inside, centre)
    first = next(i for i, m in enumerate(sub.masks) if len(m) == len(local) and np.array_equal(m, local))
    return [first] + [i for i in range(sub.num_masks) if i != first]
