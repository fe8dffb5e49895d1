"""pointsam: promptable segmentation of 3D point clouds (Point-SAM), CPU-first.

The model, predictor and loaders are imported on first use (`pointsam.load_model` ...), so that
`import pointsam` and `pointsam --help` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pointsam.errors import CheckpointError, FileFormatError, InputError, PointSAMError

if TYPE_CHECKING:
    from pointsam.automatic import AutomaticMaskGenerator
    from pointsam.checkpoint import load_model, save_model
    from pointsam.modeling import PointSAM, PointSAMConfig, build_model
    from pointsam.predictor import PointCloudPredictor

# Public name -> module that defines it (imported when the name is first used).
_LAZY = {
    "AutomaticMaskGenerator": "pointsam.automatic",
    "PointCloudPredictor": "pointsam.predictor",
    "PointSAM": "pointsam.modeling",
    "PointSAMConfig": "pointsam.modeling",
    "build_model": "pointsam.modeling",
    "load_model": "pointsam.checkpoint",
    "save_model": "pointsam.checkpoint",
}

__all__ = [
    "AutomaticMaskGenerator",
    "CheckpointError",
    "FileFormatError",
    "InputError",
    "PointCloudPredictor",
    "PointSAM",
    "PointSAMConfig",
    "PointSAMError",
    "build_model",
    "load_model",
    "save_model",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'pointsam' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
