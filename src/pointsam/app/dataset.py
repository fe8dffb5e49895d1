"""Dataset mode of `pointsam annotate FOLDER`: the folder's clouds and meshes with their progress, one sidecar
per file, resuming at the file last open, one export for the whole folder.

Progress lives in `LABELS/pointsam-dataset.json` ({"current": relative path, "labelled": [relative paths]});
a file's status is "labelled" (marked so), "in progress" (its sidecar exists), "untouched", or "unreadable"
(it, or its sidecar, could not be opened: listed with the reason and skipped; nothing of it is written).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from pointsam.app.sidecar import folder_is_writable
from pointsam.errors import FileFormatError, InputError
from pointsam.io.mesh import MESH_EXTENSIONS
from pointsam.io.readers import TEXT_EXTENSIONS
from pointsam.utils.files import atomic_output

CLOUD_SUFFIXES = (".ply", ".las", ".laz", ".pcd", ".npy", ".npz", *TEXT_EXTENSIONS, *MESH_EXTENSIONS)
PROGRESS_FILE = "pointsam-dataset.json"
EXPORT_FOLDER = "pointsam-exports"
SIDECAR_SUFFIX = ".pointsam.json"
OUTPUT_MARKERS = (".labels.", ".label.npy", ".instance.npy", ".labelled.", ".objects.json", ".classes.json")
MAX_FILES = 100_000


@dataclass
class DatasetFile:
    """One file of the folder: its path, its name relative to the folder, and why it cannot be opened."""

    path: Path
    name: str
    error: str = ""


def is_annotation_output(path: Path) -> bool:
    """Sidecars and exports of pointsam itself (never listed as inputs)."""
    name = path.name
    return name.endswith(SIDECAR_SUFFIX) or name == PROGRESS_FILE or any(m in name for m in OUTPUT_MARKERS)


def scan_folder(folder: Path, skip: tuple[Path, ...] = ()) -> list[DatasetFile]:
    """Every cloud or mesh under `folder` (sorted, hidden files and pointsam's own outputs left out)."""
    skip = tuple(p.resolve() for p in skip)
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in CLOUD_SUFFIXES or is_annotation_output(path):
            continue
        if any(path.resolve().is_relative_to(s) for s in skip):
            continue
        files.append(DatasetFile(path, rel.as_posix()))
        if len(files) > MAX_FILES:
            raise InputError(f"{folder} holds over {MAX_FILES} clouds; annotate a sub-folder")
    return files


class Dataset:
    """The files of a folder, their sidecars and progress."""

    def __init__(self, folder: Path, labels_dir: Path | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{folder}: not a folder")
        if labels_dir is None:
            writable = folder_is_writable(self.folder.resolve())
            labels_dir = self.folder if writable else Path.cwd() / f"{self.folder.resolve().name}.pointsam"
        self.labels_dir = Path(labels_dir)
        if self.labels_dir.exists() and not self.labels_dir.is_dir():
            raise InputError(f"--labels {labels_dir} is a file; in dataset mode give a folder")
        self.out_dir = self.labels_dir / EXPORT_FOLDER
        self.files = scan_folder(self.folder, skip=(self.out_dir,))
        if not self.files:
            raise InputError(f"{folder}: no point clouds or meshes found (looked for "
                             f"{' '.join(CLOUD_SUFFIXES)})")
        self.progress_path = self.labels_dir / PROGRESS_FILE
        self.current = 0
        self.labelled: set[str] = set()
        if self.progress_path.exists():
            self._read_progress()

    def _read_progress(self) -> None:
        try:
            doc = json.loads(self.progress_path.read_text(encoding="utf-8"))
            current = doc.get("current")
            labelled = doc.get("labelled", [])
            if not isinstance(labelled, list) or not all(isinstance(x, str) for x in labelled):
                raise ValueError("'labelled' must be a list of file names")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
            raise FileFormatError(f"{self.progress_path}: damaged dataset progress file ({exc}); move it "
                                  "away to start the list afresh (no labels are stored in it)") from exc
        names = [f.name for f in self.files]
        self.labelled = set(labelled) & set(names)
        if current in names:
            self.current = names.index(current)
        else:
            self.current = next((k for k, f in enumerate(self.files) if self.status(k) != "labelled"), 0)

    def save_progress(self) -> None:
        """Write the progress file (atomically)."""
        self.labels_dir.mkdir(parents=True, exist_ok=True)
        doc = {"format": "pointsam-dataset", "version": 1, "folder": str(self.folder),
               "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "current": self.files[self.current].name,
               "labelled": sorted(self.labelled)}
        with atomic_output(self.progress_path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")

    def sidecar(self, index: int) -> Path:
        """The annotation file of file `index` (beside it when the labels folder is the dataset folder)."""
        return self.labels_dir / (self.files[index].name + SIDECAR_SUFFIX)

    def status(self, index: int) -> str:
        """labelled, in progress, untouched or unreadable."""
        f = self.files[index]
        if f.error:
            return "unreadable"
        if f.name in self.labelled:
            return "labelled"
        return "in progress" if self.sidecar(index).exists() else "untouched"

    def check_index(self, index) -> int:
        """A valid file index, or `InputError`."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.files):
            raise InputError(f"no file {index!r} in the list (0..{len(self.files) - 1})")
        return index

    def mark(self, index: int, labelled: bool) -> None:
        """Mark file `index` as labelled (or back to in progress) and save the progress."""
        name = self.files[self.check_index(index)].name
        (self.labelled.add if labelled else self.labelled.discard)(name)
        self.save_progress()

    def listing(self) -> dict:
        """JSON-ready list for the page."""
        return {"folder": str(self.folder), "current": self.current, "labels_dir": str(self.labels_dir),
                "files": [{"name": f.name, "status": self.status(k), "error": f.error}
                          for k, f in enumerate(self.files)]}

    def open_first(self, opener: Callable[[int], object]) -> object:
        """Open the file to resume at, or the next one that opens (unreadable ones are marked, skipped)."""
        order = [*range(self.current, len(self.files)), *range(0, self.current)]
        for index in order:
            if self.files[index].error:
                continue
            try:
                return opener(index)
            except (FileFormatError, InputError, OSError) as exc:
                self.files[index].error = str(exc)
        problems = "; ".join(f"{f.name}: {f.error}" for f in self.files)
        raise InputError(f"{self.folder}: no file could be opened ({problems})")


class Workspace:
    """Dataset mode: the dataset, and how to open and export its files (one model for all of them). With
    `prefetch`, the file after the one opened is read and encoded in the background."""

    def __init__(self, dataset: Dataset, model, *, mesh_samples: int = 100_000, class_map=None,
                 semantic: bool = False, up: str | None = None, prefetch: bool = True,
                 say: Callable[[str], None] = lambda msg: None) -> None:
        self.dataset = dataset
        self.model = model
        self.mesh_samples = mesh_samples
        self.class_map = class_map
        self.semantic = semantic
        self.up = up
        self.say = say
        self.prefetch = prefetch
        self._ahead: dict[int, Future] = {}  # file index -> (cloud, predictor) being read and encoded
        self._one_at_a_time = threading.Lock()

    def _read_and_encode(self, index: int):
        from pointsam.app.loader import read_and_encode

        return read_and_encode(self.model, self.dataset.files[index].path, mesh_samples=self.mesh_samples,
                               say=self.say)

    def _start_prefetch(self, index: int) -> None:
        """Read and encode file `index` in the background (only one file is kept ahead)."""
        if not self.prefetch or not 0 <= index < len(self.dataset.files) or self.dataset.files[index].error:
            return
        for other in [k for k in self._ahead if k != index]:
            self._ahead.pop(other).cancel()
        if index not in self._ahead:
            future = self._ahead[index] = Future()
            # a daemon thread: stopping the server never waits for a background encode
            threading.Thread(target=self._prefetch_work, args=(index, future), daemon=True,
                             name="pointsam-prefetch").start()

    def _prefetch_work(self, index: int, future: Future) -> None:
        with self._one_at_a_time:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._read_and_encode(index))
            except BaseException as exc:  # handed to whoever opens the file
                future.set_exception(exc)

    def ready(self, index: int) -> bool:
        """File `index` has been read and encoded in the background (opening it is instant)."""
        future = self._ahead.get(index)
        return future is not None and future.done() and future.exception() is None

    def open(self, index: int) -> dict:
        """Open file `index` (read, encode, resume its sidecar): keyword arguments of `AnnotateApp.show`.
        A file that cannot be opened is marked unreadable (with the reason) and the error raised."""
        from pointsam.app.export import export_stem
        from pointsam.app.loader import default_up, open_session

        ds = self.dataset
        f = ds.files[ds.check_index(index)]
        ahead = self._ahead.pop(index, None)
        try:
            if ahead is not None and not ahead.cancel():
                cloud, predictor = ahead.result()  # encoded in the background (or finishing now)
            else:
                cloud, predictor = self._read_and_encode(index)
            session = open_session(predictor, cloud, f.path, ds.sidecar(index), class_map=self.class_map,
                                   semantic=self.semantic, say=self.say)
        except (FileFormatError, InputError, OSError) as exc:
            f.error = str(exc)
            self.say(f"skipped {f.name}: {exc}")
            raise
        ds.current = index
        ds.save_progress()
        self._start_prefetch(index + 1)
        return {"session": session, "cloud": cloud, "out_dir": ds.out_dir / Path(f.name).parent,
                "stem": export_stem(f.path), "up": self.up or default_up(f.path)}

    def export(self, overwrite: bool = False) -> dict:
        """Export every annotated file of the folder (see `pointsam.app.export.export_dataset`)."""
        from pointsam.app.export import export_dataset

        return export_dataset(self.dataset, mesh_samples=self.mesh_samples, class_map=self.class_map,
                              overwrite=overwrite)
