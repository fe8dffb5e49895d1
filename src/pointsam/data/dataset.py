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

Limits: a cloud file may hold at most :data:`MAX_POINTS` points and :data:`MAX_CLOUD_BYTES` of
(uncompressed) arrays; both are checked from the ``.npy`` headers inside the ``.npz`` before any
array is inflated, so a small compressed file cannot exhaust memory. Only the keys above are read.
Every ``file`` in ``dataset.json`` (and every name in ``splits``) must be a relative path inside
the dataset folder: absolute paths and ``..`` components are refused.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import TracebackType

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.preprocessing import check_xyz, rgb_to_uint8
from pointsam.utils.files import atomic_output, current_umask

FORMAT = "pointsam-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"
REQUIRED_KEYS = ("xyz", "mask_indices", "mask_offsets")
#: Every array key a reader looks at (others in a file are ignored and never inflated).
KNOWN_KEYS = (*REQUIRED_KEYS, "rgb", "mask_names", "mask_levels", "category", "source")
#: Most points one cloud file may hold (checked before reading its arrays).
MAX_POINTS = 50_000_000
#: Most bytes the arrays of one cloud file may take once inflated (checked before reading them).
MAX_CLOUD_BYTES = 2 * 1024**3
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
        self.xyz = np.ascontiguousarray(check_xyz(self.xyz), dtype=np.float32)
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

    def save(self, path: str | Path, overwrite: bool = False,
             extra: dict[str, np.ndarray] | None = None) -> None:
        """Write the cloud as a ``.npz`` file, atomically, refusing to replace one unless asked.

        `extra` arrays (e.g. per-mask provenance) are stored beside the format's own; readers ignore them.
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"{path}: a labelled cloud file must end in .npz")
        arrays = self.to_arrays()
        clash = sorted(set(extra or {}) & (set(arrays) | set(KNOWN_KEYS)))
        if clash:
            raise InputError(f"extra arrays may not use the format's own keys: {', '.join(clash)}")
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays, **(extra or {}))

    @classmethod
    def load(cls, path: str | Path) -> LabelledCloud:
        """Read and validate a cloud ``.npz`` file written by :meth:`save` or by hand."""
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"{path}: no such file")
        arrays = read_cloud_arrays(path)
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


def read_cloud_arrays(path: str | Path, keys: Sequence[str] = KNOWN_KEYS) -> dict[str, np.ndarray]:
    """The arrays `keys` of a ``.npz`` file, after checking their sizes from the ``.npy`` headers.

    Nothing is inflated before every wanted array's shape and dtype are known to fit
    :data:`MAX_POINTS` and :data:`MAX_CLOUD_BYTES`; object (pickled) arrays are refused.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename[: -len(".npy")]: info for info in zf.infolist()
                       if info.filename.endswith(".npy") and info.filename[: -len(".npy")] in keys}
            headers = {key: _npy_header(zf, info) for key, info in members.items()}
            _check_sizes(path, headers)
            arrays = {}
            for key, info in members.items():
                with zf.open(info) as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError,
            NotImplementedError) as exc:
        raise FileFormatError(f"{path}: not a readable .npz file (truncated or corrupt?): {exc}") from exc
    return arrays


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the header of one ``.npy`` member, reading only its first bytes."""
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):  # 3.0 differs from 2.0 only in the header's text encoding
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{info.filename}: unsupported .npy version {version}")
    return tuple(int(d) for d in shape), dtype


def _check_sizes(path: Path, headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Refuse object arrays, more than MAX_POINTS points or more than MAX_CLOUD_BYTES of arrays."""
    total = 0
    for key, (shape, dtype) in headers.items():
        if dtype.hasobject:
            raise FileFormatError(f"{path}: holds object (pickled) arrays ({key!r}), which the format "
                                  "forbids; store names as unicode arrays")
        total += math.prod(shape) * dtype.itemsize
    xyz_shape = headers.get("xyz", ((0,), None))[0]
    if xyz_shape and xyz_shape[0] > MAX_POINTS:
        raise FileFormatError(f"{path}: {xyz_shape[0]:,} points; a cloud file may hold at most "
                              f"{MAX_POINTS:,} (pointsam.data.dataset.MAX_POINTS): split the cloud")
    if total > MAX_CLOUD_BYTES:
        raise FileFormatError(f"{path}: its arrays would take {total / 1024**3:.1f} GiB once inflated; a "
                              f"cloud file may hold at most {MAX_CLOUD_BYTES / 1024**3:.0f} GiB "
                              "(pointsam.data.dataset.MAX_CLOUD_BYTES)")


def _scalar_str(arrays: dict[str, np.ndarray], key: str) -> str:
    value = arrays.get(key)
    if value is None:
        return ""
    if value.shape != () or value.dtype.kind != "U":
        raise InputError(f"{key} must be a unicode scalar, got {value.dtype} {value.shape}")
    return str(value)


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


def read_index(root: str | Path) -> dict:
    """Read and check ``dataset.json`` of the dataset at `root` (types, paths, listed files)."""
    root = Path(root)
    path = root / INDEX_FILE
    if not path.is_file():
        raise FileFormatError(f"{root}: not a pointsam dataset (no {INDEX_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FileFormatError(f"{path}: not a pointsam dataset index (format != {FORMAT!r})")
    version = meta.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise FileFormatError(f"{path}: unsupported format_version {version!r} "
                              f"(this pointsam reads 1 to {FORMAT_VERSION})")
    for key in ("name", "source", "licence"):
        if not isinstance(meta.get(key, ""), str):
            raise FileFormatError(f"{path}: {key!r} must be a string, got {type(meta[key]).__name__}")
    clouds = meta.get("clouds")
    if not isinstance(clouds, list) or not all(isinstance(c, dict) and "file" in c for c in clouds):
        raise FileFormatError(f"{path}: 'clouds' must be a list of objects with a 'file'")
    if type(meta.get("num_clouds")) is not int or meta["num_clouds"] != len(clouds):
        raise FileFormatError(f"{path}: num_clouds={meta.get('num_clouds')!r} but "
                              f"{len(clouds)} clouds are listed")
    for i, entry in enumerate(clouds):
        _check_member(path, f"clouds[{i}].file", entry["file"])
        if not isinstance(entry.get("category", ""), str):
            raise FileFormatError(f"{path}: clouds[{i}].category must be a string, got "
                                  f"{entry['category']!r}")
    files = [c["file"] for c in clouds]
    twice = sorted({f for f in files if files.count(f) > 1})
    if twice:
        raise FileFormatError(f"{path}: cloud file(s) listed twice: {', '.join(twice[:3])}")
    _check_splits(path, meta.get("splits"), set(files))
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise FileFormatError(f"{root}: missing cloud file(s) {', '.join(missing[:3])}{more}")
    return meta


def _check_member(index: Path, what: str, file: object) -> None:
    """A dataset member must be a relative path that stays inside the dataset folder."""
    if not isinstance(file, str) or not file:
        raise FileFormatError(f"{index}: {what} must be a non-empty string (a path relative to the "
                              f"dataset folder), got {file!r}")
    posix, windows = PurePosixPath(file), PureWindowsPath(file)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in windows.parts \
            or "\0" in file:
        raise FileFormatError(f"{index}: {what} {file!r} points outside the dataset folder; files must "
                              "be relative paths inside it (no absolute paths, no '..')")


def _check_splits(index: Path, splits: object, files: set[str]) -> None:
    """``splits`` is optional; if present: split name -> list of files listed in ``clouds``."""
    if splits is None:
        return
    if not isinstance(splits, dict):
        raise FileFormatError(f"{index}: 'splits' must be an object mapping split names to lists of "
                              f"cloud files, got {type(splits).__name__}")
    for name, members in splits.items():
        if not isinstance(members, list) or not all(isinstance(f, str) for f in members):
            raise FileFormatError(f"{index}: split {name!r} must be a list of cloud file names")
        unknown = [f for f in members if f not in files]
        if unknown:
            raise FileFormatError(f"{index}: split {name!r} names file(s) not listed in 'clouds': "
                                  f"{', '.join(map(repr, unknown[:3]))}")


def is_dataset(root: str | Path) -> bool:
    """Whether `root` holds a pointsam ``dataset.json`` (format checked, files not)."""
    path = Path(root) / INDEX_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def owned_files(root: str | Path) -> list[str]:
    """Files the dataset at `root` owns: its ``dataset.json`` and every safe ``clouds[].file``."""
    try:
        meta = json.loads((Path(root) / INDEX_FILE).read_text(encoding="utf-8"))
        entries = meta["clouds"] if isinstance(meta, dict) and isinstance(meta.get("clouds"), list) else []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        entries = []
    files = [INDEX_FILE]
    for entry in entries:
        try:
            _check_member(Path(root) / INDEX_FILE, "file", entry.get("file"))
        except (FileFormatError, AttributeError):
            continue  # an unsafe or malformed entry owns nothing
        if entry["file"] not in files:
            files.append(entry["file"])
    return files


def write_index(root: str | Path, clouds: list[dict], name: str, source: str = "", licence: str = "",
                splits: dict[str, list[str]] | None = None) -> dict:
    """Write ``dataset.json`` for the cloud files already in `root`, atomically; returns it.

    `clouds` holds one ``{"file", "category", "num_points", "num_masks"}`` entry per cloud, in
    dataset order. The index is checked as :func:`read_index` would before it replaces the old one.
    """
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "source": source,
            "licence": licence, "num_clouds": len(clouds), "clouds": clouds}
    if splits:
        meta["splits"] = splits
    root = Path(root)
    index = root / INDEX_FILE
    for i, entry in enumerate(clouds):
        _check_member(index, f"clouds[{i}].file", entry.get("file"))
    _check_splits(index, splits, {c["file"] for c in clouds})
    with atomic_output(index, overwrite=True) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


# ------------------------------------------------------------------------------- writing


class DatasetWriter:
    """Build a dataset in a temporary folder; :meth:`close` writes ``dataset.json`` and moves it in.

    `root` may be missing, an empty folder, or (with `overwrite`) an existing pointsam dataset:
    then only what that dataset owns (its ``dataset.json`` and the cloud files it lists) is
    replaced; other files in the folder are kept, and new cloud files never take their names.
    Any other non-empty folder is refused.
    """

    def __init__(self, root: str | Path, name: str, source: str = "", licence: str = "",
                 overwrite: bool = False) -> None:
        self.root = Path(root)
        self._old: list[str] = []  # files of the dataset being replaced
        self._foreign: set[str] = set()  # other names at root, never used for a new cloud file
        if self.root.exists():
            if not self.root.is_dir():
                raise FileExistsError(f"{self.root} exists and is not a directory")
            present = {p.name for p in self.root.iterdir()}
            if present and not is_dataset(self.root):
                raise FileExistsError(f"{self.root} is a non-empty folder that is not a pointsam "
                                      "dataset; refusing to write into it")
            if present and not overwrite:
                raise FileExistsError(f"{self.root} already holds a dataset; pass overwrite=True "
                                      "(--overwrite on the command line) to replace it")
            if present:
                self._old = [f for f in owned_files(self.root) if (self.root / f).is_file()]
                self._foreign = {n.lower() for n in present} - {f.lower() for f in self._old}
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.", suffix=".tmp",
                                          dir=self.root.parent))
        self.meta = {"name": name, "source": source, "licence": licence}
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
        while (self._tmp / file).exists() or file.lower() in self._foreign:
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
        """Write ``dataset.json`` and move the finished dataset to `root`.

        A replaced dataset's own files are first moved to a hidden folder beside `root` and deleted
        only once the new dataset is in place; nothing else in `root` is touched.
        """
        if self._closed:
            return self.root
        write_index(self._tmp, self._clouds, **self.meta, splits=self._splits or None)
        if not self.root.exists() or not any(self.root.iterdir()):
            os.chmod(self._tmp, 0o777 & ~current_umask())
            os.replace(self._tmp, self.root)  # rename(2) also replaces an empty folder
        else:
            self._replace_owned()
        self._closed = True
        if self.dropped_empty:
            warnings.warn(f"{self.root}: skipped {self.dropped_empty} empty mask(s)", stacklevel=2)
        return self.root

    def _replace_owned(self) -> None:
        """Move the old dataset's files aside, the new ones (index last) in, then drop the old ones."""
        backup = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.old-", dir=self.root.parent))
        for file in self._old:
            src = self.root / file
            if src.is_file() or src.is_symlink():
                (backup / file).parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, backup / file)
        new = [c["file"] for c in self._clouds]
        for file in new + [INDEX_FILE]:
            os.replace(self._tmp / file, self.root / file)
        shutil.rmtree(self._tmp, ignore_errors=True)
        shutil.rmtree(backup, ignore_errors=True)

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

