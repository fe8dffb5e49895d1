"""Deprecated home of `pointsam everything`; the command now lives in `pointsam.command`."""

from __future__ import annotations

import warnings

from pointsam.command import add_everything_parser, run_everything

warnings.warn("pointsam.automatic_command is deprecated; use pointsam.command", DeprecationWarning,
              stacklevel=2)

__all__ = ["add_everything_parser", "run_everything"]
