"""Scene-scale segmentation: local cached inference, spatial regions, tiles, display subsets."""

from pointsam.scene.local_predictor import OUTSIDE_LOGIT, LocalPredictor, LocalResult
from pointsam.scene.regions import Region, SpatialIndex

__all__ = ["OUTSIDE_LOGIT", "LocalPredictor", "LocalResult", "Region", "SpatialIndex"]
