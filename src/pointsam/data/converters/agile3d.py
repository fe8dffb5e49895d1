"""AGILE3D / InterObject3D preprocessed benchmarks (S3DIS, KITTI-360, ScanNet), as the authors publish them.

Layout of one benchmark folder (e.g. ``data/S3DIS``)::

    scans/<scene>.ply                  binary PLY: x y z R G B label (instance id 1, 2, ...;
                                       ScanNet: -1 = none)
    val_list.json                      multi-object samples: {"<scene>_obj_<k>": {"obj": {"1": <label>, ...},
                                       "clicks": {...}}}; an empty sample means every instance of the scene
    single/crops/<scene>/<scene>_crop_<object>.ply
                                       single-object crops: x y z R G B label (label != 0 is the object)
    single/object_ids.npy              (M, 2) strings [scene, object id], the crops to evaluate
    single/object_classes.txt | .npy   M class names, one per object id

``setup="multi"`` gives one cloud per val_list.json sample with a mask per selected instance;
``setup="single"`` gives one cloud per crop with one mask named (and categorised) by its class;
``"auto"`` picks multi when val_list.json exists, else single. Clicks in val_list.json are not
used: evaluation simulates its own (paper Sec. 5.1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from plyfile import PlyData

from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import FileFormatError, InputError

LICENCE = ("AGILE3D preprocessed benchmarks (MIT code); terms of the source data apply: S3DIS "
           "non-commercial research, KITTI-360 CC BY-NC-SA 3.0, ScanNet Terms of Use")
SETUPS = ("auto", "multi", "single")


def kitti_to_y_up() -> np.ndarray:
    """The rotation the official Point-SAM KITTI-360 evaluation applies (euler xyz -90, 180, 0 deg)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", [-90, 180, 0], degrees=True).as_matrix()


def read_agile3d_ply(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(xyz float32 (N, 3), rgb uint8 (N, 3) or None, label int64 (N,)) of an AGILE3D scan or crop."""
    try:
        vertex = PlyData.read(str(path))["vertex"].data
    except Exception as exc:  # plyfile raises several types for truncated or foreign files
        raise FileFormatError(f"{path}: not a readable PLY file ({exc})") from exc
    names = vertex.dtype.names or ()
    missing = [c for c in ("x", "y", "z", "label") if c not in names]
    if missing:
        raise FileFormatError(f"{path}: no {', '.join(missing)} field (fields: {', '.join(names)}); "
                              "AGILE3D files hold x y z R G B label")
    xyz = np.column_stack([vertex[c] for c in "xyz"]).astype(np.float32)
    rgb = None
    for channels in (("R", "G", "B"), ("red", "green", "blue")):
        if all(c in names for c in channels):
            rgb = np.clip(np.column_stack([vertex[c] for c in channels]), 0, 255).astype(np.uint8)
            break
    return xyz, rgb, np.asarray(vertex["label"]).astype(np.int64)


def convert_agile3d(path: str | Path, setup: str = "auto", y_up: bool = False) -> Conversion:
    """A benchmark folder in AGILE3D's layout -> clouds with masks (see the module docstring).

    `y_up` rotates z-up data (KITTI-360) the way the official Point-SAM evaluation does.
    """
    path = Path(path)
    if setup not in SETUPS:
        raise InputError(f"setup must be one of {', '.join(SETUPS)}, got {setup!r}")
    report = ConversionReport(source=f"AGILE3D benchmark ({setup}) from {path}", licence=LICENCE)
    return Conversion(_iter(path, setup, y_up, report), report)


def _iter(root: Path, setup: str, y_up: bool, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    if setup == "auto":
        setup = "multi" if (root / "val_list.json").is_file() else "single"
    rotation = kitti_to_y_up() if y_up else None
    clouds = _multi(root, report) if setup == "multi" else _single(root, report)
    for cloud in clouds:
        if rotation is not None:
            cloud.xyz = (cloud.xyz.astype(np.float64) @ rotation.T).astype(np.float32)
        yield cloud


def _multi(root: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    val_list = root / "val_list.json"
    if not val_list.is_file():
        raise InputError(f"{root}: no val_list.json (the multi-object setup); try setup='single'")
    try:
        samples = json.loads(val_list.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{val_list}: not valid JSON ({exc})") from exc
    if not isinstance(samples, dict) or not samples:
        raise FileFormatError(f"{val_list}: expected a non-empty object of '<scene>_obj_<k>' samples")
    for key, sample in samples.items():
        scene = key.rsplit("_obj_", 1)[0]
        scan = root / "scans" / f"{scene}.ply"
        if not scan.is_file():
            report.skip(key, f"no scan {scan}")
            continue
        try:
            xyz, rgb, label = read_agile3d_ply(scan)
        except FileFormatError as exc:
            report.skip(key, str(exc))
            continue
        chosen = (sample or {}).get("obj") if isinstance(sample, dict) else None
        if chosen:
            order = sorted(chosen.items(), key=lambda kv: int(kv[0]))
            objects = [int(ori) for _, ori in order]
        else:
            objects = [int(v) for v in np.unique(label) if v > 0]
        masks, names = [], []
        for obj in objects:
            mask = np.flatnonzero(label == obj)
            if len(mask) == 0:
                report.drop_mask(f"{key}: object {obj}", "no point has this label")
                continue
            masks.append(mask)
            names.append(f"object {obj}")
        if not masks:
            report.skip(key, "no labelled object")
            continue
        yield LabelledCloud(xyz=xyz, rgb=rgb, masks=masks, names=names, category=root.name,
                            source=str(scan), name=key)


def _object_list(root: Path) -> tuple[list[tuple[str, str]], list[str] | None]:
    single = root / "single"
    ids_file = single / "object_ids.npy"
    if ids_file.is_file():
        try:
            ids = np.load(ids_file, allow_pickle=False)
        except ValueError as exc:
            raise FileFormatError(f"{ids_file}: not a plain (M, 2) string array ({exc})") from exc
        if ids.ndim != 2 or ids.shape[1] != 2:
            raise FileFormatError(f"{ids_file}: expected shape (M, 2) [scene, object id], got {ids.shape}")
        objects = [(str(s), str(o)) for s, o in ids]
    else:  # no list: every crop, as the official KITTI-360 evaluation globs crops/*/*.ply
        crops = sorted((single / "crops").glob("*/*_crop_*.ply"))
        objects = [(c.parent.name, c.stem.rsplit("_crop_", 1)[1]) for c in crops]
    classes = None
    for name in ("object_classes.txt", "object_classes.npy"):
        file = single / name
        if file.is_file():
            if file.suffix == ".npy":
                classes = [str(c) for c in np.load(file, allow_pickle=False).reshape(-1)]
            else:
                classes = file.read_text(encoding="utf-8").split()
            if len(classes) != len(objects):
                raise FileFormatError(f"{file}: {len(classes)} classes for {len(objects)} objects")
            break
    return objects, classes


def _single(root: Path, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not (root / "single" / "crops").is_dir():
        raise InputError(f"{root}: no single/crops folder (the single-object setup)")
    objects, classes = _object_list(root)
    if not objects:
        raise InputError(f"{root}: no crops listed or found under single/crops")
    for i, (scene, obj) in enumerate(objects):
        crop = root / "single" / "crops" / scene / f"{scene}_crop_{obj}.ply"
        name = f"{scene}_crop_{obj}"
        if not crop.is_file():
            report.skip(name, f"no crop file {crop}")
            continue
        try:
            xyz, rgb, label = read_agile3d_ply(crop)
        except FileFormatError as exc:
            report.skip(name, str(exc))
            continue
        mask = np.flatnonzero(label != 0)
        if len(mask) == 0:
            report.skip(name, "the crop has no object point (label != 0)")
            continue
        cls = classes[i] if classes else ""
        yield LabelledCloud(xyz=xyz, rgb=rgb, masks=[mask], names=[cls or f"object {obj}"], category=cls,
                            source=str(crop), name=name)
