"""Geometry and network ops, each beside the plain reference twin it is tested against.

Exact geometry (device dispatch inside): `farthest_point_sampling`, `knn`,
`three_nn_interpolation_weights`, `interpolate`, `gather_groups`. Inference fast paths of the
network, chosen by the predictor: `pointnet` (patch PointNets) and `mask_logits` (decoder
upsampling). The `*_reference` functions are the plain definitions.
"""

from pointsam.ops.fps import FPS_METHODS, farthest_point_sampling, farthest_point_sampling_reference
from pointsam.ops.interpolate import interpolate, interpolate_reference, three_nn_interpolation_weights
from pointsam.ops.knn import KNN_METHODS, gather_groups, knn, knn_reference
from pointsam.ops.pointnet import pointnet, pointnet_reference
from pointsam.ops.upsample import DEFAULT_CHUNK, mask_logits, mask_logits_reference

__all__ = [
    "DEFAULT_CHUNK",
    "FPS_METHODS",
    "KNN_METHODS",
    "farthest_point_sampling",
    "farthest_point_sampling_reference",
    "gather_groups",
    "interpolate",
    "interpolate_reference",
    "knn",
    "knn_reference",
    "mask_logits",
    "mask_logits_reference",
    "pointnet",
    "pointnet_reference",
    "three_nn_interpolation_weights",
]
