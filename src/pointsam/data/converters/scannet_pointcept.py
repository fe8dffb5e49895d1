"""ScanNet scenes in the Pointcept layout (``coord.npy``, ``color.npy``, ``instance.npy``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_files
from pointsam.data.converters.instances import group_labels
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError

LICENCE = "ScanNet Terms of Use: non-commercial research and education"
SCANNET20 = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
             "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
             "bathtub", "otherfurniture")


def convert_scannet_pointcept(path: str | Path) -> Conversion:
    """Every scene folder at or under `path`: one mask per instance id >= 0."""
    path = Path(path)
    report = ConversionReport(source=f"ScanNet (Pointcept layout) from {path}", licence=LICENCE)
    return Conversion(_iter_scenes(path, report), report)


def _iter_scenes(path: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    scenes = sorted(p.parent for p in find_files(path, "coord.npy"))
    if not scenes:
        raise InputError(f"{path}: no Pointcept scene folders (with coord.npy) found")
    for scene in scenes:
        if not (scene / "instance.npy").is_file():
            report.skip(scene, "no instance.npy")
            continue
        try:
            yield pointcept_scene(scene)
        except (ValueError, OSError, InputError) as exc:
            report.skip(scene, str(exc))


def pointcept_scene(scene: Path) -> LabelledCloud:
    """One scene folder → instance masks named by their majority ScanNet20 class (if known)."""
    xyz = np.load(scene / "coord.npy", allow_pickle=False)
    rgb = np.load(scene / "color.npy", allow_pickle=False) if (scene / "color.npy").is_file() else None
    instance = np.load(scene / "instance.npy", allow_pickle=False).reshape(-1)
    if len(instance) != len(xyz):
        raise InputError(f"{len(xyz)} points but {len(instance)} instance labels")
    values, masks = group_labels(instance, ignore=[v for v in np.unique(instance) if v < 0])
    names = [f"instance {int(v)}" for v in values]
    seg_file = scene / "segment20.npy"
    if seg_file.is_file():
        segment = np.load(seg_file, allow_pickle=False).reshape(-1)
        if len(segment) == len(xyz):
            names = [_majority_name(segment[m], v) for m, v in zip(masks, values, strict=True)]
    return LabelledCloud(xyz=xyz, masks=masks, rgb=rgb, names=names, category="scene",
                         source=str(scene), name=scene.name)


def _majority_name(classes: np.ndarray, value: int) -> str:
    valid = classes[(classes >= 0) & (classes < len(SCANNET20))]
    if not len(valid):
        return f"instance {int(value)}"
    return SCANNET20[int(np.bincount(valid).argmax())]
