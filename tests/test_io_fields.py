"""Outputs keep the user's data: every input field survives a written mask, in every format."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import laspy
import numpy as np
import pytest
import trimesh
from plyfile import PlyData, PlyElement

from pointsam.errors import FileFormatError, InputError
from pointsam.io import (
    check_output,
    label_colors,
    legend_path,
    read_mesh,
    read_point_cloud,
    write_labels,
    write_mesh_labels,
)

from conftest import DATA, require

N = 300


def _rich_ply(path: Path, *, binary: bool = True) -> Path:
    """A PLY with double coordinates, colours, normals, intensity, a user label and a user mask."""
    rng = np.random.default_rng(3)
    data = np.empty(N, dtype=[("x", "f8"), ("y", "f8"), ("z", "f8"), ("nx", "f4"), ("ny", "f4"),
                              ("nz", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                              ("intensity", "u2"), ("label", "i4"), ("mask", "u1"),
                              ("quality", "f8")])
    for name in data.dtype.names:
        kind = data.dtype[name].kind
        data[name] = (rng.normal(size=N) if kind == "f" else rng.integers(0, 200, size=N))
    PlyData([PlyElement.describe(data, "vertex")], text=not binary,
            comments=["scanned by a careful person"]).write(str(path))
    return path


def _ply_vertex(path: Path) -> np.ndarray:
    return PlyData.read(str(path))["vertex"].data


def _assert_fields_kept(original: np.ndarray, written: np.ndarray) -> None:
    for name in original.dtype.names:
        assert written.dtype[name] == original.dtype[name], name
        np.testing.assert_array_equal(written[name], original[name], err_msg=name)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_output_keeps_every_field_and_never_reuses_a_name(tmp_path: Path, binary: bool) -> None:
    src = _rich_ply(tmp_path / "in.ply", binary=binary)
    cloud = read_point_cloud(src)
    mask = np.arange(N) % 3 == 0
    name = write_labels(tmp_path / "out.ply", cloud.xyz, mask, cloud.rgb, source=cloud, field="mask")
    assert name == "mask_1"  # the user's own `mask` is kept, ours goes beside it
    written = _ply_vertex(tmp_path / "out.ply")
    _assert_fields_kept(_ply_vertex(src), written)
    np.testing.assert_array_equal(written["mask_1"], mask.astype(np.uint8))
    assert PlyData.read(str(tmp_path / "out.ply")).comments == ["scanned by a careful person"]
    assert write_labels(tmp_path / "l.ply", cloud.xyz, mask, source=cloud) == "label_1"


def test_real_sample_ply_round_trip(tmp_path: Path) -> None:
    src = require(DATA / "samples" / "tiko_10000_points.ply")
    cloud = read_point_cloud(src)
    mask = cloud.xyz[:, 1] > np.median(cloud.xyz[:, 1])
    write_labels(tmp_path / "out.ply", cloud.xyz, mask, cloud.rgb, source=cloud, field="mask")
    written = _ply_vertex(tmp_path / "out.ply")
    _assert_fields_kept(_ply_vertex(src), written)
    np.testing.assert_array_equal(written["mask"], mask)


def test_scannet_folder_to_ply_keeps_normals_and_labels(tmp_path: Path) -> None:
    scene = require(DATA / "scannet" / "scene0011_00")
    cloud = read_point_cloud(scene)
    mask = np.zeros(cloud.num_points, dtype=bool)
    mask[::7] = True
    write_labels(tmp_path / "s.ply", cloud.xyz, mask, cloud.rgb, source=cloud, field="mask")
    back = read_point_cloud(tmp_path / "s.ply")
    for name in ("instance", "segment20", "segment200"):
        np.testing.assert_array_equal(back.extra[name], np.load(scene / f"{name}.npy"), err_msg=name)
    np.testing.assert_array_equal(back.extra["normal"], np.load(scene / "normal.npy"))
    np.testing.assert_array_equal(back.xyz, np.load(scene / "coord.npy"))
    np.testing.assert_array_equal(back.extra["mask"], mask)


def _rich_las(path: Path, point_format: int = 3, version: str = "1.2") -> Path:
    """A georeferenced LAS with classification, intensity, colours and two extra-bytes dimensions."""
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.offsets = [500_000.0, 4_000_000.0, 0.0]
    header.scales = [0.01, 0.01, 0.01]
    header.add_extra_dims([laspy.ExtraBytesParams("confidence", np.float32),
                           laspy.ExtraBytesParams("tree_id", np.int16)])
    las = laspy.LasData(header)
    rng = np.random.default_rng(5)
    las.x = 500_000 + rng.uniform(0, 100, N)
    las.y = 4_000_000 + rng.uniform(0, 100, N)
    las.z = rng.uniform(0, 10, N)
    las.classification = rng.choice([2, 5, 6], size=N).astype(np.uint8)
    las.intensity = rng.integers(0, 60000, size=N).astype(np.uint16)
    las.red, las.green, las.blue = (rng.integers(0, 65536, size=N).astype(np.uint16) for _ in range(3))
    las.confidence = rng.random(N).astype(np.float32)
    las.tree_id = rng.integers(-5, 300, size=N).astype(np.int16)
    las.write(path)
    return path


def _assert_las_kept(src: laspy.LasData, out: laspy.LasData, skip: tuple[str, ...] = ()) -> None:
    for name in src.point_format.dimension_names:
        if name not in skip:
            np.testing.assert_array_equal(np.asarray(out[name]), np.asarray(src[name]), err_msg=name)
    assert out.header.offsets.tolist() == src.header.offsets.tolist()
    assert out.header.scales.tolist() == src.header.scales.tolist()


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_output_keeps_every_dimension(tmp_path: Path, ext: str) -> None:
    src_path = _rich_las(tmp_path / f"in{ext}")
    cloud = read_point_cloud(src_path)
    assert {"classification", "intensity", "confidence", "tree_id", "red"} <= set(cloud.fields)
    assert list(cloud.meta["las_header"].offsets) == [500_000.0, 4_000_000.0, 0.0]
    mask = np.arange(N) % 4 == 0
    out = tmp_path / f"out{ext}"
    assert write_labels(out, cloud.xyz, mask, cloud.rgb, source=cloud, field="mask") == "mask"
    src, got = laspy.read(src_path), laspy.read(out)
    _assert_las_kept(src, got)  # classification untouched
    np.testing.assert_array_equal(np.asarray(got["mask"]), mask)
    # asked: the masked points take class 6, the others keep theirs
    write_labels(out, cloud.xyz, mask, source=cloud, field="mask", classification_value=6,
                 overwrite=True)
    got = laspy.read(out)
    _assert_las_kept(src, got, skip=("classification",))
    expected = np.where(mask, 6, np.asarray(src.classification))
    np.testing.assert_array_equal(np.asarray(got.classification), expected)


def test_classification_value_is_checked(tmp_path: Path) -> None:
    cloud = read_point_cloud(_rich_las(tmp_path / "in.las"))
    with pytest.raises(InputError, match="0..255"):
        write_labels(tmp_path / "o.las", cloud.xyz, np.ones(N, bool), source=cloud,
                     classification_value=300)
    with pytest.raises(InputError, match="one mask"):
        write_labels(tmp_path / "o.las", cloud.xyz, np.arange(N) % 3, source=cloud,
                     classification_value=6)
    with pytest.raises(InputError, match=r"\.las or \.laz"):
        write_labels(tmp_path / "o.ply", cloud.xyz, np.ones(N, bool), classification_value=6)
    assert not (tmp_path / "o.las").exists()


def test_las_to_ply_and_ply_to_las_keep_fields(tmp_path: Path) -> None:
    las_cloud = read_point_cloud(_rich_las(tmp_path / "in.las"))
    mask = np.arange(N) % 2 == 0
    write_labels(tmp_path / "a.ply", las_cloud.xyz, mask, las_cloud.rgb, source=las_cloud, field="mask")
    vertex = _ply_vertex(tmp_path / "a.ply")
    for name in ("classification", "intensity", "confidence", "tree_id", "red"):
        np.testing.assert_array_equal(vertex[name], las_cloud.fields[name], err_msg=name)
    np.testing.assert_array_equal(vertex["x"], las_cloud.xyz[:, 0])

    ply_cloud = read_point_cloud(_rich_ply(tmp_path / "in.ply"))
    write_labels(tmp_path / "b.las", ply_cloud.xyz, mask, ply_cloud.rgb, source=ply_cloud, field="mask")
    out = laspy.read(tmp_path / "b.las")
    np.testing.assert_array_equal(np.asarray(out.intensity), ply_cloud.fields["intensity"])
    for name in ("label", "nx", "quality"):
        np.testing.assert_array_equal(np.asarray(out[name]), ply_cloud.fields[name], err_msg=name)
    np.testing.assert_array_equal(np.asarray(out["mask_1"]), mask)  # the user's `mask` kept as is
    np.testing.assert_array_equal(np.asarray(out["mask"]), ply_cloud.fields["mask"])


def test_npy_outputs(tmp_path: Path) -> None:
    cloud = read_point_cloud(_rich_ply(tmp_path / "in.ply"))
    mask = np.arange(N) % 2 == 0
    write_labels(tmp_path / "m.npy", cloud.xyz, mask, source=cloud)
    saved = np.load(tmp_path / "m.npy")
    assert saved.dtype == bool and saved.shape == (N,)  # a single mask is a bool array
    write_labels(tmp_path / "l.npy", cloud.xyz, np.arange(N) - 1)
    assert np.load(tmp_path / "l.npy").dtype == np.int32
    # a mesh input: the labels of its surface samples come with their points and faces
    mesh = trimesh.creation.icosphere(subdivisions=2)
    from pointsam.io import sample_mesh

    samples = sample_mesh(mesh, 500)
    labels = (samples.xyz[:, 2] > 0).astype(np.int32)
    assert write_labels(tmp_path / "mesh.npy", samples.xyz, labels, source=samples) == "label"
    table = np.load(tmp_path / "mesh.npy")
    assert table.dtype.names == ("x", "y", "z", "face", "label")
    np.testing.assert_array_equal(table["face"], samples.face_index)
    np.testing.assert_array_equal(table["label"], labels)
    back = read_point_cloud(tmp_path / "mesh.npy")  # readable as a cloud again
    np.testing.assert_array_equal(back.xyz, samples.xyz)


def test_csv_output_keeps_fields_with_a_header(tmp_path: Path) -> None:
    cloud = read_point_cloud(_rich_ply(tmp_path / "in.ply"))
    mask = np.arange(N) % 2 == 0
    write_labels(tmp_path / "o.csv", cloud.xyz, mask, cloud.rgb, source=cloud, field="mask")
    header = (tmp_path / "o.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["x", "y", "z"] and header[-1] == "mask_1"
    table = np.loadtxt(tmp_path / "o.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(table[:, header.index("intensity")], cloud.fields["intensity"])
    np.testing.assert_array_equal(table[:, header.index("quality")], cloud.fields["quality"])
    np.testing.assert_array_equal(table[:, -1], mask)


# ---------------------------------------------------------------------------------- meshes


def _labelled_sphere() -> tuple[trimesh.Trimesh, np.ndarray]:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    labels = (mesh.triangles_center[:, 2] > 0).astype(np.int64) + 3 * (mesh.triangles_center[:, 0] > 0)
    return mesh, labels


def test_obj_output_has_numeric_groups_in_face_order(tmp_path: Path) -> None:
    mesh, labels = _labelled_sphere()
    path = tmp_path / "m.obj"
    write_mesh_labels(path, mesh, labels)
    groups, current = [], None
    for line in path.read_text().splitlines():
        if line.startswith("g "):
            current = int(line.split("_")[-1])
        elif line.startswith("f "):
            groups.append(current)
    np.testing.assert_array_equal(groups, labels)
    back = read_mesh(path)
    np.testing.assert_allclose(back.triangles, mesh.triangles, atol=1e-12)
    legend = json.loads(legend_path(path).read_text())
    assert legend["mesh"] == "m.obj"
    assert {e["label"]: e["faces"] for e in legend["labels"]} == dict(
        zip(*np.unique(labels, return_counts=True), strict=True))
    assert [e["color"] for e in legend["labels"]] == label_colors(np.unique(labels)).tolist()


def test_glb_output_has_a_numeric_face_attribute(tmp_path: Path) -> None:
    mesh, labels = _labelled_sphere()
    path = tmp_path / "m.glb"
    write_mesh_labels(path, mesh, labels)
    scene = trimesh.load(path, process=False)
    geom = next(iter(scene.geometry.values()))
    per_corner = np.asarray(geom.vertex_attributes["_LABEL"]).reshape(-1, 3)
    np.testing.assert_array_equal(per_corner[:, 0], labels)
    assert (per_corner == per_corner[:, :1]).all()
    assert geom.metadata["pointsam_labels"]["labels"][0]["label"] == int(labels.min())
    assert legend_path(path).is_file()


def test_gltf_and_unknown_mesh_outputs_are_refused_early(tmp_path: Path) -> None:
    for name in ("m.gltf", "m.stl"):
        with pytest.raises(InputError, match=r"\.glb"):
            check_output(tmp_path / name, kind="mesh")
    with pytest.raises(InputError, match="extension"):
        check_output(tmp_path / "m.foo")
    (tmp_path / "m.legend.json").write_text("{}")
    with pytest.raises(FileExistsError, match="legend"):
        check_output(tmp_path / "m.obj", kind="mesh")


# ---------------------------------------------------------------------- writing over the input


def test_same_file_output_only_when_every_field_is_kept(tmp_path: Path) -> None:
    ply = _rich_ply(tmp_path / "in.ply")
    original = _ply_vertex(ply)
    cloud = read_point_cloud(ply)
    with pytest.raises(FileExistsError):
        check_output(ply, source=cloud)
    check_output(ply, overwrite=True, source=cloud)  # PLY over the same PLY keeps everything
    write_labels(ply, cloud.xyz, np.ones(N, bool), source=cloud, field="seg", overwrite=True)
    _assert_fields_kept(original, _ply_vertex(ply))
    npy = tmp_path / "in.npy"  # a labels .npy would replace the cloud itself
    np.save(npy, np.asarray(cloud.xyz))
    with pytest.raises(InputError, match="is the input file"):
        check_output(npy, overwrite=True, source=read_point_cloud(npy))
    mesh_path = tmp_path / "box.ply"
    trimesh.creation.box().export(mesh_path)
    mesh_cloud = read_point_cloud(mesh_path, mesh_samples=200)
    with pytest.raises(InputError, match="mesh faces"):
        check_output(mesh_path, overwrite=True, source=mesh_cloud)
    las = _rich_las(tmp_path / "in.las")
    check_output(las, overwrite=True, source=read_point_cloud(las))


def test_output_folder_problems_are_found_before_compute(tmp_path: Path) -> None:
    (tmp_path / "d.ply").mkdir()
    with pytest.raises(FileFormatError, match="is a directory"):
        check_output(tmp_path / "d.ply")
    if Path("/proc/self").is_dir():  # not writable even by root
        with pytest.raises(FileFormatError, match="cannot write"):
            check_output("/proc/pointsam-out/x.ply")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(FileFormatError, match="cannot write"):
                check_output(locked / "x.ply")
        finally:
            locked.chmod(stat.S_IRWXU)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileFormatError, match="is a file"):
        check_output(blocker / "sub" / "x.ply")


def test_fields_for_other_points_are_refused_not_dropped(tmp_path: Path) -> None:
    cloud = read_point_cloud(_rich_ply(tmp_path / "in.ply"))
    with pytest.raises(InputError, match=f"fields for \\[{N}\\] points but 10"):
        write_labels(tmp_path / "o.ply", cloud.xyz[:10], np.ones(10, bool), source=cloud)
    assert not (tmp_path / "o.ply").exists()


def test_new_fields_never_replace_taken_names(tmp_path: Path) -> None:
    from pointsam.io import write_ply

    xyz = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    rgb = np.zeros((5, 3), np.uint8)
    written = write_ply(tmp_path / "o.ply", xyz, rgb, {"red": np.arange(5), "a b": np.ones(5)})
    assert written == {"red": "red_1", "a b": "a_b"}
    vertex = _ply_vertex(tmp_path / "o.ply")
    np.testing.assert_array_equal(vertex["red"], 0)
    np.testing.assert_array_equal(vertex["red_1"], np.arange(5))
