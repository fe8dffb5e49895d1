"""ScanObjectNN h5 variants (``main_split/test_objectdataset*.h5`` ...): ``data`` (S, P, 3+) points,
``label`` (S,) class, ``mask`` (S, P) per-point instance (-1 = background). Needs h5py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import FileFormatError, InputError

LICENCE = "ScanObjectNN terms of use: non-commercial research (SceneNN / ScanNet source scans)"
#: The 15 ScanObjectNN classes, in label order.
CLASSES = ("bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed",
           "pillow", "sink", "sofa", "toilet")


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise InputError("reading ScanObjectNN .h5 files needs h5py: pip install 'pointsam[formats]' "
                         "(or pip install h5py)") from exc
    return h5py


def read_scanobjectnn_h5(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (S, P, 3) float32, class (S,) int64, mask (S, P) int64) of one h5 file, checked."""
    h5py = _h5py()
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            keys = set(h5.keys())
            if "data" not in keys or "label" not in keys:
                has = ", ".join(sorted(keys))
                raise FileFormatError(f"{path}: needs 'data' and 'label' datasets (has {has})")
            if "mask" not in keys:
                raise FileFormatError(f"{path}: this h5 has no per-point 'mask' dataset, so it cannot be "
                                      "used for segmentation; use a ScanObjectNN variant with masks "
                                      "(main_split)")
            data, label, mask = (np.asarray(h5[k]) for k in ("data", "label", "mask"))
    except OSError as exc:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({exc})") from exc
    if data.ndim != 3 or data.shape[2] < 3:
        raise FileFormatError(f"{path}: 'data' must be (objects, points, 3+), got {data.shape}")
    label = label.reshape(-1)
    if len(label) != len(data) or mask.shape != data.shape[:2]:
        raise FileFormatError(f"{path}: 'data' {data.shape}, 'label' {label.shape} and 'mask' {mask.shape} "
                              "disagree")
    return data[:, :, :3].astype(np.float32), label.astype(np.int64), mask.astype(np.int64)


def convert_scanobjectnn(path: str | Path, limit: int | None = None) -> Conversion:
    """Every object of an h5 file (or of every *.h5 under a folder): a mask per instance value >= 0."""
    path = Path(path)
    report = ConversionReport(source=f"ScanObjectNN h5 from {path}", licence=LICENCE)
    return Conversion(_iter(path, limit, report), report)


def _iter(path: Path, limit: int | None, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    files = [path] if path.is_file() else sorted(path.rglob("*.h5"))
    if not files:
        raise InputError(f"{path}: no .h5 files found")
    count = 0
    for file in files:
        points, labels, masks = read_scanobjectnn_h5(file)
        for i in range(len(points)):
            if limit is not None and count >= limit:
                return
            cls = CLASSES[labels[i]] if 0 <= labels[i] < len(CLASSES) else str(labels[i])
            values = [v for v in np.unique(masks[i]) if v >= 0]
            cloud_masks = [np.flatnonzero(masks[i] == v) for v in values]
            name = f"{file.stem}_{i:05d}"
            if not cloud_masks:
                report.skip(name, "no foreground point (mask is -1 everywhere)")
                continue
            count += 1
            yield LabelledCloud(xyz=points[i], masks=cloud_masks, names=[cls] * len(cloud_masks),
                                category=cls, source=f"{file}#{i}", name=name)
