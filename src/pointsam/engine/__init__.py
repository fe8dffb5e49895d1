"""Data engine (paper Sec. 4): render meshes, fuse RGB-D views, lift 2D SAM proposals to 3D masks."""

from typing import TYPE_CHECKING

from pointsam.utils.lazy import lazy_exports

_EXPORTS = {
    "BACKGROUND": "render",
    "Camera": "cameras",
    "ColoredMesh": "render",
    "DEPTH_TOLERANCE": "fusion",
    "FusedCloud": "fusion",
    "LiftSettings": "lifting",
    "Lifter": "lifting",
    "Masks2D": "sam2d",
    "Proposal3D": "lifting",
    "RenderedViews": "render",
    "SamSegmenter": "sam2d",
    "Segmenter2D": "sam2d",
    "error_click": "lifting",
    "fuse_views": "fusion",
    "load_colored_mesh": "render",
    "load_sam": "sam2d",
    "object_cameras": "cameras",
    "render_mesh": "render",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from pointsam.engine.cameras import Camera, object_cameras  # noqa: F401
    from pointsam.engine.fusion import DEPTH_TOLERANCE, FusedCloud, fuse_views  # noqa: F401
    from pointsam.engine.lifting import Lifter, LiftSettings, Proposal3D, error_click  # noqa: F401
    from pointsam.engine.render import BACKGROUND, ColoredMesh, RenderedViews, load_colored_mesh, render_mesh  # noqa: F401
    from pointsam.engine.sam2d import Masks2D, SamSegmenter, Segmenter2D, load_sam  # noqa: F401
