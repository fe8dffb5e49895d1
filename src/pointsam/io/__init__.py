"""Reading and writing point clouds, meshes and labels."""

from pointsam.io.classmap import ClassMap, load_class_map
from pointsam.io.interop import from_open3d, from_trimesh, to_open3d, to_trimesh
from pointsam.io.labelformats import read_label_files, write_label_files
from pointsam.io.mesh import labels_to_faces, read_mesh, sample_mesh
from pointsam.io.palette import label_colors
from pointsam.io.pointcloud import PointCloud, normalize_rgb_to_unit
from pointsam.io.readers import read_point_cloud
from pointsam.io.writers import check_output, legend_path, write_labels, write_mesh_labels, write_ply

__all__ = [
    "ClassMap",
    "PointCloud",
    "check_output",
    "from_open3d",
    "from_trimesh",
    "load_class_map",
    "read_label_files",
    "to_open3d",
    "to_trimesh",
    "write_label_files",
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
