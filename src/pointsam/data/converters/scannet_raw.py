"""Raw ScanNet scans: ``*_vh_clean_2.ply`` + ``*_vh_clean_2.0.010000.segs.json`` + ``*.aggregation.json``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_files
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.converters.scannet_pointcept import LICENCE
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError, PointSAMError
from pointsam.io.ply import read_ply


def convert_scannet(path: str | Path) -> Conversion:
    """Every scan folder at or under `path`: one mask per object of the aggregation file."""
    path = Path(path)
    report = ConversionReport(source=f"ScanNet raw scans from {path}", licence=LICENCE)
    return Conversion(_iter_scans(path, report), report)


def _iter_scans(path: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    scans = sorted({p.parent for p in find_files(path, "*_vh_clean_2.ply")})
    if not scans:
        raise InputError(f"{path}: no ScanNet scans (*_vh_clean_2.ply) found")
    for scan in scans:
        try:
            yield scannet_scan(scan, report)
        except (PointSAMError, OSError, ValueError, KeyError, TypeError) as exc:
            report.skip(scan, str(exc))


def scannet_scan(scan: Path, report: ConversionReport | None = None) -> LabelledCloud:
    """One scan folder → a mask per aggregated object (its over-segments' vertices)."""
    scene = scan.name
    files = {
        "mesh": scan / f"{scene}_vh_clean_2.ply",
        "segs": scan / f"{scene}_vh_clean_2.0.010000.segs.json",
        "aggregation": scan / f"{scene}.aggregation.json",
    }
    if not files["aggregation"].is_file():
        files["aggregation"] = scan / f"{scene}_vh_clean.aggregation.json"
    missing = [str(p.name) for p in files.values() if not p.is_file()]
    if missing:
        raise InputError(f"missing {', '.join(missing)}")
    mesh = read_ply(files["mesh"])
    seg_indices = np.asarray(json.loads(files["segs"].read_text())["segIndices"], dtype=np.int64)
    if len(seg_indices) != len(mesh.xyz):
        raise InputError(f"{len(mesh.xyz)} vertices but {len(seg_indices)} segIndices")
    groups = json.loads(files["aggregation"].read_text())["segGroups"]
    masks, names = [], []
    for group in groups:
        mask = np.flatnonzero(np.isin(seg_indices, np.asarray(group["segments"], dtype=np.int64)))
        label = f"{group.get('label', 'object')} {group.get('objectId', group.get('id'))}"
        if len(mask) == 0:
            if report is not None:
                report.drop_mask(f"{scene}: {label}", "its segments hold no vertex")
            continue
        masks.append(mask)
        names.append(str(group.get("label", "object")))
    return LabelledCloud(xyz=mesh.xyz, masks=masks, rgb=mesh.rgb, names=names, category="scene",
                         source=str(scan), name=scene)
