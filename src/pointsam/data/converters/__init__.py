"""Converters from public 3D segmentation datasets to pointsam :class:`LabelledCloud` objects."""

from collections.abc import Callable

from pointsam.data.converters.agile3d import convert_agile3d
from pointsam.data.converters.blocks import scene_blocks
from pointsam.data.converters.instances import convert_ply, from_instance_labels, group_labels
from pointsam.data.converters.partnet import convert_partnet, partnet_object
from pointsam.data.converters.partnet_mobility import convert_partnet_mobility, mobility_object
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.converters.s3dis import convert_s3dis
from pointsam.data.converters.scannet_pointcept import convert_scannet_pointcept, pointcept_scene
from pointsam.data.converters.scannet_raw import convert_scannet
from pointsam.data.converters.scanobjectnn import convert_scanobjectnn
from pointsam.data.converters.semantickitti import convert_semantickitti
from pointsam.data.converters.shapenet_part import convert_shapenet_part

#: Converter of each source format, by its command-line name.
FORMATS: dict[str, Callable[..., Conversion]] = {
    "partnet": convert_partnet,
    "partnet-mobility": convert_partnet_mobility,
    "shapenet-part": convert_shapenet_part,
    "ply": convert_ply,
    "scannet-pointcept": convert_scannet_pointcept,
    "scannet": convert_scannet,
    "s3dis": convert_s3dis,
    "semantickitti": convert_semantickitti,
    "agile3d": convert_agile3d,
    "scanobjectnn": convert_scanobjectnn,
    "partnet-mobility-eval": lambda *a, **k: _mobility_eval(*a, **k),
}


def _mobility_eval(path, **options) -> Conversion:
    """PartNet-Mobility evaluation clouds (12 fused views): imported lazily, the engine imports converters."""
    from pointsam.engine.evalclouds import convert_mobility_eval

    return convert_mobility_eval(path, **options)

__all__ = [
    "FORMATS",
    "convert_agile3d",
    "convert_scanobjectnn",
    "Conversion",
    "ConversionReport",
    "convert_partnet",
    "convert_partnet_mobility",
    "convert_ply",
    "convert_s3dis",
    "convert_scannet",
    "convert_scannet_pointcept",
    "convert_semantickitti",
    "convert_shapenet_part",
    "from_instance_labels",
    "group_labels",
    "mobility_object",
    "partnet_object",
    "pointcept_scene",
    "scene_blocks",
]
