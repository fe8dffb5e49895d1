"""read_large_cloud: chunked LAS, memory-mapped PLY/NPY/Pointcept folders agree with the ordinary readers."""

from __future__ import annotations

import laspy
import numpy as np
import pytest

from pointsam import FileFormatError
from pointsam.io import read_point_cloud, write_ply
from pointsam.io.large import read_large_cloud

from conftest import DATA, require


def _points(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-5, 5, (n, 3))
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return xyz, rgb


def test_las_in_chunks_matches_the_full_reader(tmp_path):
    xyz, rgb = _points()
    xyz += [512_345.0, 5_403_210.0, 250.0]  # UTM-like coordinates: float32 alone would lose cm
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = [0.001, 0.001, 0.001]
    header.offsets = xyz.min(axis=0)
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    las.red, las.green, las.blue = (rgb[:, k].astype(np.uint16) * 256 for k in range(3))
    las.write(tmp_path / "scan.las")
    big = read_large_cloud(tmp_path / "scan.las", chunk_points=777)
    ref = read_point_cloud(tmp_path / "scan.las")
    assert big.xyz.dtype == np.float32 and big.num_points == len(xyz)
    np.testing.assert_allclose(big.absolute(), ref.xyz, atol=1e-3)  # float32 offsets keep mm
    np.testing.assert_array_equal(big.rgb, ref.rgb)
    np.testing.assert_allclose(big.absolute([3, 10]), ref.xyz[[3, 10]], atol=1e-3)
    if laspy.LazBackend.detect_available():
        las.write(tmp_path / "scan.laz")
        laz = read_large_cloud(tmp_path / "scan.laz", chunk_points=1000)
        np.testing.assert_array_equal(laz.xyz, big.xyz)
        np.testing.assert_array_equal(laz.rgb, big.rgb)


def test_binary_ply_and_npy_are_memory_mapped_and_match(tmp_path):
    xyz, rgb = _points(3000, seed=1)
    write_ply(tmp_path / "c.ply", xyz.astype(np.float32), rgb)
    big = read_large_cloud(tmp_path / "c.ply", chunk_points=500)
    ref = read_point_cloud(tmp_path / "c.ply")
    np.testing.assert_array_equal(big.absolute().astype(np.float32), ref.xyz)
    np.testing.assert_array_equal(big.rgb, ref.rgb)
    np.save(tmp_path / "c.npy", np.column_stack([xyz, rgb]).astype(np.float64))
    npy = read_large_cloud(tmp_path / "c.npy", chunk_points=700)
    np.testing.assert_allclose(npy.absolute(), xyz, atol=1e-5)
    np.testing.assert_array_equal(npy.rgb, rgb)


def test_pointcept_scene_folder_matches(data_dir):
    scene = require(DATA / "scannet" / "scene0011_00")
    big = read_large_cloud(scene, chunk_points=50_000)
    ref = read_point_cloud(scene)
    np.testing.assert_array_equal(big.absolute().astype(np.float32), ref.xyz)
    np.testing.assert_array_equal(big.rgb, ref.rgb)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        read_large_cloud(tmp_path / "missing.las")
    (tmp_path / "bad.las").write_bytes(b"LASF" + b"\0" * 300)
    with pytest.raises(FileFormatError):
        read_large_cloud(tmp_path / "bad.las")
    np.save(tmp_path / "flat.npy", np.zeros((10, 2)))
    with pytest.raises(FileFormatError, match="N, >=3"):
        read_large_cloud(tmp_path / "flat.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="coord.npy"):
        read_large_cloud(tmp_path / "empty")
