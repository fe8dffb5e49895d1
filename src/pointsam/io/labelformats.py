"""One entry point for the label formats labellers use, for the CLI (``--format``), the app and exports.

``write_label_files(fmt, folder, stem, ...)`` writes class labels (ids of a :class:`ClassMap`) and
instance labels (-1 = none) in one format plus the class map beside them (``<stem>.classes.yaml``,
or ``.json`` without PyYAML); ``read_label_files`` reads them back.

=================  ==========================================================================
format             files
=================  ==========================================================================
``semantickitti``  ``<stem>.label`` (uint32: class in the low 16 bits, instance + 1 in the high 16)
``pcd``            ``<stem>.labels.pcd`` (x y z [rgb] label instance)
``las``            ``<stem>.labels.las`` (classification via the class map's LAS codes)
``scannet``        ``<stem>_vh_clean_2.0.010000.segs.json`` + ``<stem>.aggregation.json``
=================  ==========================================================================

SemanticKITTI has no -1: class -1 is written as 0 (its 'unlabeled') and instances are shifted by one
(0 = no instance), so a class map whose id 0 is a real class cannot use the format; LAS keeps -1 as
code 0 and ScanNet keeps only labelled objects, so their class of unlabelled points reads back -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.classmap import ClassMap, load_class_map

LABEL_FORMATS = ("semantickitti", "pcd", "las", "scannet")


@dataclass
class LabelFiles:
    """What a label file set holds: class ids and instance ids per point (-1 = none), and the map."""

    labels: np.ndarray
    instance: np.ndarray
    class_map: ClassMap
    xyz: np.ndarray | None = None


def label_paths(fmt: str, folder: str | Path, stem: str) -> list[Path]:
    """The files `fmt` writes for `stem` in `folder` (the class map file not included)."""
    folder = Path(folder)
    if fmt == "semantickitti":
        return [folder / f"{stem}.label"]
    if fmt == "pcd":
        return [folder / f"{stem}.labels.pcd"]
    if fmt == "las":
        return [folder / f"{stem}.labels.las"]
    if fmt == "scannet":
        from pointsam.io.scannet_labels import scannet_paths

        return list(scannet_paths(folder, stem))
    raise InputError(f"unknown label format {fmt!r}; use one of {', '.join(LABEL_FORMATS)}")


def class_map_path(folder: str | Path, stem: str) -> Path:
    """Where the class map of a label file set lives: ``<stem>.classes.yaml`` (``.json`` without PyYAML)."""
    try:
        import yaml  # noqa: F401

        ext = ".yaml"
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        ext = ".json"
    return Path(folder) / f"{stem}.classes{ext}"


def write_label_files(fmt: str, folder: str | Path, stem: str, xyz: np.ndarray, labels: np.ndarray,
                      instance: np.ndarray, class_map: ClassMap, rgb: np.ndarray | None = None,
                      overwrite: bool = False) -> list[Path]:
    """Write `labels` / `instance` of the points `xyz` in `fmt` plus the class map; returns the paths.

    Refuses (FileExistsError naming them) when any file exists, unless `overwrite`.
    """
    paths = label_paths(fmt, folder, stem)
    xyz = np.asarray(xyz)
    n = len(xyz)
    labels = class_map.check_labels(labels)
    instance = np.asarray(instance)
    if labels.shape != (n,) or instance.shape != (n,):
        raise InputError(f"labels {labels.shape} and instance {instance.shape} must both be ({n},)")
    cmap_path = class_map_path(folder, stem)
    existing = [str(p) for p in (*paths, cmap_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True to replace")
    if fmt == "semantickitti":
        from pointsam.io.semantickitti import write_kitti_labels

        if 0 in class_map.ids and (labels == -1).any():
            raise InputError("SemanticKITTI writes unlabelled points as class 0, but this class map's id 0 "
                             f"is {class_map.by_id(0).name!r}: use another format or a map without id 0")
        write_kitti_labels(paths[0], labels, instance.astype(np.int64) + 1, overwrite=overwrite)
    elif fmt == "pcd":
        from pointsam.io.pcd_labels import write_pcd_labels

        write_pcd_labels(paths[0], xyz, labels, instance, rgb, overwrite=overwrite)
    elif fmt == "las":
        from pointsam.io.las_labels import write_las_classes

        write_las_classes(paths[0], xyz, labels, class_map, rgb, overwrite=overwrite)
    else:
        from pointsam.io.scannet_labels import write_scannet_labels

        write_scannet_labels(folder, stem, instance, labels, class_map, overwrite=overwrite)
    class_map.save(cmap_path, overwrite=overwrite)
    return [*paths, cmap_path]


def read_label_files(fmt: str, folder: str | Path, stem: str, num_points: int | None = None,
                     class_map: ClassMap | None = None) -> LabelFiles:
    """Read a label file set written by :func:`write_label_files` (the class map from beside it)."""
    paths = label_paths(fmt, folder, stem)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileFormatError(f"missing label file(s): {', '.join(missing)}")
    if class_map is None:
        candidates = [Path(folder) / f"{stem}.classes{ext}" for ext in (".yaml", ".yml", ".json")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileFormatError(f"no class map {candidates[0]} beside the labels; pass class_map=")
        class_map = load_class_map(found)
    xyz = None
    if fmt == "semantickitti":
        from pointsam.io.semantickitti import read_kitti_labels

        semantic, inst = read_kitti_labels(paths[0], num_points)
        labels = np.where((semantic == 0) & (0 not in class_map.ids), -1, semantic)
        instance = inst - 1
    elif fmt == "pcd":
        from pointsam.io.pcd_labels import read_pcd_labels

        cloud, labels, inst = read_pcd_labels(paths[0])
        instance = inst if inst is not None else np.full(len(labels), -1, np.int64)
        xyz = cloud.xyz
    elif fmt == "las":
        from pointsam.io.las_labels import read_las_classes

        cloud, labels = read_las_classes(paths[0], class_map)
        instance = np.full(len(labels), -1, np.int64)
        xyz = cloud.xyz
    else:
        from pointsam.io.scannet_labels import read_scannet_labels

        got = read_scannet_labels(paths[0], paths[1], num_points, class_map)
        labels, instance = got.semantic, got.instance
    if num_points is not None and len(labels) != num_points:
        raise FileFormatError(f"{paths[0]}: {len(labels)} labels for {num_points} points")
    return LabelFiles(labels=np.asarray(labels, np.int64), instance=np.asarray(instance, np.int64),
                      class_map=class_map, xyz=xyz)
