"""ShapeNet-part: ``.pts`` points with ``.seg`` labels, or ``.txt`` rows ``x y z nx ny nz label``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_files
from pointsam.data.converters.instances import from_instance_labels
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError

LICENCE = "ShapeNet terms of use: non-commercial research and education"


def convert_shapenet_part(path: str | Path) -> Conversion:
    """Every shape under `path`: one mask per part label (category from the synset folder)."""
    path = Path(path)
    report = ConversionReport(source=f"ShapeNet-part shapes from {path}", licence=LICENCE)
    return Conversion(_iter_shapes(path, report), report)


def _synset_names(root: Path) -> dict[str, str]:
    """Synset id → category name from ``synsetoffset2category.txt`` at or above `root`."""
    for folder in (root, *root.parents):
        table = folder / "synsetoffset2category.txt"
        if table.is_file():
            rows = [line.split() for line in table.read_text().splitlines()]
            return {r[1]: r[0] for r in rows if len(r) == 2}
    return {}


def _label_file(pts: Path) -> Path | None:
    """The labels of ``points/X.pts``: ``points_label/X.seg`` or ``X.seg`` beside it."""
    for cand in (pts.parent.parent / "points_label" / f"{pts.stem}.seg", pts.with_suffix(".seg")):
        if cand.is_file():
            return cand
    return None


def _iter_shapes(root: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    files = [root] if root.is_file() else find_files(root, "*.pts") + [
        p for p in find_files(root, "*.txt") if p.parent.name != "train_test_split"
        and p.name != "synsetoffset2category.txt"]
    if not files:
        raise InputError(f"{root}: no ShapeNet-part .pts or .txt files found")
    synsets = _synset_names(root if root.is_dir() else root.parent)
    for file in files:
        try:
            if file.suffix == ".pts":
                seg = _label_file(file)
                if seg is None:
                    report.skip(file, "no matching .seg label file")
                    continue
                xyz = np.loadtxt(file, dtype=np.float32, ndmin=2)[:, :3]
                labels = np.loadtxt(seg, dtype=np.int64, ndmin=1)
            else:
                rows = np.loadtxt(file, dtype=np.float64, ndmin=2)
                if rows.shape[1] != 7:
                    report.skip(file, f"expected 7 columns (x y z nx ny nz label), found {rows.shape[1]}")
                    continue
                xyz, labels = rows[:, :3].astype(np.float32), rows[:, 6].astype(np.int64)
        except ValueError as exc:
            report.skip(file, f"unreadable: {exc}")
            continue
        if len(labels) != len(xyz):
            report.skip(file, f"{len(xyz)} points but {len(labels)} labels")
            continue
        synset = (file.parent.parent if file.parent.name == "points" else file.parent).name
        category = synsets.get(synset, synset)
        yield from_instance_labels(xyz, None, labels, ignore=(), category=category, source=str(file),
                                   name=f"{category}_{file.stem}")
