"""pointsam: promptable segmentation of 3D point clouds (Point-SAM), CPU-first."""

from pointsam.errors import CheckpointError, FileFormatError, InputError, PointSAMError
from pointsam.modeling import PointSAM, PointSAMConfig, build_model

__all__ = [
    "CheckpointError",
    "FileFormatError",
    "InputError",
    "PointSAM",
    "PointSAMConfig",
    "PointSAMError",
    "build_model",
]
__version__ = "0.1.0"
