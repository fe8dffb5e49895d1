"""PartNet / PartNet-Mobility point samples: one mask per node of the part hierarchy."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pointsam.data.converters.files import find_files
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import InputError

LICENCE = "PartNet / PartNet-Mobility (SAPIEN) terms: non-commercial research and education"


def convert_partnet(path: str | Path, points: int = 10000) -> Conversion:
    """Objects under `path` (or the object folder itself) with ``point_sample/pts-N.txt``."""
    path = Path(path)
    report = ConversionReport(source=f"PartNet point samples from {path}", licence=LICENCE)
    return Conversion(_iter_objects(path, points, report), report)


def _iter_objects(path: Path, points: int, report: ConversionReport) -> Iterator[LabelledCloud]:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    objects = sorted(p.parent for p in find_files(path, "result.json"))
    if not objects:
        raise InputError(f"{path}: no PartNet objects (folders with result.json) found")
    categories = index_categories(path)
    for obj in objects:
        pts = obj / "point_sample" / f"pts-{points}.txt"
        lab = obj / "point_sample" / f"label-{points}.txt"
        if not pts.is_file() or not lab.is_file():
            report.skip(obj, f"no point_sample/pts-{points}.txt and label-{points}.txt")
            continue
        try:
            cloud = partnet_object(obj, points, object_category(obj, path, categories), report)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            report.skip(obj, f"unreadable: {exc}")
            continue
        yield cloud


def partnet_object(obj: Path, points: int = 10000, category: str = "",
                   report: ConversionReport | None = None) -> LabelledCloud:
    """One object folder → a mask per hierarchy node and per mobility link (duplicates kept once).

    Hierarchy masks are named by their path (``"faucet/normal_faucet/switch"``) with their depth as
    level; PartNet-Mobility links (``mobility_v2.json``) add ``"link:<name>"`` masks with level -1
    where they differ from every hierarchy mask.
    """
    xyz = np.loadtxt(obj / "point_sample" / f"pts-{points}.txt", dtype=np.float32, ndmin=2)[:, :3]
    labels = np.loadtxt(obj / "point_sample" / f"label-{points}.txt", dtype=np.int64, ndmin=1)
    if len(labels) != len(xyz):
        raise ValueError(f"{len(xyz)} points but {len(labels)} labels")
    tree = json.loads((obj / "result.json").read_text(encoding="utf-8"))
    nodes = list(_walk(tree, "", 0))
    known = {i for node in nodes for i in node[2]}
    unknown = np.setdiff1d(np.unique(labels), np.fromiter(known, np.int64))
    if len(unknown) and report is not None:
        report.drop_mask(obj, f"labels {unknown.tolist()} are not nodes of result.json")
    masks, names, levels, seen = [], [], [], set()
    for name, level, subtree in nodes + _link_nodes(obj, nodes):
        idx = np.flatnonzero(np.isin(labels, subtree))
        key = idx.tobytes()
        if len(idx) == 0 or key in seen:
            continue
        seen.add(key)
        masks.append(idx)
        names.append(name)
        levels.append(level)
    return LabelledCloud(xyz=xyz, masks=masks, names=names, levels=np.array(levels, np.int32),
                         category=category, source=str(obj), name=f"{category or 'obj'}_{obj.name}")


def _link_nodes(obj: Path, nodes: list[tuple[str, int, list[int]]]) -> list[tuple[str, int, list[int]]]:
    """("link:<name>", -1, node ids) for each articulation link of ``mobility_v2.json``, if any."""
    path = obj / "mobility_v2.json"
    if not path.is_file():
        return []
    subtree = {ids[0]: ids for _, _, ids in nodes}
    out = []
    for link in json.loads(path.read_text(encoding="utf-8")):
        ids = [i for part in link.get("parts", []) for i in subtree.get(int(part["id"]), [])]
        if ids:
            out.append((f"link:{link.get('name', link.get('id'))}", -1, ids))
    return out


def _walk(nodes: list[dict], prefix: str, level: int) -> Iterator[tuple[str, int, list[int]]]:
    """(path name, depth, ids of the node and its descendants) for each node, pre-order."""
    for node in nodes:
        name = f"{prefix}/{node['name']}" if prefix else str(node["name"])
        children = node.get("children") or []
        below = list(_walk(children, name, level + 1))
        ids = [int(node["id"])] + [i for _, lvl, sub in below if lvl == level + 1 for i in sub]
        yield name, level, ids
        yield from below


def index_categories(root: Path) -> dict[Path, str]:
    """Object folder → category from an ``INDEX.csv`` (path, category columns) at or above `root`."""
    for folder in (root, *root.parents):
        index = folder / "INDEX.csv"
        if index.is_file():
            with open(index, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            if rows and {"path", "category"} <= set(rows[0]):
                return {(folder / r["path"]).resolve(): r["category"] for r in rows}
    return {}


def object_category(obj: Path, root: Path, index: dict[Path, str]) -> str:
    """Category: INDEX.csv, else meta.json's model_cat, else the parent folder's name."""
    if obj.resolve() in index:
        return index[obj.resolve()]
    meta = obj / "meta.json"
    if meta.is_file():
        try:
            cat = json.loads(meta.read_text(encoding="utf-8")).get("model_cat")
        except (ValueError, AttributeError):
            cat = None
        if cat:
            return str(cat)
    return obj.parent.name if obj != root else ""
