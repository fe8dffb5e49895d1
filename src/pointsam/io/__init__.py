"""Reading and writing point clouds, meshes and labels."""

from pointsam.io.mesh import labels_to_faces, read_mesh, sample_mesh
from pointsam.io.palette import label_colors
from pointsam.io.pointcloud import PointCloud, normalize_rgb_to_unit
from pointsam.io.readers import read_point_cloud
from pointsam.io.writers import check_output, legend_path, write_labels, write_mesh_labels, write_ply

__all__ = [
    "PointCloud",
    "check_output",
    "legend_path",
    "label_colors",
    "labels_to_faces",
    "normalize_rgb_to_unit",
    "read_mesh",
    "read_point_cloud",
    "sample_mesh",
    "write_labels",
    "write_mesh_labels",
    "write_ply",
]
