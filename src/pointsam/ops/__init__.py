"""Geometry ops: farthest point sampling, exact kNN, 3-NN interpolation (CPU fast paths)."""

from pointsam.ops.fps import FPS_METHODS, farthest_point_sampling
from pointsam.ops.interpolate import interpolate, three_nn_interpolation_weights
from pointsam.ops.knn import KNN_METHODS, gather_groups, knn

__all__ = [
    "FPS_METHODS",
    "KNN_METHODS",
    "farthest_point_sampling",
    "gather_groups",
    "interpolate",
    "knn",
    "three_nn_interpolation_weights",
]
