"""Find files of a source dataset, following symbolic links (datasets are often linked in)."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path


def find_files(root: Path, pattern: str) -> list[Path]:
    """Sorted files under `root` whose name matches the glob `pattern`, through symlinked folders."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        found += [Path(folder) / f for f in files if fnmatch.fnmatchcase(f, pattern)]
    return sorted(found)


def find_dirs(root: Path, name: str) -> list[Path]:
    """Sorted folders called `name` at or under `root`, through symlinked folders."""
    found = [root] if root.name == name else []
    for folder, dirs, _ in os.walk(root, followlinks=True):
        found += [Path(folder) / d for d in dirs if d == name]
    return sorted(found)
