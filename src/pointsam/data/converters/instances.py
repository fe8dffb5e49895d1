"""Masks from per-point instance labels (any source), and PLY files with a label field."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_files
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError, PointSAMError
from pointsam.io import read_point_cloud

#: PLY scalar fields tried, in order, when no field is named.
LABEL_FIELDS = ("instance", "instance_id", "instance_label", "label", "labels", "segment", "mask")


def group_labels(labels: np.ndarray, ignore: Iterable[int] = (-1,)) -> tuple[np.ndarray, list[np.ndarray]]:
    """(values, masks): the distinct labels (ignored ones left out) and each one's point indices."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and labels.dtype.kind not in "iu":
        raise InputError(f"labels must be integers, got dtype {labels.dtype}")
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    keep = ~np.isin(values, np.asarray(list(ignore), dtype=np.int64))
    return values[keep], [np.sort(g) for g, k in zip(groups, keep, strict=True) if k]


def from_instance_labels(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    labels: np.ndarray,
    ignore: int | Sequence[int] = -1,
    *,
    label_names: dict[int, str] | None = None,
    category: str = "",
    source: str = "",
    name: str = "",
) -> LabelledCloud:
    """One mask per distinct label (`ignore` left out), named from `label_names` or the label value."""
    xyz = np.asarray(xyz)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(xyz):
        raise InputError(f"{len(labels)} labels for {len(xyz)} points")
    ignored = [ignore] if isinstance(ignore, int | np.integer) else list(ignore)
    values, masks = group_labels(labels, ignored)
    label_names = label_names or {}
    names = [label_names.get(int(v), str(int(v))) for v in values]
    return LabelledCloud(xyz=xyz, masks=masks, rgb=rgb, names=names, category=category,
                         source=source, name=name)


def convert_ply(path: str | Path, field: str | None = None, ignore: int = -1) -> Conversion:
    """PLY file(s) (a file or a folder searched recursively) with a per-point label field."""
    path = Path(path)
    report = ConversionReport(source=f"PLY files with per-point labels from {path}")
    return Conversion(_iter_ply(path, field, ignore, report), report)


def _iter_ply(
    path: Path, field: str | None, ignore: int, report: ConversionReport
) -> Iterator[LabelledCloud]:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    files = [path] if path.is_file() else find_files(path, "*.ply")
    if not files:
        raise InputError(f"{path}: no .ply files found")
    for file in files:
        try:
            cloud = read_point_cloud(file)
        except PointSAMError as exc:
            report.skip(file, str(exc))
            continue
        if cloud.mesh is not None:
            report.skip(file, "a mesh, not a point cloud: per-vertex labels are not sampled")
            continue
        names = [field] if field else [f for f in LABEL_FIELDS if f in cloud.extra]
        if not names or names[0] not in cloud.extra:
            fields = ", ".join(cloud.extra) or "none"
            report.skip(file, f"no label field {field or '/'.join(LABEL_FIELDS)} (fields: {fields})")
            continue
        labels = cloud.extra[names[0]]
        if labels.dtype.kind == "f":
            if not np.all(np.equal(np.mod(labels, 1), 0)):
                report.skip(file, f"field {names[0]!r} holds non-integer values")
                continue
            labels = labels.astype(np.int64)
        rel = file.name if path.is_file() else str(file.relative_to(path))
        yield from_instance_labels(cloud.xyz, cloud.rgb, labels, ignore, source=str(file),
                                   name=Path(rel).with_suffix("").as_posix().replace("/", "_"))
