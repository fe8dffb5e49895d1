"""Lazy package exports: `from pointsam.engine import X` imports X's module only when X is asked for,
so `pointsam COMMAND --help` (which imports the command's package) stays fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """(__getattr__, __dir__) for a package whose public `name` lives in module `exports[name]`."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list:
        return sorted(exports)

    return __getattr__, __dir__
