"""The pointsam training-dataset format: a folder of ``.npz`` labelled clouds plus ``dataset.json``.

Format (version 1)
==================

A dataset is a directory holding ``dataset.json`` and one ``.npz`` file per point cloud.

``dataset.json`` (UTF-8 JSON object)::

    {
      "format": "pointsam-dataset",        # required, exactly this string
      "format_version": 1,                 # required, integer; readers refuse newer versions
      "name": "partnet-mobility-dev",      # free text
      "source": "PartNet-Mobility point samples from /data/pm",  # provenance, free text
      "licence": "non-commercial research", # licence note of the source data, free text
      "num_clouds": 2,                     # required, must equal len(clouds)
      "clouds": [                          # required, one entry per cloud, in dataset order
        {"file": "Faucet_1280.npz",        # required, path relative to the dataset directory
         "category": "Faucet",             # optional, used by split_by_category
         "num_points": 10000, "num_masks": 14}   # optional, informative
      ],
      "splits": {"train": ["Faucet_1280.npz"], "val": ["Oven_101773.npz"]}  # optional
    }

Each cloud ``.npz`` (``numpy.savez`` or ``numpy.savez_compressed``; read with
``allow_pickle=False``, so no object arrays) holds:

=================  ===================  ==========================================================
key                dtype, shape         meaning
=================  ===================  ==========================================================
``xyz``            float32 (N, 3)       point coordinates, finite (required)
``rgb``            uint8 (N, 3)         colours 0..255 (optional)
``mask_indices``   int32 (K,)           concatenated point indices of all masks; each mask's
                                        slice is sorted ascending, without repeats (required)
``mask_offsets``   int64 (M + 1,)       CSR offsets: mask m is
                                        ``mask_indices[mask_offsets[m]:mask_offsets[m + 1]]``;
                                        ``mask_offsets[0] == 0``, ``mask_offsets[-1] == K``,
                                        non-decreasing (required; M may be 0)
``mask_names``     unicode (M,)         name of each mask, e.g. ``"door/handle"`` (optional)
``mask_levels``    int32 (M,)           depth of each mask in a part hierarchy, 0 = whole object
                                        (optional)
``category``       unicode scalar ()    category of the cloud, e.g. ``"Faucet"`` (optional)
``source``         unicode scalar ()    where the cloud came from (optional)
=================  ===================  ==========================================================

Masks may overlap (a point can belong to a part and to the parts containing it); names need not
be unique (two sibling parts may both be ``".../switch"``). Other keys are ignored. Readers are
lenient where it is safe: any float ``xyz`` and any integer index dtype are accepted, unsorted mask
slices are sorted; empty masks are dropped with a warning (writers never store them). Out-of-range
indices, NaN coordinates, a wrong-length ``rgb``, missing keys, object arrays and corrupt files are
errors (:class:`~pointsam.errors.FileFormatError`, naming the file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.pointcloud import rgb_to_uint8
from pointsam.io.writers import atomic_output

FORMAT = "pointsam-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"
REQUIRED_KEYS = ("xyz", "mask_indices", "mask_offsets")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


# ----------------------------------------------------------------------------- one cloud


@dataclass
class LabelledCloud:
    """A point cloud with (possibly overlapping) masks stored as sorted point-index arrays."""

    xyz: np.ndarray
    masks: list[np.ndarray]
    rgb: np.ndarray | None = None
    names: list[str] | None = None
    levels: np.ndarray | None = None
    category: str = ""
    source: str = ""
    name: str = ""
    dropped_empty: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self.xyz = _check_xyz(self.xyz)
        n = len(self.xyz)
        if self.rgb is not None:
            rgb = np.asarray(self.rgb)
            if rgb.ndim != 2 or rgb.shape[1] != 3 or len(rgb) != n:
                raise InputError(f"rgb must have shape ({n}, 3) to match xyz, got {rgb.shape}")
            self.rgb = rgb_to_uint8(rgb)
        masks = [_check_mask(m, n, i) for i, m in enumerate(self.masks)]
        m = len(masks)
        if self.names is not None:
            if len(self.names) != m:
                raise InputError(f"{len(self.names)} mask names for {m} masks")
            self.names = [str(s) for s in self.names]
        if self.levels is not None:
            levels = np.asarray(self.levels)
            if levels.shape != (m,) or (m and levels.dtype.kind not in "iu"):
                raise InputError(f"mask levels must be {m} integers, got {levels.dtype} {levels.shape}")
            self.levels = levels.astype(np.int32)
        keep = [i for i, mask in enumerate(masks) if len(mask)]
        if len(keep) < m:
            self.dropped_empty += m - len(keep)
            masks = [masks[i] for i in keep]
            self.names = None if self.names is None else [self.names[i] for i in keep]
            self.levels = None if self.levels is None else self.levels[keep]
        self.masks = masks
        self.category = str(self.category)
        self.source = str(self.source)
        self.name = str(self.name)

    @property
    def num_points(self) -> int:
        """Number of points N."""
        return len(self.xyz)

    @property
    def num_masks(self) -> int:
        """Number of masks M."""
        return len(self.masks)

    def dense_masks(self) -> np.ndarray:
        """Masks as a boolean (M, N) array."""
        out = np.zeros((self.num_masks, self.num_points), dtype=bool)
        for row, idx in zip(out, self.masks, strict=True):
            row[idx] = True
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored in a cloud ``.npz`` (see the module docstring)."""
        offsets = np.zeros(self.num_masks + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(m) for m in self.masks])
        indices = np.concatenate(self.masks) if self.masks else np.zeros(0, np.int64)
        arrays = {"xyz": self.xyz, "mask_indices": indices.astype(np.int32), "mask_offsets": offsets}
        if self.rgb is not None:
            arrays["rgb"] = self.rgb
        if self.names is not None:
            arrays["mask_names"] = np.array(self.names, dtype=np.str_).reshape(self.num_masks)
        if self.levels is not None:
            arrays["mask_levels"] = self.levels
        if self.category:
            arrays["category"] = np.array(self.category, dtype=np.str_)
        if self.source:
            arrays["source"] = np.array(self.source, dtype=np.str_)
        return arrays

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the cloud as a ``.npz`` file, atomically, refusing to replace one unless asked."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"{path}: a labelled cloud file must end in .npz")
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **self.to_arrays())

    @classmethod
    def load(cls, path: str | Path) -> LabelledCloud:
        """Read and validate a cloud ``.npz`` file written by :meth:`save` or by hand."""
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if "allow_pickle" in str(exc):
                raise FileFormatError(f"{path}: holds object (pickled) arrays, which the format "
                                      "forbids; store names as unicode arrays") from exc
            raise FileFormatError(f"{path}: not a readable .npz file (truncated or corrupt?): "
                                  f"{exc}") from exc
        try:
            cloud = cls.from_arrays(arrays, name=path.stem)
        except InputError as exc:
            raise FileFormatError(f"{path}: {exc}") from exc
        if cloud.dropped_empty:
            warnings.warn(f"{path}: skipped {cloud.dropped_empty} empty mask(s)", stacklevel=2)
        return cloud

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], name: str = "") -> LabelledCloud:
        """Build a cloud from the ``.npz`` arrays, checking keys, dtypes and the CSR layout."""
        missing = [k for k in REQUIRED_KEYS if k not in arrays]
        if missing:
            raise InputError(f"missing required array(s) {', '.join(missing)} "
                             f"(found: {', '.join(sorted(arrays)) or 'none'})")
        indices, offsets = arrays["mask_indices"], arrays["mask_offsets"]
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise InputError(f"mask_indices must be a 1-D integer array, got {indices.dtype} "
                             f"{indices.shape}")
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or len(offsets) < 1:
            raise InputError(f"mask_offsets must be a non-empty 1-D integer array, got "
                             f"{offsets.dtype} {offsets.shape}")
        if offsets[0] != 0 or offsets[-1] != len(indices) or np.any(np.diff(offsets) < 0):
            raise InputError(f"mask_offsets must rise from 0 to len(mask_indices)={len(indices)}")
        masks = np.split(indices, offsets[1:-1].astype(np.int64))
        return cls(
            xyz=arrays["xyz"],
            masks=masks,
            rgb=arrays.get("rgb"),
            names=arrays["mask_names"].tolist() if "mask_names" in arrays else None,
            levels=arrays.get("mask_levels"),
            category=_scalar_str(arrays, "category"),
            source=_scalar_str(arrays, "source"),
            name=name,
        )


def _scalar_str(arrays: dict[str, np.ndarray], key: str) -> str:
    value = arrays.get(key)
    if value is None:
        return ""
    if value.shape != () or value.dtype.kind != "U":
        raise InputError(f"{key} must be a unicode scalar, got {value.dtype} {value.shape}")
    return str(value)


def _check_xyz(xyz: np.ndarray) -> np.ndarray:
    xyz = np.asarray(xyz)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.dtype.kind not in "iuf":
        raise InputError(f"xyz must be a numeric (N, 3) array, got {xyz.dtype} {xyz.shape}")
    if not np.isfinite(xyz).all():
        bad = int((~np.isfinite(xyz)).any(axis=1).sum())
        raise InputError(f"xyz has {bad} point(s) with NaN or infinite coordinates")
    return np.ascontiguousarray(xyz, dtype=np.float32)


def _check_mask(mask: np.ndarray, n: int, i: int) -> np.ndarray:
    """A mask as sorted unique int64 indices (a boolean (N,) mask is converted)."""
    mask = np.asarray(mask)
    if mask.dtype == bool:
        if mask.shape != (n,):
            raise InputError(f"boolean mask {i} must have shape ({n},), got {mask.shape}")
        return np.flatnonzero(mask)
    if mask.ndim != 1 or (mask.size and mask.dtype.kind not in "iu"):
        raise InputError(f"mask {i} must be a 1-D array of point indices, got {mask.dtype} {mask.shape}")
    mask = mask.astype(np.int64)
    if mask.size and (mask.min() < 0 or mask.max() >= n):
        raise InputError(f"mask {i} has point indices outside [0, {n}): "
                         f"{int(mask.min())}..{int(mask.max())}")
    if mask.size > 1 and not np.all(mask[1:] > mask[:-1]):
        mask = np.unique(mask)
    return mask


# ------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Entry:
    file: str
    category: str


class PointCloudDataset(Sequence[LabelledCloud]):
    """Read a dataset directory: ``len``, indexing gives :class:`LabelledCloud` (map-style)."""

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.meta = read_index(self.root)
        entries = [_Entry(c["file"], str(c.get("category", ""))) for c in self.meta["clouds"]]
        if split is not None:
            splits = self.meta.get("splits") or {}
            if split not in splits:
                raise InputError(f"{self.root}: no split {split!r} (splits: {', '.join(splits) or 'none'})")
            wanted = set(splits[split])
            entries = [e for e in entries if e.file in wanted]
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> LabelledCloud:  # type: ignore[override]
        entry = self._entries[index]
        cloud = LabelledCloud.load(self.root / entry.file)
        if not cloud.category:
            cloud.category = entry.category
        return cloud

    def __iter__(self) -> Iterator[LabelledCloud]:
        return (self[i] for i in range(len(self)))

    @property
    def files(self) -> list[str]:
        """Cloud file names, relative to the dataset root, in dataset order."""
        return [e.file for e in self._entries]

    @property
    def categories(self) -> list[str]:
        """Category of each cloud (empty string where none is recorded)."""
        return [e.category for e in self._entries]

    def subset(self, indices: Iterable[int]) -> PointCloudDataset:
        """A view on some of the clouds, in the given order."""
        view = object.__new__(PointCloudDataset)
        view.root, view.meta = self.root, self.meta
        view._entries = [self._entries[i] for i in indices]
        return view

    def split_by_category(self, val_categories: Iterable[str]) -> tuple[PointCloudDataset, PointCloudDataset]:
        """(train, val): clouds whose category is in `val_categories` go to val."""
        val = set(val_categories)
        unknown = val - set(self.categories)
        if unknown:
            raise InputError(f"unknown categories {sorted(unknown)}; this dataset has "
                             f"{sorted(set(self.categories))}")
        is_val = [c in val for c in self.categories]
        return (self.subset(i for i, v in enumerate(is_val) if not v),
                self.subset(i for i, v in enumerate(is_val) if v))


def read_index(root: Path) -> dict:
    """Read and check ``dataset.json`` of the dataset at `root`."""
    path = root / INDEX_FILE
    if not path.is_file():
        raise FileFormatError(f"{root}: not a pointsam dataset (no {INDEX_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileFormatError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: not a pointsam dataset index (format != {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FileFormatError(f"{path}: unsupported format_version {version!r} "
                              f"(this pointsam reads up to {FORMAT_VERSION})")
    clouds = meta.get("clouds")
    if not isinstance(clouds, list) or not all(isinstance(c, dict) and "file" in c for c in clouds):
        raise FileFormatError(f"{path}: 'clouds' must be a list of objects with a 'file'")
    if meta.get("num_clouds") != len(clouds):
        raise FileFormatError(f"{path}: num_clouds={meta.get('num_clouds')!r} but "
                              f"{len(clouds)} clouds are listed")
    missing = [c["file"] for c in clouds if not (root / c["file"]).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileFormatError(f"{root}: missing cloud file(s) {', '.join(missing[:3])}{more}")
    return meta


# ------------------------------------------------------------------------------- writing


class DatasetWriter:
    """Build a dataset in a temporary folder; :meth:`close` writes ``dataset.json`` and moves it in."""

    def __init__(self, root: str | Path, name: str, source: str = "", licence: str = "",
                 overwrite: bool = False) -> None:
        self.root = Path(root)
        if self.root.exists():
            if not self.root.is_dir():
                raise FileExistsError(f"{self.root} exists and is not a directory")
            is_dataset = (self.root / INDEX_FILE).is_file()
            if any(self.root.iterdir()) and not is_dataset:
                raise FileExistsError(f"{self.root} is a non-empty folder that is not a pointsam "
                                      "dataset; refusing to write into it")
            if is_dataset and not overwrite:
                raise FileExistsError(f"{self.root} already holds a dataset; pass overwrite=True "
                                      "(--overwrite on the command line) to replace it")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.", suffix=".tmp",
                                          dir=self.root.parent))
        self.meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
                     "source": source, "licence": licence}
        self._clouds: list[dict] = []
        self._splits: dict[str, list[str]] = {}
        self.dropped_empty = 0
        self._closed = False

    def add(self, cloud: LabelledCloud, name: str | None = None, split: str | None = None) -> str:
        """Store one cloud; returns its file name inside the dataset."""
        if self._closed:
            raise InputError("this DatasetWriter is closed")
        stem = _SAFE.sub("_", name or cloud.name or "cloud").strip("._") or "cloud"
        file, k = f"{stem}.npz", 1
        while (self._tmp / file).exists():
            file, k = f"{stem}_{k}.npz", k + 1
        cloud.save(self._tmp / file)
        self.dropped_empty += cloud.dropped_empty
        self._clouds.append({"file": file, "category": cloud.category,
                             "num_points": cloud.num_points, "num_masks": cloud.num_masks})
        if split is not None:
            self._splits.setdefault(split, []).append(file)
        return file

    def __len__(self) -> int:
        return len(self._clouds)

    @property
    def num_masks(self) -> int:
        """Masks written so far, over all clouds."""
        return sum(c["num_masks"] for c in self._clouds)

    def close(self) -> Path:
        """Write ``dataset.json`` and move the finished dataset to `root` (replacing the old one)."""
        if self._closed:
            return self.root
        meta = {**self.meta, "num_clouds": len(self._clouds), "clouds": self._clouds}
        if self._splits:
            meta["splits"] = self._splits
        (self._tmp / INDEX_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.chmod(self._tmp, 0o777 & ~_umask())
        old = None
        if self.root.exists():
            old = self.root.with_name(f".{self.root.name}.old-{os.getpid()}")
            os.replace(self.root, old)
        os.replace(self._tmp, self.root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._closed = True
        if self.dropped_empty:
            warnings.warn(f"{self.root}: skipped {self.dropped_empty} empty mask(s)", stacklevel=2)
        return self.root

    def abort(self) -> None:
        """Throw away what was written; `root` is left as it was."""
        self._closed = True
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
