"""Point-SAM network modules."""

from pointsam.modeling.config import PointSAMConfig
from pointsam.modeling.point_sam import CloudEmbedding, PointSAM, build_model

__all__ = ["CloudEmbedding", "PointSAM", "PointSAMConfig", "build_model"]
