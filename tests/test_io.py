"""Tests for pointsam.io: readers, writers, mesh sampling and label transfer."""

from __future__ import annotations

import os
from pathlib import Path

import laspy
import numpy as np
import pypcd4
import pytest
import trimesh
from plyfile import PlyData, PlyElement

from pointsam.errors import FileFormatError, InputError
from pointsam.io import (
    PointCloud,
    label_colors,
    labels_to_faces,
    normalize_rgb_to_unit,
    read_mesh,
    read_point_cloud,
    sample_mesh,
    write_labels,
    write_mesh_labels,
    write_ply,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"shared data folder {DATA} is absent (see MANIFEST.md)"
)


def _cloud(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    labels = rng.integers(-1, 20, size=n).astype(np.int64)
    return xyz, rgb, labels


def _partnet_obj() -> Path:
    objs = sorted(DATA.glob("partnet_mobility/*/*/textured_objs/*.obj"))
    sized = [p for p in objs if 20_000 < p.stat().st_size < 400_000]
    if not sized:
        pytest.skip("no PartNet-Mobility OBJ of a suitable size in the shared data")
    return sized[0]


def _assert_on_faces(mesh: trimesh.Trimesh, cloud: PointCloud) -> None:
    """Every sample lies in the plane of its face and inside the triangle."""
    tri = mesh.triangles[cloud.face_index]
    pts = cloud.xyz.astype(np.float64)
    normals = mesh.face_normals[cloud.face_index]
    scale = float(np.ptp(mesh.vertices, axis=0).max())
    plane_dist = np.abs(np.einsum("ij,ij->i", pts - tri[:, 0], normals))
    assert plane_dist.max() < 1e-5 * scale
    bary = trimesh.triangles.points_to_barycentric(tri, pts)
    good = np.isfinite(bary).all(axis=1)  # sliver triangles give NaN barycentrics
    assert good.mean() > 0.99
    assert bary[good].min() > -1e-3 and bary[good].max() < 1 + 1e-3


# ------------------------------------------------------------------------------ real data


@needs_data
@pytest.mark.parametrize("name", ["rhino.ply", "tiko_50000_points.ply"])
def test_read_sample_ply(name: str) -> None:
    cloud = read_point_cloud(DATA / "samples" / name)
    assert 10_000 <= cloud.num_points <= 50_000
    assert cloud.xyz.dtype == np.float32 and cloud.xyz.shape == (cloud.num_points, 3)
    assert cloud.rgb is not None and cloud.rgb.dtype == np.uint8
    assert cloud.face_index is None and cloud.mesh is None
    assert cloud.source == DATA / "samples" / name


@needs_data
def test_read_scannet_npy_and_folder() -> None:
    scene = DATA / "scannet" / "scene0011_00"
    coord = np.load(scene / "coord.npy")
    cloud = read_point_cloud(scene / "coord.npy")
    np.testing.assert_array_equal(cloud.xyz, coord)
    assert cloud.rgb is None
    folder = read_point_cloud(scene)
    np.testing.assert_array_equal(folder.xyz, coord)
    np.testing.assert_array_equal(folder.rgb, np.load(scene / "color.npy"))
    np.testing.assert_array_equal(folder.extra["instance"], np.load(scene / "instance.npy"))
    assert folder.extra["normal"].shape == coord.shape


@needs_data
def test_read_partnet_point_sample() -> None:
    files = sorted(DATA.glob("partnet_mobility/*/*/point_sample/pts-10000.txt"))
    if not files:
        pytest.skip("no PartNet point samples in the shared data")
    cloud = read_point_cloud(files[0])
    assert cloud.num_points == 10_000
    np.testing.assert_allclose(cloud.xyz, np.loadtxt(files[0]), atol=1e-6)


@needs_data
def test_sample_partnet_obj() -> None:
    path = _partnet_obj()
    mesh = read_mesh(path)
    cloud = read_point_cloud(path, mesh_samples=5000, seed=3)
    assert cloud.num_points == 5000 and cloud.face_index.dtype == np.int64
    assert len(cloud.mesh.faces) == len(mesh.faces)
    assert cloud.face_index.min() >= 0 and cloud.face_index.max() < len(mesh.faces)
    _assert_on_faces(cloud.mesh, cloud)
    again = read_point_cloud(path, mesh_samples=5000, seed=3)
    np.testing.assert_array_equal(cloud.xyz, again.xyz)


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path: Path, binary: bool) -> None:
    xyz, rgb, labels = _cloud()
    score = np.linspace(0, 1, len(xyz))
    mask = labels > 5
    path = tmp_path / "out.ply"
    write_ply(path, xyz, rgb, {"label": labels, "score": score.astype(np.float32), "mask": mask},
              binary=binary)
    ply = PlyData.read(str(path))
    assert ply.text is not binary
    types = {p.name: p.val_dtype for p in ply["vertex"].properties}
    assert types["x"] == "f4" and types["red"] == "u1" and types["label"] == "i4"
    assert types["mask"] == "u1"
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, xyz)
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.testing.assert_array_equal(cloud.extra["label"], labels)
    np.testing.assert_array_equal(cloud.extra["mask"], mask)
    np.testing.assert_allclose(cloud.extra["score"], score, atol=1e-6)


def test_ply_float64_float_rgb_and_normals(tmp_path: Path) -> None:
    xyz = np.array([[5e5, 1.0, 2.0], [5e5 + 0.001, 3.0, 4.0]])
    rgb = np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 0.25]])
    normal = np.array([[0, 0, 1], [0, 1, 0]], dtype=np.float32)
    write_ply(tmp_path / "a.ply", xyz, rgb, {"normal": normal})
    cloud = read_point_cloud(tmp_path / "a.ply")
    assert cloud.xyz.dtype == np.float64
    np.testing.assert_array_equal(cloud.xyz, xyz)
    np.testing.assert_array_equal(cloud.rgb, [[0, 128, 255], [255, 0, 64]])
    np.testing.assert_array_equal(cloud.extra["normal"], normal)


def test_ply_with_float_colours_and_diffuse_names(tmp_path: Path) -> None:
    data = np.array([(0, 0, 0, 0.2, 0.4, 1.0), (1, 1, 1, 0.0, 1.0, 0.5)],
                    dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("diffuse_red", "f4"),
                           ("diffuse_green", "f4"), ("diffuse_blue", "f4")])
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "f.ply"))
    cloud = read_point_cloud(tmp_path / "f.ply")
    assert cloud.rgb.dtype == np.float32
    np.testing.assert_allclose(cloud.rgb, [[0.2, 0.4, 1.0], [0.0, 1.0, 0.5]])


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_round_trip(tmp_path: Path, ext: str) -> None:
    xyz, rgb, labels = _cloud()
    path = tmp_path / f"out{ext}"
    assert write_labels(path, xyz, labels, rgb) == "label"
    cloud = read_point_cloud(path)
    assert cloud.xyz.dtype == np.float64
    np.testing.assert_allclose(cloud.xyz, xyz, atol=1e-6)
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.testing.assert_array_equal(cloud.fields["label"], labels)  # an extra-bytes dimension
    np.testing.assert_array_equal(cloud.extra["classification"], 0)  # untouched unless asked
    assert laspy.read(path).header.version.minor == 4
    write_labels(path, xyz, labels, rgb, classification_from_labels=True, overwrite=True)
    np.testing.assert_array_equal(read_point_cloud(path).extra["classification"],
                                  np.where(labels < 0, 0, labels))


def test_las_source_copy_and_upgrade(tmp_path: Path) -> None:
    # A georeferenced LAS 1.2 point format 3 file: classification holds only 5 bits there.
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = [500_000.0, 4_000_000.0, 0.0]
    header.scales = [0.01, 0.01, 0.01]
    las = laspy.LasData(header)
    n = 100
    rng = np.random.default_rng(1)
    las.x = 500_000 + rng.uniform(0, 100, n)
    las.y = 4_000_000 + rng.uniform(0, 100, n)
    las.z = rng.uniform(0, 10, n)
    las.red = las.green = las.blue = np.full(n, 65535, dtype=np.uint16)
    las.intensity = np.arange(n, dtype=np.uint16)
    src = tmp_path / "src.las"
    las.write(src)
    source = read_point_cloud(src)
    assert source.xyz.dtype == np.float64 and source.xyz[:, 0].min() > 499_999
    np.testing.assert_array_equal(source.rgb, np.full((n, 3), 255))
    labels = np.arange(n) % 50  # > 31 needs a 1.4 point format
    write_labels(tmp_path / "out.las", source.xyz, labels, source=source,
                 classification_from_labels=True)
    out = laspy.read(tmp_path / "out.las")
    assert out.point_format.id == 7
    np.testing.assert_array_equal(np.asarray(out.classification), labels)
    np.testing.assert_array_equal(np.asarray(out.intensity), np.arange(n))
    np.testing.assert_allclose(read_point_cloud(tmp_path / "out.las").xyz, source.xyz)
    with pytest.raises(InputError, match="0..255"):
        write_labels(tmp_path / "bad.las", source.xyz, labels + 250, source=source,
                     classification_from_labels=True)


@pytest.mark.parametrize("encoding", list(pypcd4.Encoding))
def test_pcd_round_trip(tmp_path: Path, encoding: pypcd4.Encoding) -> None:
    xyz, rgb, labels = _cloud()
    packed = pypcd4.PointCloud.encode_rgb(rgb)
    if encoding == pypcd4.Encoding.ASCII:  # pypcd4 prints float-packed colours lossily as text
        packed = packed.view(np.uint32)
    pc = pypcd4.PointCloud.from_points(
        [xyz[:, 0], xyz[:, 1], xyz[:, 2], packed, labels.astype(np.int32)],
        ("x", "y", "z", "rgb", "label"),
        (np.float32, np.float32, np.float32, packed.dtype, np.int32),
    )
    path = tmp_path / "cloud.pcd"
    pc.save(path, encoding=encoding)
    cloud = read_point_cloud(path)
    np.testing.assert_allclose(cloud.xyz, xyz, atol=1e-6)
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.testing.assert_array_equal(cloud.extra["label"], labels)


def test_ascii_pcd_with_numeric_packed_rgb(tmp_path: Path) -> None:
    header = ("VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
              "WIDTH 2\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA ascii\n")
    (tmp_path / "a.pcd").write_text(header + "0 0 0 16711680\n1 1 1 65280\n")
    np.testing.assert_array_equal(read_point_cloud(tmp_path / "a.pcd").rgb,
                                  [[255, 0, 0], [0, 255, 0]])


def test_npy_layouts(tmp_path: Path) -> None:
    xyz, rgb, _ = _cloud(50)
    np.save(tmp_path / "a.npy", xyz)
    assert read_point_cloud(tmp_path / "a.npy").rgb is None
    np.save(tmp_path / "b.npy", np.hstack([xyz, rgb / 255.0]))
    assert read_point_cloud(tmp_path / "b.npy").rgb.dtype == np.float32
    extra = np.arange(100.0).reshape(50, 2)
    np.save(tmp_path / "c.npy", np.hstack([xyz, rgb, extra]))
    cloud = read_point_cloud(tmp_path / "c.npy")
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.testing.assert_array_equal(cloud.extra["columns"], extra)
    np.savez(tmp_path / "d.npz", coord=xyz, colors=rgb, segment=np.arange(50))
    cloud = read_point_cloud(tmp_path / "d.npz")
    np.testing.assert_array_equal(cloud.xyz, xyz)
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.testing.assert_array_equal(cloud.extra["segment"], np.arange(50))


def test_text_formats(tmp_path: Path) -> None:
    xyz, rgb, _ = _cloud(30)
    np.savetxt(tmp_path / "a.xyz", xyz)
    np.testing.assert_allclose(read_point_cloud(tmp_path / "a.xyz").xyz, xyz, atol=1e-6)
    np.savetxt(tmp_path / "b.csv", np.hstack([xyz, rgb]), delimiter=",", header="x,y,z,r,g,b",
               comments="")
    cloud = read_point_cloud(tmp_path / "b.csv")
    np.testing.assert_array_equal(cloud.rgb, rgb)
    np.savetxt(tmp_path / "c.txt", np.hstack([xyz, rgb / 255.0]))
    cloud = read_point_cloud(tmp_path / "c.txt")
    assert cloud.rgb.dtype == np.float32
    np.testing.assert_allclose(cloud.rgb, rgb / 255.0, atol=1e-6)
    (tmp_path / "d.pts").write_text("2\n1 2 3 7 10 20 30\n4 5 6 8 40 50 60\n")
    cloud = read_point_cloud(tmp_path / "d.pts")
    np.testing.assert_array_equal(cloud.rgb, [[10, 20, 30], [40, 50, 60]])
    np.testing.assert_array_equal(cloud.extra["intensity"], [7, 8])


@pytest.mark.parametrize("ext", [".ply", ".npy", ".txt", ".csv", ".xyz"])
def test_write_labels_round_trip(tmp_path: Path, ext: str) -> None:
    xyz, rgb, labels = _cloud(200)
    path = tmp_path / f"labels{ext}"
    write_labels(path, xyz, labels, rgb if ext != ".xyz" else None)
    if ext == ".npy":
        out = np.load(path)
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, labels)
        return
    cloud = read_point_cloud(path)
    np.testing.assert_array_equal(cloud.xyz, xyz)
    got = cloud.extra["label"] if ext == ".ply" else cloud.extra["columns"][:, -1]
    np.testing.assert_array_equal(got, labels)
    if ext != ".xyz":
        np.testing.assert_array_equal(cloud.rgb, rgb)


def test_write_bool_labels_npy(tmp_path: Path) -> None:
    xyz, _, labels = _cloud(20)
    write_labels(tmp_path / "m.npy", xyz, labels > 3)
    assert np.load(tmp_path / "m.npy").dtype == bool


# ------------------------------------------------------------------------------ meshes


def test_sample_mesh_box_and_colours() -> None:
    box = trimesh.creation.box(extents=(1, 2, 3))
    box.visual.face_colors = label_colors(np.arange(12))
    cloud = sample_mesh(box, 2000, seed=0)
    assert cloud.face_index.min() >= 0 and cloud.face_index.max() < 12
    _assert_on_faces(box, cloud)
    np.testing.assert_array_equal(cloud.rgb, label_colors(cloud.face_index))
    np.testing.assert_allclose(cloud.extra["normal"], box.face_normals[cloud.face_index],
                               atol=1e-6)
    with pytest.raises(InputError, match="zero surface area"):
        sample_mesh(trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]]), 10)


def test_vertex_colours_are_interpolated() -> None:
    tri = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]], process=False,
                          vertex_colors=[[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]])
    cloud = sample_mesh(tri, 200, seed=1)
    expected = np.column_stack([1 - cloud.xyz[:, 0] - cloud.xyz[:, 1], cloud.xyz[:, :2]]) * 255
    np.testing.assert_allclose(cloud.rgb, expected, atol=1.01)


def test_glb_scene_transforms_applied(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    transform = trimesh.transformations.translation_matrix([10, 0, 0])
    scene.add_geometry(trimesh.creation.box(), transform=transform)
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=1))
    path = tmp_path / "scene.glb"
    scene.export(path)
    mesh = read_mesh(path)
    assert len(mesh.faces) == 12 + 80
    assert mesh.vertices[:, 0].max() == pytest.approx(10.5)
    cloud = read_point_cloud(path, mesh_samples=1000)
    _assert_on_faces(mesh, cloud)


@pytest.mark.parametrize("ext", [".stl", ".off", ".obj"])
def test_mesh_formats(tmp_path: Path, ext: str) -> None:
    mesh = trimesh.creation.cylinder(radius=1.0, height=2.0, sections=16)
    path = tmp_path / f"cyl{ext}"
    mesh.export(path)
    cloud = read_point_cloud(path, mesh_samples=800, seed=5)
    assert cloud.num_points == 800 and cloud.xyz.dtype == np.float32
    assert cloud.face_index.max() < len(cloud.mesh.faces) == len(mesh.faces)
    _assert_on_faces(cloud.mesh, cloud)


def test_large_text_coordinates_stay_float64(tmp_path: Path) -> None:
    (tmp_path / "geo.xyz").write_text("512345.125 4123456.375 12.5\n512345.250 4123456.500 13\n")
    cloud = read_point_cloud(tmp_path / "geo.xyz")
    assert cloud.xyz.dtype == np.float64
    assert cloud.xyz[0, 1] == 4123456.375


def test_ply_mesh_with_quads_and_face_labels(tmp_path: Path) -> None:
    verts = np.array([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1)],
                     dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    faces = np.array([([0, 1, 2, 3], 7), ([0, 1, 4], 9)],
                     dtype=[("vertex_indices", "O"), ("label", "i4")])
    path = tmp_path / "quad.ply"
    PlyData([PlyElement.describe(verts, "vertex"), PlyElement.describe(faces, "face")]).write(
        str(path))
    mesh = read_mesh(path)
    assert len(mesh.faces) == 3  # quad fanned into two triangles, order kept
    cloud = read_point_cloud(path, mesh_samples=300)
    expected = np.array([7, 7, 9])[cloud.face_index]
    np.testing.assert_array_equal(cloud.extra["label"], expected)
    _assert_on_faces(mesh, cloud)


def test_zero_area_mesh_gives_vertices(tmp_path: Path) -> None:
    path = tmp_path / "flat.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    cloud = read_point_cloud(path)
    assert cloud.num_points == 3 and cloud.face_index is None


def test_labels_to_faces_majority_and_nearest() -> None:
    mesh = trimesh.Trimesh(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [11, 0, 0], [10, 1, 0], [20, 0, 0],
         [21, 0, 0], [20, 1, 0]],
        [[0, 1, 2], [3, 4, 5], [6, 7, 8]], process=False)
    points = np.array([[0.1, 0.1, 0], [0.2, 0.1, 0], [0.1, 0.2, 0], [10.1, 0.1, 0],
                       [10.2, 0.1, 0], [19.0, 0.2, 0]])
    face_index = np.array([0, 0, 0, 1, 1, 1])  # the last point is far from face 1's centroid
    labels = np.array([4, 4, 2, 5, 3, 8])
    face_labels = labels_to_faces(mesh, points, face_index, labels)
    # face 0: majority 4; face 1: 5/3/8 tie → smallest (3); face 2: no sample → nearest (8)
    np.testing.assert_array_equal(face_labels, [4, 3, 8])
    with pytest.raises(InputError):
        labels_to_faces(mesh, points, face_index + 5, labels)


@pytest.mark.parametrize("ext", [".ply", ".obj", ".glb"])
def test_write_mesh_labels(tmp_path: Path, ext: str) -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    face_labels = (mesh.triangles_center[:, 2] > 0).astype(np.int64) + 3 * (
        mesh.triangles_center[:, 0] > 0)
    path = tmp_path / f"labelled{ext}"
    write_mesh_labels(path, mesh, face_labels)
    back = read_mesh(path)
    assert len(back.faces) == len(mesh.faces)
    if ext == ".ply":
        ply = PlyData.read(str(path))
        np.testing.assert_array_equal(ply["face"]["label"], face_labels)
        cloud = read_point_cloud(path, mesh_samples=500)
        np.testing.assert_array_equal(cloud.extra["label"], face_labels[cloud.face_index])
        np.testing.assert_array_equal(cloud.rgb, label_colors(cloud.extra["label"]))
    else:
        visual = back.visual.to_color() if back.visual.kind == "texture" else back.visual
        colors = visual.face_colors[:, :3]
        np.testing.assert_array_equal(colors, label_colors(face_labels))


# ------------------------------------------------------------------------------ safety


def test_writers_refuse_to_overwrite(tmp_path: Path) -> None:
    xyz, rgb, labels = _cloud(10)
    mesh = trimesh.creation.box()
    calls = {
        "a.ply": lambda p, o: write_ply(p, xyz, rgb, overwrite=o),
        "b.npy": lambda p, o: write_labels(p, xyz, labels, overwrite=o),
        "c.las": lambda p, o: write_labels(p, xyz, labels, overwrite=o),
        "d.obj": lambda p, o: write_mesh_labels(p, mesh, np.zeros(12, int), overwrite=o),
    }
    for name, call in calls.items():
        path = tmp_path / name
        path.write_bytes(b"precious")
        with pytest.raises(FileExistsError, match="overwrite"):
            call(path, False)
        assert path.read_bytes() == b"precious"
        call(path, True)
        assert path.read_bytes() != b"precious"
    # no temporary files left; the labelled mesh has its legend beside it
    assert sorted(os.listdir(tmp_path)) == sorted([*calls, "d.legend.json"])


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    xyz, _, _ = _cloud(10)
    with pytest.raises(InputError):
        write_labels(tmp_path / "x.las", xyz, np.full(10, 999), classification_from_labels=True)
    with pytest.raises(InputError, match="extension"):
        write_labels(tmp_path / "x.foo", xyz, np.zeros(10, int))
    assert os.listdir(tmp_path) == []


def test_normalize_rgb_to_unit() -> None:
    u8 = np.array([[0, 128, 255]], dtype=np.uint8)
    np.testing.assert_allclose(normalize_rgb_to_unit(u8), [[0, 128 / 255, 1]])
    unit = np.array([[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(normalize_rgb_to_unit(unit), unit)
    assert normalize_rgb_to_unit(unit).dtype == np.float32
    np.testing.assert_allclose(normalize_rgb_to_unit(np.array([[0, 51, 255]])), [[0, 0.2, 1]])
    # the one colour rule: floats are 0..1, the same as set_point_cloud (preprocessing.colors_to_unit)
    with pytest.raises(InputError, match="look like 0..255"):
        normalize_rgb_to_unit(np.array([[0.0, 51.0, 255.0]]))
    for bad in (np.array([[0.0, 0.5, 300.0]]), np.array([[-1.0, 0, 0]]), np.zeros((3, 2)),
                np.array([[0, 0, 256]])):
        with pytest.raises(InputError):
            normalize_rgb_to_unit(bad)


# ------------------------------------------------------------------------------ bad files


def _expect_error(path: Path, match: str) -> None:
    with pytest.raises(FileFormatError, match=match) as info:
        read_point_cloud(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_and_unknown(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.ply", "no such file")
    (tmp_path / "a.foo").write_text("1 2 3\n")
    _expect_error(tmp_path / "a.foo", "unknown file extension")
    with pytest.raises(FileFormatError, match="no such file"):
        read_mesh(tmp_path / "nope.obj")


@pytest.mark.parametrize("ext", [".ply", ".las", ".pcd", ".npy", ".txt", ".obj"])
def test_empty_files(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"empty{ext}"
    path.touch()
    _expect_error(path, "empty")


def test_truncated_binary_ply(tmp_path: Path) -> None:
    xyz, rgb, _ = _cloud(100)
    path = tmp_path / "cut.ply"
    write_ply(path, xyz, rgb)
    path.write_bytes(path.read_bytes()[:-50])
    _expect_error(path, "truncated file")


def test_corrupt_files(tmp_path: Path) -> None:
    xyz, _, labels = _cloud(100)
    np.save(tmp_path / "a.npy", xyz)
    (tmp_path / "a.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:200])
    _expect_error(tmp_path / "a.npy", "not a valid .npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _expect_error(tmp_path / "obj.npy", "pickle")
    np.save(tmp_path / "two.npy", xyz[:, :2])
    _expect_error(tmp_path / "two.npy", r"\(N, 3\+\)")
    write_labels(tmp_path / "a.laz", xyz, labels.clip(0))
    (tmp_path / "b.laz").write_bytes((tmp_path / "a.laz").read_bytes()[:400])
    _expect_error(tmp_path / "b.laz", "truncated or corrupt")
    (tmp_path / "c.pcd").write_text("VERSION .7\nFIELDS x y z\nSIZE 4 4\n")
    _expect_error(tmp_path / "c.pcd", "not a valid PCD")
    np.savez(tmp_path / "d.npz", foo=xyz)
    _expect_error(tmp_path / "d.npz", "xyz, coord, points")
    (tmp_path / "e.obj").write_bytes(b"\x00\xff" * 100)
    with pytest.raises(FileFormatError):
        read_point_cloud(tmp_path / "e.obj")


def test_bad_text(tmp_path: Path) -> None:
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5 6\n7 8\n")
    _expect_error(tmp_path / "ragged.txt", "cannot parse")
    (tmp_path / "two.txt").write_text("1 2\n3 4\n")
    _expect_error(tmp_path / "two.txt", "x y z")
    (tmp_path / "header.csv").write_text("x,y,z\n")
    _expect_error(tmp_path / "header.csv", "no points")
    (tmp_path / "words.xyz").write_text("1 2 3\n4 five 6\n")
    _expect_error(tmp_path / "words.xyz", "cannot parse")
    (tmp_path / "neg.txt").write_text("1 2 3 -1 0 0\n")
    _expect_error(tmp_path / "neg.txt", "colours")


def test_ply_without_xyz(tmp_path: Path) -> None:
    data = np.array([(1.0, 2.0)], dtype=[("u", "f4"), ("v", "f4")])
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "uv.ply"))
    _expect_error(tmp_path / "uv.ply", "lack the x, y, z")
