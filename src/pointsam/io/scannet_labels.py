"""ScanNet-style annotations: ``<scene>_vh_clean_2.0.010000.segs.json`` (a segment id per vertex)
plus ``<scene>.aggregation.json`` (objects as groups of segments, each with a class name)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.classmap import ClassMap
from pointsam.utils.files import atomic_output

SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"
AGGREGATION_SUFFIX = ".aggregation.json"


@dataclass
class ScanNetLabels:
    """Per-point object ids (-1 = none), each object's class name, and class ids via a class map."""

    instance: np.ndarray
    object_names: dict[int, str]
    semantic: np.ndarray | None = None


def scannet_paths(folder: str | Path, scene: str) -> tuple[Path, Path]:
    """(segs, aggregation) file paths of `scene` in `folder`, named as ScanNet names them."""
    folder = Path(folder)
    return folder / f"{scene}{SEGS_SUFFIX}", folder / f"{scene}{AGGREGATION_SUFFIX}"


def _ints(values: np.ndarray, n: int | None, what: str) -> np.ndarray:
    values = np.asarray(values)
    wrong_length = n is not None and len(values) != n
    if values.ndim != 1 or wrong_length or (values.size and values.dtype.kind not in "iu"):
        count = n if n is not None else "N"
        raise InputError(f"{what} must be {count} integers, got {values.dtype} {values.shape}")
    return values.astype(np.int64)


def write_scannet_labels(folder: str | Path, scene: str, instance: np.ndarray,
                         labels: np.ndarray | None = None, class_map: ClassMap | None = None,
                         segments: np.ndarray | None = None,
                         overwrite: bool = False) -> tuple[Path, Path]:
    """Write the segs and aggregation JSON of `scene`: one segGroup per object id >= 0.

    `segments` is an over-segmentation (a segment id per point, each segment inside one object);
    without it every object is one segment and unlabelled points share one more. An object's
    ``label`` is the class name (via `class_map`) of most of its points, or "object".
    """
    instance = _ints(instance, None, "instance labels")
    n = len(instance)
    if labels is not None:
        labels = _ints(labels, n, "class labels")
        if class_map is None:
            raise InputError("class labels need a class map to name them")
        class_map.check_labels(labels)
    if segments is None:
        segments = np.where(instance >= 0, instance, (instance.max() + 1) if n else 0)
    else:
        segments = _ints(segments, n, "segments")
        if segments.size and segments.min() < 0:
            raise InputError("segment ids must be >= 0")
    groups = []
    for obj in np.unique(instance[instance >= 0]):
        inside = instance == obj
        segs = np.unique(segments[inside])
        spill = np.isin(segments, segs) & ~inside
        if spill.any():
            raise InputError(f"object {obj}: its segments also hold {int(spill.sum())} point(s) of other "
                             "objects; ScanNet objects are unions of whole segments")
        name = "object"
        if labels is not None:
            values, counts = np.unique(labels[inside], return_counts=True)
            best = int(values[np.argmax(counts)])
            name = class_map.by_id(best).name if best >= 0 else "object"  # type: ignore[union-attr]
        groups.append({"id": int(obj), "objectId": int(obj), "segments": segs.tolist(), "label": name})
    segs_path, agg_path = scannet_paths(folder, scene)
    segs_doc = {"sceneId": f"scannet.{scene}", "segIndices": segments.tolist()}
    agg_doc = {"sceneId": f"scannet.{scene}", "appId": "pointsam", "segGroups": groups,
               "segmentsFile": f"scannet.{segs_path.name}"}
    existing = [str(p) for p in (segs_path, agg_path) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True to replace")
    for path, doc in ((segs_path, segs_doc), (agg_path, agg_doc)):
        with atomic_output(path, overwrite) as tmp:
            tmp.write_text(json.dumps(doc), encoding="utf-8")
    return segs_path, agg_path


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise FileFormatError(f"{path}: expected a JSON object")
    return doc


def read_scannet_labels(segs_path: str | Path, aggregation_path: str | Path, num_points: int | None = None,
                        class_map: ClassMap | None = None) -> ScanNetLabels:
    """Read segs + aggregation JSON: per-point object ids; class ids too when `class_map` is given.

    Object names the class map lacks (ScanNet's raw names) get class -1; where segGroups overlap,
    the later group wins.
    """
    segs_path, aggregation_path = Path(segs_path), Path(aggregation_path)
    segs = _load_json(segs_path)
    try:
        seg_indices = np.asarray(segs["segIndices"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise FileFormatError(f"{segs_path}: needs a 'segIndices' list of integers ({exc})") from exc
    if seg_indices.ndim != 1:
        raise FileFormatError(f"{segs_path}: 'segIndices' must be a flat list")
    if num_points is not None and len(seg_indices) != num_points:
        raise FileFormatError(f"{segs_path}: {len(seg_indices)} segIndices but the cloud has "
                              f"{num_points} points")
    groups = _load_json(aggregation_path).get("segGroups")
    if not isinstance(groups, list):
        raise FileFormatError(f"{aggregation_path}: needs a 'segGroups' list")
    instance = np.full(len(seg_indices), -1, dtype=np.int64)
    names: dict[int, str] = {}
    for k, group in enumerate(groups):
        try:
            obj = int(group.get("objectId", group.get("id", k)))
            members = np.asarray(group["segments"], dtype=np.int64).reshape(-1)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise FileFormatError(f"{aggregation_path}: segGroup {k} needs 'segments' and an integer "
                                  f"objectId ({exc})") from exc
        instance[np.isin(seg_indices, members)] = obj
        names[obj] = str(group.get("label", "object"))
    semantic = None
    if class_map is not None:
        known = {e.name: e.id for e in class_map}
        semantic = np.full(len(instance), -1, dtype=np.int64)
        for obj, name in names.items():
            if name in known:
                semantic[instance == obj] = known[name]
    return ScanNetLabels(instance=instance, object_names=names, semantic=semantic)
