"""Per-point part labels from a dataset's masks, per-category part vocabularies and k-shot splits.

Label rule (documented in the README): masks of level < 1 (the whole object, PartNet-Mobility
``link:`` masks) are ignored. With ``level=None`` ("auto") each shape uses the shallowest hierarchy
level at which it splits into at least two masks (PartNet: the parts just below the object, after
the single "type" node such as ``normal_faucet`` that the converter merges into the root). With a
fixed ``level`` each point takes the deepest mask of level 1..level holding it. A part is named by
the last component of its mask name (``"table/desk/tabletop"`` -> ``"tabletop"``), so the same part
under different object types shares one label. Masks without levels (ShapeNet-part conversions) are
all parts. Points in no chosen mask, or in two overlapping ones, are unlabelled (-1) and ignored.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pointsam.data.dataset import LabelledCloud, PointCloudDataset
from pointsam.errors import InputError

IGNORE = -1


def part_name(mask_name: str) -> str:
    """The part a mask names: the last component of its hierarchy path."""
    return mask_name.rsplit("/", 1)[-1]


def _auto_level(levels: np.ndarray) -> int | None:
    present = sorted(set(levels[levels >= 1].tolist()))
    if not present:
        return None
    counts = {lvl: int((levels == lvl).sum()) for lvl in present}
    return next((lvl for lvl in present if counts[lvl] >= 2), present[0])


def part_labels(cloud: LabelledCloud, level: int | None = None) -> tuple[np.ndarray, list[str]]:
    """(labels, names): per-point index into `names` (-1 = unlabelled) under the module's rule."""
    if level is not None and level < 1:
        raise InputError(f"part level must be >= 1 (1 = just below the whole object), got {level}")
    if cloud.names is None:
        raise InputError(f"cloud {cloud.name or '?'} has no mask names; part segmentation needs "
                         "names that are consistent across the shapes of a category")
    levels = np.ones(cloud.num_masks, np.int32) if cloud.levels is None else cloud.levels
    if level is None:
        chosen = _auto_level(levels)
        use = [i for i in range(cloud.num_masks) if levels[i] == chosen]
    else:
        use = sorted((i for i in range(cloud.num_masks) if 1 <= levels[i] <= level),
                     key=lambda i: levels[i])
    names = sorted({part_name(cloud.names[i]) for i in use})
    code = {n: k for k, n in enumerate(names)}
    labels = np.full(cloud.num_points, IGNORE, np.int64)
    owner_level = np.zeros(cloud.num_points, np.int32)
    clash = np.zeros(cloud.num_points, bool)
    for i in use:  # shallow to deep: deeper masks refine; two masks of one level clash
        idx = cloud.masks[i]
        same = (owner_level[idx] == levels[i]) & (labels[idx] != code[part_name(cloud.names[i])])
        clash[idx[same]] = True
        labels[idx] = code[part_name(cloud.names[i])]
        owner_level[idx] = levels[i]
    labels[clash] = IGNORE
    return labels, names


@dataclass
class Shape:
    """One labelled shape of a category: its file, cloud and per-point labels in the vocabulary."""

    file: str
    cloud: LabelledCloud
    labels: np.ndarray  # (N,) int64 indices into the category's parts, -1 = ignored


@dataclass
class CategoryEpisode:
    """A category's part vocabulary, its k support (training) shapes and its test shapes."""

    category: str
    parts: list[str]
    support: list[Shape]
    test: list[Shape]


def split_categories(
    dataset: PointCloudDataset,
    shots: int,
    seed: int = 0,
    categories: Sequence[str] | None = None,
    level: int | None = None,
    max_test: int | None = None,
) -> list[CategoryEpisode]:
    """Group shapes by category, draw `shots` support shapes per category (seeded), test on the rest.

    The vocabulary of a category is every part name that occurs in any of its shapes. Shapes with no
    labelled point are left out. Raises `InputError` when a category has fewer than shots + 1 shapes.
    """
    if not isinstance(shots, int) or shots < 1:
        raise InputError(f"shots must be an integer >= 1, got {shots!r}")
    if max_test is not None and max_test < 1:
        raise InputError(f"max_test must be >= 1, got {max_test}")
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i, cat in enumerate(dataset.categories):
        by_cat[cat].append(i)
    if categories:
        unknown = sorted(set(categories) - set(by_cat))
        if unknown:
            raise InputError(f"unknown categories {unknown}; {dataset.root} has "
                             f"{sorted(c for c in by_cat if c)}")
        wanted = list(dict.fromkeys(categories))
    else:
        wanted = sorted(c for c in by_cat if c)
    if not wanted:
        raise InputError(f"{dataset.root}: no cloud has a category; few-shot part segmentation "
                         "trains one head per category")
    rng = random.Random(seed)
    episodes, short = [], []
    for cat in wanted:
        shapes = []
        for i in by_cat[cat]:
            cloud = dataset[i]
            labels, names = part_labels(cloud, level)
            if (labels >= 0).any():
                shapes.append((dataset.files[i], cloud, labels, names))
        if len(shapes) <= shots:
            short.append(f"{cat} ({len(shapes)})")
            continue
        parts = sorted({n for *_, names in shapes for n in names})
        code = {n: k for k, n in enumerate(parts)}
        order = list(range(len(shapes)))
        rng.shuffle(order)
        mapped = []
        for j in order:
            file, cloud, labels, names = shapes[j]
            lut = np.array([code[n] for n in names] + [IGNORE], np.int64)
            mapped.append(Shape(file, cloud, lut[labels]))
        test = mapped[shots:]
        episodes.append(CategoryEpisode(cat, parts, mapped[:shots], test[:max_test] if max_test else test))
    if short:
        raise InputError(f"{shots}-shot needs at least {shots + 1} labelled shapes per category "
                         f"({shots} to train, at least one to test); too few in: {', '.join(short)}. "
                         "Lower --shots or pick other --categories")
    return episodes
