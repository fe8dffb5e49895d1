"""pointsam: promptable segmentation of 3D point clouds (Point-SAM), CPU-first."""

from pointsam.checkpoint import load_model, save_model
from pointsam.errors import CheckpointError, FileFormatError, InputError, PointSAMError
from pointsam.modeling import PointSAM, PointSAMConfig, build_model
from pointsam.predictor import PointCloudPredictor

__all__ = [
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
