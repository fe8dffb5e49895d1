"""The annotation app's class palette is a :class:`pointsam.io.classmap.ClassMap` (id, name, colour,
keyboard key, stuff flag, LAS code): this module only adds the `--classes` lookup and keeps the names the
app used before the class map moved to `pointsam.io.classmap`, its one home."""

from __future__ import annotations

from pathlib import Path

from pointsam.errors import InputError, PointSAMError
from pointsam.io.classmap import (
    MAX_CLASS_ID,
    MAX_CLASSES,
    PRESETS,
    RESERVED_KEYS,
    ClassEntry,
    ClassMap,
    load_class_map,
)

__all__ = ["MAX_CLASS_ID", "MAX_CLASSES", "PRESETS", "RESERVED_KEYS", "ClassEntry", "ClassMap",
           "class_map_document", "load_class_map", "resolve_class_map", "save_class_map"]


def class_map_document(cmap: ClassMap) -> dict:
    """The document of a class-map file (see `ClassMap.to_dict`)."""
    return cmap.to_dict()


def save_class_map(cmap: ClassMap, path: Path, overwrite: bool = True) -> Path:
    """Write the class map (``.json``, ``.yaml``/``.yml``) atomically; replaces it unless told not to."""
    return cmap.save(path, overwrite=overwrite)


def resolve_class_map(value: str | Path) -> ClassMap:
    """`--classes VALUE`: a preset name (scannet20, semantickitti, asprs) or a class-map file; the error
    names the option (`InputError`)."""
    try:
        return load_class_map(value)
    except PointSAMError as exc:
        raise InputError(f"--classes {exc}") from None
