"""Dataset mixtures: several datasets drawn with given weights, each with its own `perturb` flag.

The official code concatenates datasets (with optional repeats) and skips the small x/z
perturbation for ScanNet scenes; here each training cloud first picks a dataset with probability
weight / sum(weights), then the next cloud of that dataset's own shuffled pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointsam.data import LabelledCloud, PointCloudDataset
from pointsam.errors import InputError

__all__ = ["DATASET_KEYS", "DatasetMixture", "MixturePart", "check_dataset_entries", "load_mixture"]

DATASET_KEYS = ("path", "split", "weight", "perturb")


@dataclass
class MixturePart:
    """One dataset of a mixture: its clouds, sampling weight and whether to perturb x/z."""

    clouds: Sequence[LabelledCloud]
    weight: float = 1.0
    perturb: bool = True
    name: str = ""


class DatasetMixture(Sequence[LabelledCloud]):
    """Weighted mixture of datasets; indexing runs over the concatenation of all parts."""

    def __init__(self, parts: Sequence[MixturePart]) -> None:
        if not parts:
            raise InputError("a dataset mixture needs at least one dataset")
        for i, part in enumerate(parts):
            label = part.name or f"dataset {i}"
            if len(part.clouds) == 0:
                raise InputError(f"{label}: no clouds (empty dataset or split)")
            w = part.weight
            if isinstance(w, bool) or not isinstance(w, int | float) or not np.isfinite(w) or w <= 0:
                raise InputError(f"{label}: weight must be a positive number, got {w!r}")
        self.parts = list(parts)
        self._starts = np.cumsum([0] + [len(p.clouds) for p in self.parts])
        total = float(sum(p.weight for p in self.parts))
        self.probabilities = np.array([p.weight / total for p in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> LabelledCloud:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a mixture of {len(self)} clouds")
        index %= len(self)
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.parts[part].clouds[index - int(self._starts[part])]

    def pick_part(self, rng: np.random.Generator) -> int:
        """Index of the dataset the next cloud comes from (probability proportional to weight)."""
        if len(self.parts) == 1:
            return 0
        return int(rng.choice(len(self.parts), p=self.probabilities))


def check_dataset_entries(entries: Any) -> list[str]:
    """Problems with a config's `datasets` list ([] when it is valid)."""
    if not isinstance(entries, list | tuple):
        return [f"datasets must be a list of {{path, split, weight, perturb}} mappings, got {entries!r}"]
    errors = []
    for i, entry in enumerate(entries):
        where = f"datasets[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} must be a mapping with a 'path', got {entry!r}")
            continue
        unknown = sorted(set(entry) - set(DATASET_KEYS))
        if unknown:
            errors.append(f"{where}: unknown keys {unknown}; known: {list(DATASET_KEYS)}")
        path = entry.get("path")
        if not isinstance(path, str | Path) or not str(path):
            errors.append(f"{where}: 'path' must be a non-empty path, got {path!r}")
        split = entry.get("split")
        if split is not None and not isinstance(split, str):
            errors.append(f"{where}: 'split' must be a string, got {split!r}")
        w = entry.get("weight", 1.0)
        if isinstance(w, bool) or not isinstance(w, int | float) or not np.isfinite(w) or w <= 0:
            errors.append(f"{where}: 'weight' must be a positive number, got {w!r}")
        if not isinstance(entry.get("perturb", True), bool):
            errors.append(f"{where}: 'perturb' must be true or false, got {entry.get('perturb')!r}")
    return errors


def load_mixture(entries: Sequence[dict[str, Any]], split: str | None = None, perturb: bool = True
                 ) -> DatasetMixture:
    """Open the datasets of a config's `datasets` list; `split`/`perturb` are defaults for entries."""
    errors = check_dataset_entries(list(entries))
    if errors:
        raise InputError("invalid datasets:\n  " + "\n  ".join(errors))
    parts = []
    for entry in entries:
        part_split = entry.get("split", split)
        clouds = PointCloudDataset(entry["path"], split=part_split)
        name = str(entry["path"]) + (f" (split {part_split})" if part_split else "")
        parts.append(MixturePart(clouds, float(entry.get("weight", 1.0)), bool(entry.get("perturb", perturb)),
                                 name))
    return DatasetMixture(parts)
