"""Data engine (paper Sec. 4): render meshes, fuse RGB-D views, lift 2D SAM proposals to 3D masks."""

from pointsam.engine.cameras import Camera, object_cameras
from pointsam.engine.fusion import DEPTH_TOLERANCE, FusedCloud, fuse_views
from pointsam.engine.lifting import Lifter, LiftSettings, Proposal3D, error_click
from pointsam.engine.render import BACKGROUND, ColoredMesh, RenderedViews, load_colored_mesh, render_mesh
from pointsam.engine.sam2d import Masks2D, SamSegmenter, Segmenter2D, load_sam

__all__ = ["BACKGROUND", "DEPTH_TOLERANCE", "Camera", "ColoredMesh", "FusedCloud", "LiftSettings", "Lifter",
           "Masks2D", "Proposal3D", "RenderedViews", "SamSegmenter", "Segmenter2D", "error_click",
           "fuse_views", "load_colored_mesh", "load_sam", "object_cameras", "render_mesh"]
