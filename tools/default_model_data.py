"""Training and evaluation data of the default model, built from ../shared/data into WORK/data.

Every dataset is written once (skipped when its dataset.json exists) by `pointsam convert` or the
converters' Python API. PartNet-Mobility objects of the held-out categories go to the `val` split of
the object datasets; the held-out ScanNet scene is written only to `scannet_eval`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from default_model_recipe import (
    CROP_MARGINS,
    EVAL_DENSITIES,
    EVAL_SCENE,
    MESH_DENSITIES,
    NUM_SYNTHETIC,
    SHARED,
    SMOKE_EVAL_DENSITIES,
    SMOKE_MAX_BLOCKS,
    SMOKE_MAX_CROPS,
    SMOKE_MESH_DENSITIES,
    SMOKE_OBJECTS,
    TRAIN_SCENES,
    VAL_CATEGORIES,
)

from pointsam.data.converters import pointcept_scene, scene_blocks
from pointsam.data.converters.crops import instance_crops
from pointsam.data.converters.scannet_pointcept import LICENCE as SCANNET_LICENCE
from pointsam.data.dataset import DatasetWriter, is_dataset, read_index
from pointsam.data.synthetic import write_synthetic_dataset


def object_source(work: Path, smoke: bool) -> Path:
    """The PartNet-Mobility root to convert: the shared one, or (smoke) links to a few of its objects."""
    root = SHARED / "partnet_mobility"
    if not smoke:
        return root
    tiny = work / "smoke_source"
    for rel in SMOKE_OBJECTS:
        link = tiny / rel
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root / rel, target_is_directory=True)
    return tiny


def val_source(work: Path, objects: Path) -> Path:
    """Links to the held-out category folders of `objects` (for evaluation-only conversions)."""
    val = work / "val_source"
    for cat in VAL_CATEGORIES:
        link = val / cat
        if (objects / cat).is_dir() and not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((objects / cat).resolve(), target_is_directory=True)
    return val


def _convert(fmt: str, source: Path, out: Path, *extra: str) -> None:
    if is_dataset(out):
        return
    cmd = [sys.executable, "-m", "pointsam", "convert", fmt, str(source), "--out", str(out), *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _write(out: Path, name: str, clouds) -> None:
    if is_dataset(out):
        return
    with DatasetWriter(out, name=name, source=f"ScanNet (Pointcept layout) from {SHARED / 'scannet'}",
                       licence=SCANNET_LICENCE) as writer:
        for cloud in clouds:
            writer.add(cloud)


def prepare(work: Path, smoke: bool = False) -> dict[str, Path]:
    """Build every dataset under WORK/data; returns name -> folder."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    objects = object_source(work, smoke)
    val = ["--val-categories", *VAL_CATEGORIES]
    out: dict[str, Path] = {}
    out["partnet"] = data / "partnet"
    _convert("partnet", objects, out["partnet"], *val)
    densities = SMOKE_MESH_DENSITIES if smoke else MESH_DENSITIES
    eval_densities = SMOKE_EVAL_DENSITIES if smoke else EVAL_DENSITIES
    for n in sorted(set(densities) | set(eval_densities)):
        # evaluation-only sizes: the held-out objects only (all in the val split)
        source = objects if n in densities else val_source(work, objects)
        out[f"mobility_{n}"] = data / f"mobility_{n}"
        _convert("partnet-mobility", source, out[f"mobility_{n}"], "--points", str(n), *val)
    out["synthetic"] = data / "synthetic"
    if not is_dataset(out["synthetic"]):
        write_synthetic_dataset(out["synthetic"], 8 if smoke else NUM_SYNTHETIC,
                                num_points=2048 if smoke else 8192, seed=0)
    scenes = [SHARED / "scannet" / s for s in TRAIN_SCENES[: 1 if smoke else None]]
    names = ("scannet_scenes", "scannet_blocks", "scannet_crops", "scannet_eval")
    out.update({name: data / name for name in names})
    if not all(is_dataset(out[name]) for name in names):
        train = [pointcept_scene(s) for s in scenes]
        blocks = [b for s in train for b in scene_blocks(s)]
        crops = [c for s in train for c in instance_crops(s, margins=CROP_MARGINS)]
        if smoke:  # the smallest ones, so that the smoke run stays quick
            blocks = sorted(blocks, key=lambda c: c.num_points)[:SMOKE_MAX_BLOCKS]
            crops = sorted(crops, key=lambda c: c.num_points)[:SMOKE_MAX_CROPS]
        _write(out["scannet_scenes"], "scannet-scenes", [] if smoke else train)
        _write(out["scannet_blocks"], "scannet-blocks", blocks)
        _write(out["scannet_crops"], "scannet-crops", crops)
        _write(out["scannet_eval"], "scannet-eval", [pointcept_scene(SHARED / "scannet" / EVAL_SCENE)])
    return out


def sizes(folders: dict[str, Path]) -> list[dict]:
    """Clouds, masks, points and categories of each dataset split (the --prepare-only table)."""
    rows = []
    for name, folder in folders.items():
        if not is_dataset(folder):
            continue
        meta = read_index(folder)
        by_file = {c["file"]: c for c in meta["clouds"]}
        splits = meta.get("splits") or {"all": list(by_file)}
        for split, files in splits.items():
            clouds = [by_file[f] for f in files]
            rows.append({
                "dataset": name, "split": split, "clouds": len(clouds),
                "masks": sum(c.get("num_masks", 0) for c in clouds),
                "points": sum(c.get("num_points", 0) for c in clouds),
                "categories": sorted({c.get("category", "") for c in clouds}),
                "megabytes": round(sum((folder / f).stat().st_size for f in files) / 1e6, 1),
            })
    return rows


def sizes_table(rows: list[dict]) -> str:
    """Markdown table of `sizes`."""
    lines = ["| dataset | split | clouds | masks | points | categories | MB |",
             "|---|---|---:|---:|---:|---|---:|"]
    for r in rows:
        cats = r["categories"]
        cats = ", ".join(cats) if len(cats) <= 8 else f"{len(cats)} categories"
        lines.append(f"| {r['dataset']} | {r['split']} | {r['clouds']} | {r['masks']} | {r['points']:,} | "
                     f"{cats} | {r['megabytes']} |")
    return "\n".join(lines)
