"""SemanticKITTI scans: ``velodyne/NNNNNN.bin`` (float32 x y z intensity) + ``labels/NNNNNN.label``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_files
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError

LICENCE = "SemanticKITTI: CC BY-NC-SA 4.0 (KITTI odometry data: CC BY-NC-SA 3.0)"
#: Semantic class names of the SemanticKITTI label ids (lower 16 bits of a label).
CLASS_NAMES = {
    0: "unlabeled", 1: "outlier", 10: "car", 11: "bicycle", 13: "bus", 15: "motorcycle",
    16: "on-rails", 18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist",
    32: "motorcyclist", 40: "road", 44: "parking", 48: "sidewalk", 49: "other-ground",
    50: "building", 51: "fence", 52: "other-structure", 60: "lane-marking", 70: "vegetation",
    71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign", 99: "other-object",
    252: "moving-car", 253: "moving-bicyclist", 254: "moving-person", 255: "moving-motorcyclist",
    256: "moving-on-rails", 257: "moving-bus", 258: "moving-truck", 259: "moving-other-vehicle",
}


def convert_semantickitti(path: str | Path) -> Conversion:
    """Every scan at or under `path` (a .bin file, a sequence or the dataset root): instance masks."""
    path = Path(path)
    report = ConversionReport(source=f"SemanticKITTI scans from {path}", licence=LICENCE)
    return Conversion(_iter_scans(path, report), report)


def _iter_scans(path: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    scans = [path] if path.is_file() else find_files(path, "*.bin")
    if not scans:
        raise InputError(f"{path}: no SemanticKITTI .bin scans found")
    for scan in scans:
        labels = scan.parent.parent / "labels" / f"{scan.stem}.label"
        if not labels.is_file():
            report.skip(scan, f"no label file {labels}")
            continue
        try:
            yield kitti_scan(scan, labels)
        except (InputError, OSError, ValueError) as exc:
            report.skip(scan, str(exc))


def kitti_scan(scan: Path, labels: Path) -> LabelledCloud:
    """One scan → a mask per (semantic class, instance id) with instance id > 0."""
    raw = np.fromfile(scan, dtype="<f4")
    if raw.size % 4:
        raise InputError(f"{scan.name}: size is not a multiple of 16 bytes (x y z intensity float32)")
    points = raw.reshape(-1, 4)
    label = np.fromfile(labels, dtype="<u4")
    if len(label) != len(points):
        raise InputError(f"{len(points)} points but {len(label)} labels")
    semantic = (label & 0xFFFF).astype(np.int64)
    instance = (label >> 16).astype(np.int64)
    keys = np.where(instance > 0, semantic << 16 | instance, -1)
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    groups = np.split(order, starts[1:])
    masks = [np.sort(g) for v, g in zip(values, groups, strict=True) if v >= 0]
    names = [CLASS_NAMES.get(int(v) >> 16, str(int(v) >> 16)) for v in values if v >= 0]
    sequence = scan.parent.parent.name
    return LabelledCloud(xyz=points[:, :3], masks=masks, names=names, category=sequence,
                         source=str(scan), name=f"{sequence}_{scan.stem}")
