"""Fuzz cases for the readers and writers (issue 13): each bad input gets one clear, early error."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from pointsam.errors import FileFormatError, InputError
from pointsam.io import check_output, read_point_cloud, write_labels, write_mesh_labels
from pointsam.preprocessing import check_xyz, fit_unit_sphere


def _error(path: Path) -> str:
    with pytest.raises(FileFormatError) as info:
        read_point_cloud(path)
    message = str(info.value)
    assert str(path) in message and "No module named" not in message
    return message


def test_ply_with_list_coordinates(tmp_path: Path) -> None:
    path = tmp_path / "list_x.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty list uchar float x\n"
                    "property float y\nproperty float z\nend_header\n2 1 2 3 4\n1 5 6 7\n")
    assert "x is a list" in _error(path)


def test_ply_header_without_end(tmp_path: Path) -> None:
    path = tmp_path / "endless.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\ncomment " + b"a" * 3_000_000 + b"\n")
    assert "no 'end_header' in the first 1,048,576 bytes" in _error(path)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "ascii"])
def test_ply_with_a_huge_vertex_count(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "huge.ply"
    path.write_bytes(f"ply\nformat {fmt} 1.0\nelement vertex 1000000000000\nproperty float x\n"
                     "property float y\nproperty float z\nend_header\n".encode() + b"\0" * 24)
    assert "promises 1,000,000,000,000 vertex" in _error(path)


@pytest.mark.parametrize("ext", [".obj", ".stl", ".off"])
def test_garbage_meshes(tmp_path: Path, ext: str) -> None:
    rng = np.random.default_rng(0)
    binary = tmp_path / f"binary{ext}"
    binary.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    assert "not a valid" in _error(binary)
    no_nul = tmp_path / f"noise{ext}"  # not UTF-8, no NUL bytes: looks like text in a legacy encoding
    no_nul.write_bytes(rng.integers(128, 256, 3000, dtype=np.uint8).tobytes())
    _error(no_nul)


def test_latin1_obj_is_read(tmp_path: Path) -> None:
    obj = trimesh.creation.box().export(file_type="obj")
    path = tmp_path / "latin1.obj"
    path.write_bytes("# modèle créé à Orléans\n".encode("latin-1") + obj.encode())
    cloud = read_point_cloud(path, mesh_samples=100)
    assert cloud.num_points == 100


def test_pcd_with_a_huge_point_count(tmp_path: Path) -> None:
    path = tmp_path / "huge.pcd"
    path.write_text("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                    "WIDTH 1000000000000\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 1000000000000\n"
                    "DATA binary\n" + "\0" * 48)
    message = _error(path)
    assert "1,000,000,000,000 points" in message and "48 bytes" in message


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_with_a_huge_point_count(tmp_path: Path, ext: str) -> None:
    good = tmp_path / f"good{ext}"
    write_labels(good, np.random.default_rng(0).random((100, 3)), np.zeros(100, int))
    data = bytearray(good.read_bytes())
    data[247:255] = struct.pack("<Q", 10**12)  # LAS 1.4: the 64-bit point count
    data[107:111] = struct.pack("<I", 0)  # and the legacy 32-bit one
    path = tmp_path / f"huge{ext}"
    path.write_bytes(bytes(data))
    assert "1,000,000,000,000 points" in _error(path)


def test_extreme_coordinates_say_what_is_wrong() -> None:
    with pytest.raises(InputError, match="9e\\+300 in magnitude.*rescale"):
        check_xyz(np.full((10, 3), 1e300) * np.arange(10)[:, None])
    xyz = np.random.default_rng(0).random((500, 3))
    xyz[3] = [1e12, 0, 0]
    with pytest.raises(InputError, match="1 point\\(s\\) lie far from the rest"):
        fit_unit_sphere(xyz)


def test_output_over_a_mesh_input_is_refused(tmp_path: Path) -> None:
    mesh_path = tmp_path / "part.obj"
    trimesh.creation.box().export(mesh_path)
    before = mesh_path.read_bytes()
    cloud = read_point_cloud(mesh_path, mesh_samples=50)
    with pytest.raises(InputError, match="is the input file"):
        check_output(mesh_path, overwrite=True, kind="mesh", source=cloud)
    # the writers refuse too, for callers that skipped the early check
    with pytest.raises(InputError, match="is the input mesh"):
        write_mesh_labels(mesh_path, cloud.mesh, np.zeros(12, int), overwrite=True,
                          source_path=mesh_path)
    assert mesh_path.read_bytes() == before
    ply_mesh = tmp_path / "part.ply"
    trimesh.creation.box().export(ply_mesh)
    before = ply_mesh.read_bytes()
    cloud = read_point_cloud(ply_mesh, mesh_samples=50)
    with pytest.raises(InputError, match="is the input file"):
        write_labels(ply_mesh, cloud.xyz, np.ones(50, bool), source=cloud, overwrite=True)
    assert ply_mesh.read_bytes() == before


def test_output_in_an_unwritable_place(tmp_path: Path) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc (Linux)")
    with pytest.raises(FileFormatError, match="cannot write in the folder /proc"):
        check_output("/proc/pointsam/out.ply")


def test_npz_bomb_is_refused_before_inflating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    from pointsam.io import readers

    monkeypatch.setattr(readers, "MAX_INFLATED_BYTES", 1 << 20)  # 1 MiB here instead of 1 GiB: fast
    path = tmp_path / "bomb.npz"
    n = 4_000_000  # 48 MB of float32 zeros, about 50 KB deflated
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 3), np.float32))
    header["shape"] = (n, 3)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xyz.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            block = bytes(12 * n // 8)
            for _ in range(8):
                fh.write(block)
    assert path.stat().st_size < 1_000_000
    assert "likely zip bomb" in _error(path)
    # an ordinary compressed cloud is read
    np.savez_compressed(tmp_path / "ok.npz", xyz=np.random.default_rng(0).random((1000, 3)))
    assert read_point_cloud(tmp_path / "ok.npz").num_points == 1000
