"""Scene-scale segmentation: local cached inference, spatial regions, tiles, display subsets."""

from pointsam.scene.local_predictor import OUTSIDE_LOGIT, LocalPredictor, LocalResult
from pointsam.scene.lod import LevelOfDetail, voxel_overview
from pointsam.scene.regions import Region, SpatialIndex
from pointsam.scene.tiles import make_tiles, merge_masks, segment_tiles

__all__ = ["OUTSIDE_LOGIT", "LevelOfDetail", "LocalPredictor", "LocalResult", "Region", "SpatialIndex",
           "make_tiles", "merge_masks", "segment_tiles", "voxel_overview"]
