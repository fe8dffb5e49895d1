"""S3DIS rooms: ``<Area>/<room>/Annotations/<class>_<k>.txt``, one file per instance (x y z r g b)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_dirs
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError

LICENCE = "S3DIS (Stanford 2D-3D-Semantics) terms of use: non-commercial research"


def convert_s3dis(path: str | Path) -> Conversion:
    """Every room with an ``Annotations`` folder at or under `path`: one mask per instance file."""
    path = Path(path)
    report = ConversionReport(source=f"S3DIS rooms from {path}", licence=LICENCE)
    return Conversion(_iter_rooms(path, report), report)


def _iter_rooms(path: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    rooms = sorted({p.parent for p in find_dirs(path, "Annotations")})
    if not rooms:
        raise InputError(f"{path}: no S3DIS rooms (folders with Annotations/) found")
    for room in rooms:
        cloud = s3dis_room(room, report)
        if cloud is None:
            report.skip(room, "no readable annotation file")
            continue
        yield cloud


def read_xyzrgb(path: Path, report: ConversionReport | None = None) -> np.ndarray:
    """(n, 6) float rows of a whitespace-separated text file; malformed lines are skipped."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return np.zeros((0, 6))
    try:
        rows = np.loadtxt(text.splitlines(), dtype=np.float64, ndmin=2)
        if rows.shape[1] >= 6:
            return rows[:, :6]
    except ValueError:
        pass
    good, bad = [], 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts[:6]]
        except ValueError:
            values = []
        if len(values) == 6:
            good.append(values)
        else:
            bad += 1
    if bad and report is not None:
        report.drop_mask(path, f"skipped {bad} malformed line(s)")
    return np.asarray(good, dtype=np.float64).reshape(-1, 6)


def s3dis_room(room: Path, report: ConversionReport | None = None) -> LabelledCloud | None:
    """One room folder → points of all its annotation files, one mask per file."""
    xyz, rgb, masks, names, start = [], [], [], [], 0
    for file in sorted((room / "Annotations").glob("*.txt")):
        rows = read_xyzrgb(file, report)
        if len(rows) == 0:
            if report is not None:
                report.drop_mask(file, "no points")
            continue
        xyz.append(rows[:, :3])
        rgb.append(np.clip(np.rint(rows[:, 3:6]), 0, 255).astype(np.uint8))
        masks.append(np.arange(start, start + len(rows)))
        names.append(file.stem.rsplit("_", 1)[0])
        start += len(rows)
    if not masks:
        return None
    return LabelledCloud(xyz=np.concatenate(xyz), masks=masks, rgb=np.concatenate(rgb), names=names,
                         category=room.parent.name, source=str(room), name=f"{room.parent.name}_{room.name}")
