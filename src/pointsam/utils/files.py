"""Safe file output: atomic writes, and an early check that an output path can be written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pointsam.errors import FileFormatError, InputError

__all__ = ["atomic_output", "check_output_path", "current_umask"]


def current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _refuse_taken(path: Path, overwrite: bool) -> None:
    """A folder at `path`, or an existing file without `overwrite`: refused with the reason."""
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, not a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite on the command line) "
            "to replace it"
        )


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it into place with os.replace."""
    path = Path(path)
    _refuse_taken(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_output_path(
    path: str | Path,
    overwrite: bool = False,
    *,
    suffixes: Iterable[str] | None = None,
    make_parents: bool = True,
) -> Path:
    """Fail before any compute if `path` cannot be written: it exists (and not `overwrite`), is a
    folder, has an extension outside `suffixes`, or its folder is missing (when not `make_parents`)
    or not writable. Returns `path` as a Path."""
    path = Path(path)
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if path.suffix.lower() not in allowed:
            raise InputError(f"{path}: unsupported output extension {path.suffix or '(none)'!r}; "
                             f"use {', '.join(allowed)}")
    _refuse_taken(path, overwrite)
    folder = path.parent
    if not folder.exists() and not make_parents:
        raise FileFormatError(f"{path}: the folder {folder} does not exist")
    while not folder.exists():  # the nearest existing folder is where the new ones get made
        folder = folder.parent
    if not folder.is_dir():
        raise FileFormatError(f"{path}: {folder} is a file, not a folder")
    _check_writable(folder, path)
    return path


def _check_writable(folder: Path, path: Path) -> None:
    """Create and remove a temporary file in `folder`: the only test that is true for every user."""
    try:
        fd, name = tempfile.mkstemp(prefix=".pointsam-write-test.", dir=folder)
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot write in the folder {folder}: "
                              f"{exc.strerror or exc}") from exc
    os.close(fd)
    os.unlink(name)
