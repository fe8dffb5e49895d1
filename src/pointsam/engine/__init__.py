"""Data engine (paper Sec. 4): render meshes, fuse RGB-D views, lift 2D SAM proposals to 3D masks."""

from pointsam.engine.cameras import Camera, object_cameras
from pointsam.engine.fusion import FusedCloud, fuse_views
from pointsam.engine.lifting import Lifter, LiftSettings, Proposal3D
from pointsam.engine.render import ColoredMesh, RenderedViews, load_colored_mesh, render_mesh
from pointsam.engine.sam2d import Masks2D, SamSegmenter, Segmenter2D, load_sam

__all__ = ["Camera", "ColoredMesh", "FusedCloud", "LiftSettings", "Lifter", "Masks2D", "Proposal3D",
           "RenderedViews", "SamSegmenter", "Segmenter2D", "fuse_views", "load_colored_mesh", "load_sam",
           "object_cameras", "render_mesh"]
