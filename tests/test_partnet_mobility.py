"""PartNet-Mobility URDF + mesh converter: URDF parsing, forward kinematics, masks, conversion."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from pointsam.cli import main
from pointsam.data import DatasetWriter, PointCloudDataset
from pointsam.data.converters import FORMATS, convert_partnet_mobility, mobility_object
from pointsam.data.converters.partnet_mobility import (
    link_transforms,
    posed_mesh,
    read_semantics,
    read_urdf,
    rpy_matrix,
)
from pointsam.errors import FileFormatError, InputError
from pointsam.io import sample_mesh

from conftest import DATA, require

PARTNET = DATA / "partnet_mobility"
#: PartNet point samples are y-up; PartNet-Mobility's world is z-up: (x, y, z) -> (-z, -x, y).
PARTNET_TO_WORLD = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=np.float64)


def need(rel: str) -> Path:
    return require(PARTNET / rel)


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric mean nearest-neighbour distance."""
    return float(cKDTree(a).query(b)[0].mean() + cKDTree(b).query(a)[0].mean()) / 2


# --------------------------------------------------------------------------- hand-made URDFs

URDF = """<?xml version="1.0" ?>
<robot name="toy">
  <link name="base"/>
  <link name="link_0">
    <visual name="body-1">
      <origin xyz="{vis_xyz}" rpy="{vis_rpy}"/>
      <geometry><mesh filename="parts/cube.obj" scale="{scale}"/></geometry>
    </visual>
  </link>
  <link name="link_1">
    <visual name="lid-2"><origin xyz="0 0 0"/><geometry><box size="0.2 0.2 0.2"/></geometry></visual>
    <!-- <visual name="gone"><geometry><mesh filename="parts/missing.obj"/></geometry></visual> -->
  </link>
  <joint name="joint_0" type="fixed">
    <origin xyz="{j0_xyz}" rpy="{j0_rpy}"/>
    <parent link="base"/><child link="link_0"/>
  </joint>
  <joint name="joint_1" type="revolute">
    <origin xyz="1 0 0"/>
    <axis xyz="0 0 1"/>
    <parent link="link_0"/><child link="link_1"/>
  </joint>
</robot>
"""


def toy_object(folder: Path, vis_xyz="0 0 0", vis_rpy="0 0 0", scale="1 1 1", j0_xyz="0 0 0",
               j0_rpy="0 0 0", semantics="link_0 static body\nlink_1 hinge lid\n") -> Path:
    """An object folder with a unit cube mesh on link_0 and a 0.2 box primitive on link_1."""
    (folder / "parts").mkdir(parents=True)
    trimesh.creation.box(extents=(1, 1, 1)).export(folder / "parts" / "cube.obj")
    (folder / "mobility.urdf").write_text(URDF.format(vis_xyz=vis_xyz, vis_rpy=vis_rpy, scale=scale,
                                                      j0_xyz=j0_xyz, j0_rpy=j0_rpy))
    (folder / "semantics.txt").write_text(semantics)
    return folder


def test_rpy_is_fixed_axis_roll_pitch_yaw():
    # by hand: Rx(90°) then Rz(90°) about the fixed axes sends x -> y, y -> z, z -> x
    assert np.allclose(rpy_matrix((math.pi / 2, 0, math.pi / 2)), [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    rng = np.random.default_rng(0)
    for rpy in rng.uniform(-math.pi, math.pi, (20, 3)):
        expected = Rotation.from_euler("xyz", rpy).as_matrix()  # lower case = extrinsic (fixed) axes
        assert np.allclose(rpy_matrix(rpy), expected, atol=1e-12)
        assert not np.allclose(rpy_matrix(rpy), Rotation.from_euler("XYZ", rpy).as_matrix())


def test_forward_kinematics_composes_joint_and_visual_origins(tmp_path):
    obj = toy_object(tmp_path / "toy", vis_xyz="0 0 0.5", vis_rpy="0 0 0.3", scale="2 1 1",
                     j0_xyz="0 0 1", j0_rpy=f"{math.pi / 2} 0 {math.pi / 2}")
    urdf = read_urdf(obj / "mobility.urdf")
    assert list(urdf.links) == ["base", "link_0", "link_1"]  # the commented-out visual is ignored
    assert [len(v) for v in urdf.links.values()] == [0, 1, 1]
    assert np.allclose(urdf.links["link_0"][0].scale, [2, 1, 1])
    poses = link_transforms(urdf)
    r = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=np.float64)
    assert np.allclose(poses["link_0"][:3, :3], r) and np.allclose(poses["link_0"][:3, 3], [0, 0, 1])
    # link_1 sits 1 along link_0's x axis, which the rotation sends to world y
    assert np.allclose(poses["link_1"][:3, 3], [0, 1, 1]) and np.allclose(poses["link_1"][:3, :3], r)
    # the revolute joint at 90° about link_0's z axis turns link_1's x axis onto link_0's y axis
    moved = link_transforms(urdf, {"joint_1": math.pi / 2})
    assert np.allclose(moved["link_1"][:3, 3], [0, 1, 1])
    assert np.allclose(moved["link_1"][:3, :3] @ [1, 0, 0], r @ [0, 1, 0])
    with pytest.raises(InputError, match="unknown joints"):
        link_transforms(urdf, {"nope": 1.0})

    cloud = mobility_object(obj, 4000, category="Toy")
    lid = cloud.masks[cloud.names.index("link_1:lid")]
    body = cloud.masks[cloud.names.index("link_0:body")]
    # the 0.2 box is centred on link_1's origin
    assert np.allclose(cloud.xyz[lid].mean(0), [0, 1, 1], atol=0.02)
    assert np.allclose(np.ptp(cloud.xyz[lid], 0), 0.2, atol=1e-5)
    # the cube, scaled 2x in x, turned 0.3 rad about its z, lifted 0.5: placed by link_0's pose
    vis = np.eye(4)
    vis[:3, :3] = Rotation.from_euler("z", 0.3).as_matrix()
    vis[:3, 3] = [0, 0, 0.5]
    world = poses["link_0"] @ vis
    local = (cloud.xyz[body] - world[:3, 3]) @ world[:3, :3]  # back into the cube's own frame
    assert np.allclose(np.abs(local).max(0), [1.0, 0.5, 0.5], atol=1e-5)
    # area-weighted: the 2x1x1 cuboid has area 10, the box 0.24
    assert abs(len(body) / 4000 - 10 / 10.24) < 0.02


def test_urdf_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.urdf"
    bad.write_text("<robot><link name='a'/></robo>")
    with pytest.raises(FileFormatError, match="not a readable URDF"):
        read_urdf(bad)
    bad.write_text("<robot><link name='a'/><joint name='j' type='fixed'><parent link='a'/>"
                   "<child link='b'/></joint></robot>")
    with pytest.raises(FileFormatError, match="undeclared link 'b'"):
        link_transforms(read_urdf(bad))
    bad.write_text("<robot><link name='a'/><link name='b'/>"
                   "<joint name='j' type='fixed'><parent link='a'/><child link='b'/></joint>"
                   "<joint name='k' type='fixed'><parent link='b'/><child link='a'/></joint></robot>")
    with pytest.raises(FileFormatError, match="cycle"):
        link_transforms(read_urdf(bad))
    bad.write_text("<robot><link name='a'><visual><origin xyz='0 zero 0'/><geometry><box size='1 1 1'/>"
                   "</geometry></visual></link></robot>")
    with pytest.raises(FileFormatError, match="not numbers"):
        read_urdf(bad)


# ------------------------------------------------------------------------------ real objects


@pytest.mark.parametrize("rel", ["Faucet/168", "StorageFurniture/45213"])
def test_fk_cloud_aligns_with_partnet_point_sample(rel):
    obj = need(rel)
    partnet = np.loadtxt(obj / "point_sample" / "pts-10000.txt")[:, :3] @ PARTNET_TO_WORLD.T
    diag = float(np.linalg.norm(np.ptp(partnet, 0)))
    cloud = mobility_object(obj, 10000)
    fk = chamfer(cloud.xyz, partnet) / diag
    # without kinematics: each mesh placed by its visual origin only (joints ignored)
    urdf = read_urdf(obj / "mobility.urdf")
    raw = posed_mesh(urdf, {name: np.eye(4) for name in urdf.links})[0]
    no_fk = chamfer(sample_mesh(raw, 10000).xyz @ PARTNET_TO_WORLD.T, partnet) / diag
    assert fk < 0.012, fk  # both are 10k random samples of the same surface: ~0.3-1% of the size
    assert no_fk > 3 * fk, (fk, no_fk)


def test_link_masks_disjoint_and_named(tmp_path):
    obj = need("StorageFurniture/45213")
    cloud = mobility_object(obj, 10000, category="StorageFurniture", min_mask_points=1)
    semantics = read_semantics(obj / "semantics.txt")
    levels = cloud.levels.tolist()
    assert levels == sorted(levels) and levels[0] == 0
    assert cloud.names[0] == "object" and len(cloud.masks[0]) == 10000
    links = [(n, m) for n, m, lv in zip(cloud.names, cloud.masks, levels, strict=True) if lv == 2]
    assert len(links) >= 3
    for name, mask in links:
        link, sem = name.split(":")
        assert semantics[link] == sem and len(mask) > 0
    labels = np.concatenate([m for _, m in links])
    assert len(labels) == len(np.unique(labels)) == 10000  # disjoint and covering
    by_link = {n.split(":")[0]: set(m.tolist()) for n, m in links}
    for name, mask, level in zip(cloud.names, cloud.masks, levels, strict=True):
        if level == 1:  # a semantic group: the union of its links
            members = [k for k, s in semantics.items() if f"semantic:{s}" == name and k in by_link]
            assert len(members) > 1 and set(mask.tolist()) == set().union(*(by_link[k] for k in members))
        if level == 3:  # a visual part: inside its link
            assert set(mask.tolist()) <= by_link[name.split(":")[0]]
    again = mobility_object(obj, 10000, category="StorageFurniture", min_mask_points=1)
    assert np.array_equal(again.xyz, cloud.xyz)  # seeded


def test_convert_few_objects_with_skips_and_split(tmp_path):
    src = tmp_path / "pm"
    rows = ["path,category,urdf_nonstandard_mesh_names"]
    for rel, flag in [("Faucet/148", "False"), ("Bottle/3558", "False"), ("KitchenPot/100040", "True"),
                      ("Bottle/3380", "False")]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).symlink_to(need(rel), target_is_directory=True)
        rows.append(f"{rel},{rel.split('/')[0]},{flag}")
    broken = src / "Bottle" / "9999"
    shutil.copytree(need("Bottle/3558"), broken, ignore=shutil.ignore_patterns("point_sample"))
    for mesh in (broken / "textured_objs").glob("*.obj"):
        mesh.write_text("this is not an OBJ file\n")
    (src / "INDEX.csv").write_text("\n".join(rows) + "\n")

    conversion = convert_partnet_mobility(src, points=2048)
    out = tmp_path / "ds"
    with DatasetWriter(out, name="pm") as writer:
        for cloud in conversion:
            writer.add(cloud, split="val" if cloud.category == "Faucet" else "train")
    report = conversion.report
    assert report.converted == 3
    skipped = dict(report.skipped)
    assert set(skipped) == {str(src / "Bottle" / "3380"), str(broken)}
    assert "mesh files missing" in skipped[str(src / "Bottle" / "3380")]
    assert "textured_objs/" in skipped[str(broken)]
    assert report.notes == [(str(src / "KitchenPot" / "100040"),
                             "meshes split/repaired upstream (urdf_nonstandard_mesh_names); kept")]
    assert "note:" in report.summary()

    data = PointCloudDataset(out)
    assert len(data) == 3 and sorted(data.categories) == ["Bottle", "Faucet", "KitchenPot"]
    assert [c.category for c in PointCloudDataset(out, split="val")] == ["Faucet"]
    for cloud in data:
        assert cloud.num_points == 2048 and cloud.rgb is None
        assert all(len(m) >= 10 for m in cloud.masks) and cloud.levels[0] == 0
        assert any(n.startswith("link_") for n in cloud.names)

    strict = convert_partnet_mobility(src, points=512, strict=True)
    assert [c.category for c in strict] == ["Bottle", "Faucet"]
    assert "--strict" in dict(strict.report.skipped)[str(src / "KitchenPot" / "100040")]


def test_small_masks_dropped_and_reported(tmp_path):
    obj = toy_object(tmp_path / "toy")
    conversion = convert_partnet_mobility(obj, points=300, min_mask_points=50)
    (cloud,) = list(conversion)
    assert "link_1:lid" not in cloud.names  # 0.24 of 6.24 area: ~12 points
    assert any("link_1:lid" in reason for _, reason in conversion.report.dropped_masks)
    assert cloud.names == ["object", "link_0:body"] and cloud.num_points == 300


def test_cli_convert_partnet_mobility(tmp_path, capsys):
    obj = toy_object(tmp_path / "src" / "Toy" / "1")
    out = tmp_path / "out"
    assert main(["convert", "partnet-mobility", str(obj.parent.parent), "--out", str(out),
                 "--points", "500", "--val-categories", "Toy"]) == 0
    assert "converted 1 cloud(s)" in capsys.readouterr().out
    assert len(PointCloudDataset(out, split="val")) == 1
    assert main(["convert", "partnet-mobility", str(obj), "--out", str(out)]) != 0  # no --overwrite
    assert "already holds a dataset" in capsys.readouterr().err
    with pytest.raises(InputError, match="no PartNet-Mobility objects"):
        list(FORMATS["partnet-mobility"](tmp_path / "out"))
