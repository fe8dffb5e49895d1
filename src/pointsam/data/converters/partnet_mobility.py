"""PartNet-Mobility meshes + URDF: points sampled on the links placed by forward kinematics."""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from pointsam.data.converters.files import find_files
from pointsam.data.converters.partnet import LICENCE, object_category
from pointsam.data.converters.report import Conversion, ConversionReport
from pointsam.data.dataset import LabelledCloud
from pointsam.errors import FileFormatError, InputError
from pointsam.io.mesh import read_mesh, sample_mesh

#: Joint types whose value moves the child link (revolute/continuous rotate, prismatic slides).
MOVING_JOINTS = ("revolute", "continuous", "prismatic")


@dataclass
class Visual:
    """One ``<visual>`` of a link: a mesh file (or primitive) placed by `origin` in the link frame."""

    name: str
    origin: np.ndarray
    mesh: Path | None = None
    scale: np.ndarray = field(default_factory=lambda: np.ones(3))
    primitive: trimesh.Trimesh | None = None


@dataclass
class Joint:
    """One ``<joint>``: child frame = parent frame · origin · motion(value about/along axis)."""

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray


@dataclass
class Urdf:
    """The links (name → visuals, in file order) and joints of a URDF file."""

    links: dict[str, list[Visual]]
    joints: list[Joint]


class MobilityReport(ConversionReport):
    """A conversion report that also lists objects kept with a caveat."""

    def __init__(self, source: str, licence: str) -> None:
        super().__init__(source=source, licence=licence)
        self.notes: list[tuple[str, str]] = []

    def note(self, item: object, reason: str) -> None:
        """Record an item that was converted but deserves the user's attention."""
        self.notes.append((str(item), reason))

    def summary(self, limit: int = 20) -> str:
        """The base summary, then the first `limit` notes."""
        lines = [super().summary(limit)]
        lines += [f"  note: {item}: {reason}" for item, reason in self.notes[:limit]]
        if len(self.notes) > limit:
            lines.append(f"  ... and {len(self.notes) - limit} more notes")
        return "\n".join(lines)


def rpy_matrix(rpy: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """URDF fixed-axis roll, pitch, yaw (radians) → 3×3 rotation ``Rz(yaw) · Ry(pitch) · Rx(roll)``."""
    return Rotation.from_euler("xyz", [float(v) for v in rpy]).as_matrix()  # extrinsic x, y, z


def origin_matrix(xyz: np.ndarray | tuple[float, float, float] = (0, 0, 0),
                  rpy: np.ndarray | tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    """4×4 homogeneous transform of an ``<origin xyz=... rpy=...>`` element."""
    out = np.eye(4)
    out[:3, :3] = rpy_matrix(rpy)
    out[:3, 3] = np.asarray(xyz, dtype=np.float64)
    return out


def joint_motion(joint: Joint, value: float) -> np.ndarray:
    """4×4 motion of `joint` at `value` (radians about, or metres along, its axis; 0 = rest)."""
    out = np.eye(4)
    if value == 0 or joint.type not in MOVING_JOINTS:
        return out
    norm = float(np.linalg.norm(joint.axis))
    if norm == 0:
        raise InputError(f"joint {joint.name!r} has a zero axis and cannot move")
    axis = joint.axis / norm
    if joint.type == "prismatic":
        out[:3, 3] = axis * value
        return out
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    out[:3, :3] = np.eye(3) + math.sin(value) * k + (1 - math.cos(value)) * (k @ k)  # Rodrigues
    return out


def link_transforms(urdf: Urdf, values: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """World 4×4 pose of every link by forward kinematics from the root(s); joints at `values` or 0."""
    values = values or {}
    unknown = set(values) - {j.name for j in urdf.joints}
    if unknown:
        raise InputError(f"joint values given for unknown joints: {sorted(unknown)}")
    children: dict[str, list[Joint]] = {}
    parent_of: dict[str, str] = {}
    for joint in urdf.joints:
        for end in (joint.parent, joint.child):
            if end not in urdf.links:
                raise FileFormatError(f"joint {joint.name!r} refers to undeclared link {end!r}")
        if joint.child in parent_of:
            raise FileFormatError(f"link {joint.child!r} is the child of more than one joint")
        parent_of[joint.child] = joint.parent
        children.setdefault(joint.parent, []).append(joint)
    roots = [name for name in urdf.links if name not in parent_of]
    if not roots:
        raise FileFormatError("the joints form a cycle: no root link")
    poses = {root: np.eye(4) for root in roots}
    stack = list(roots)
    while stack:
        link = stack.pop()
        for joint in children.get(link, []):
            motion = joint_motion(joint, float(values.get(joint.name, 0.0)))
            poses[joint.child] = poses[link] @ joint.origin @ motion
            stack.append(joint.child)
    if len(poses) != len(urdf.links):
        raise FileFormatError("the joints form a cycle: some links are not reachable from a root")
    return poses


def read_urdf(path: str | Path) -> Urdf:
    """Parse the links (with their visuals) and joints of a URDF file; mesh paths resolved."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise FileFormatError(f"{path}: not a readable URDF file: {exc}") from exc
    if root.tag != "robot":
        raise FileFormatError(f"{path}: the root element is <{root.tag}>, not <robot>")
    links: dict[str, list[Visual]] = {}
    for link in root.findall("link"):
        name = _attr(link, "name", path)
        if name in links:
            raise FileFormatError(f"{path}: link {name!r} is declared twice")
        links[name] = [v for v in (_visual(el, path) for el in link.findall("visual")) if v is not None]
    joints = []
    for el in root.findall("joint"):
        name = _attr(el, "name", path)
        parent, child = el.find("parent"), el.find("child")
        if parent is None or child is None:
            raise FileFormatError(f"{path}: joint {name!r} lacks a <parent> or <child>")
        axis = el.find("axis")
        joints.append(Joint(name=name, type=_attr(el, "type", path), parent=_attr(parent, "link", path),
                            child=_attr(child, "link", path), origin=_origin(el.find("origin"), path),
                            axis=_floats(axis, "xyz", path, (1, 0, 0)) if axis is not None
                            else np.array([1.0, 0, 0])))
    return Urdf(links=links, joints=joints)


def _visual(el: ET.Element, path: Path) -> Visual | None:
    """One ``<visual>``, or None when it has no geometry."""
    geometry = el.find("geometry")
    shape = None if geometry is None else next(iter(geometry), None)
    if shape is None:
        return None
    visual = Visual(name=el.get("name", ""), origin=_origin(el.find("origin"), path))
    if shape.tag == "mesh":
        filename = _attr(shape, "filename", path).removeprefix("file://")
        visual.mesh = path.parent / filename
        visual.scale = _floats(shape, "scale", path, (1, 1, 1))
    elif shape.tag == "box":
        visual.primitive = trimesh.creation.box(extents=_floats(shape, "size", path))
    elif shape.tag == "cylinder":
        visual.primitive = trimesh.creation.cylinder(radius=float(_attr(shape, "radius", path)),
                                                     height=float(_attr(shape, "length", path)))
    elif shape.tag == "sphere":
        visual.primitive = trimesh.creation.icosphere(radius=float(_attr(shape, "radius", path)))
    else:
        raise FileFormatError(f"{path}: unsupported visual geometry <{shape.tag}>")
    return visual


def _attr(el: ET.Element, name: str, path: Path) -> str:
    value = el.get(name)
    if value is None:
        raise FileFormatError(f"{path}: <{el.tag}> lacks the {name!r} attribute")
    return value


def _floats(el: ET.Element | None, name: str, path: Path,
            default: tuple[float, ...] | None = None) -> np.ndarray:
    """Three floats from an attribute such as ``xyz="0 1 2"`` (one value is repeated: ``scale="2"``)."""
    text = None if el is None else el.get(name)
    if text is None:
        if default is None:
            raise FileFormatError(f"{path}: <{getattr(el, 'tag', '?')}> lacks the {name!r} attribute")
        return np.array(default, dtype=np.float64)
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise FileFormatError(f"{path}: <{el.tag} {name}={text!r}>: not numbers") from exc
    if len(values) == 1:
        values = np.repeat(values, 3)
    if len(values) != 3 or not np.isfinite(values).all():
        raise FileFormatError(f"{path}: <{el.tag} {name}={text!r}>: expected 3 finite numbers")
    return values


def _origin(el: ET.Element | None, path: Path) -> np.ndarray:
    return origin_matrix(_floats(el, "xyz", path, (0, 0, 0)), _floats(el, "rpy", path, (0, 0, 0)))


def read_semantics(path: Path) -> dict[str, str]:
    """Link name → semantic name from ``semantics.txt`` lines ``link_k <joint type> <name>``."""
    if not path.is_file():
        return {}
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    return {r[0]: r[2] for r in rows if len(r) >= 3}


def convert_partnet_mobility(path: str | Path, points: int = 10000, strict: bool = False,
                             min_mask_points: int = 10, seed: int = 0) -> Conversion:
    """Objects under `path` (or the object folder itself) with ``mobility.urdf`` and its meshes.

    Objects flagged ``urdf_nonstandard_mesh_names`` in INDEX.csv are kept with a note, or skipped
    when `strict`.
    """
    path = Path(path)
    if points <= 0:
        raise InputError(f"--points must be positive, got {points}")
    report = MobilityReport(source=f"PartNet-Mobility meshes + URDF from {path}", licence=LICENCE)
    return Conversion(_iter_objects(path, points, strict, min_mask_points, seed, report), report)


def _iter_objects(path: Path, points: int, strict: bool, min_mask_points: int, seed: int,
                  report: MobilityReport) -> Iterator[LabelledCloud]:
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    objects = sorted(p.parent for p in find_files(path, "mobility.urdf"))
    if not objects:
        raise InputError(f"{path}: no PartNet-Mobility objects (folders with mobility.urdf) found")
    index = index_rows(path)
    categories = {p: row.get("category", "") for p, row in index.items()}
    for obj in objects:
        row = index.get(obj.resolve(), {})
        if row.get("urdf_nonstandard_mesh_names", "").lower() == "true":
            if strict:
                report.skip(obj, "meshes split/repaired upstream (urdf_nonstandard_mesh_names); --strict")
                continue
            report.note(obj, "meshes split/repaired upstream (urdf_nonstandard_mesh_names); kept")
        try:
            yield mobility_object(obj, points, object_category(obj, path, categories), min_mask_points, seed,
                                  report)
        except (InputError, FileFormatError, ValueError, OSError) as exc:
            report.skip(obj, str(exc).replace(f"{obj}/", ""))


def mobility_object(obj: Path, points: int = 10000, category: str = "", min_mask_points: int = 10,
                    seed: int = 0, report: ConversionReport | None = None) -> LabelledCloud:
    """One object folder → `points` samples on its rest-pose links, with link / semantic / part masks.

    Masks (a mask equal to an earlier one is kept once, under the earlier name): the whole object
    ``"object"`` (level 0), each link with geometry ``"link_k:<semantic>"`` (level 2), links sharing
    a semantic name ``"semantic:<name>"`` (level 1), each visual part (PartNet node) of a link with
    several ``"link_k:<semantic>/<visual name>"`` (level 3). Masks under `min_mask_points` are dropped.
    """
    urdf = read_urdf(obj / "mobility.urdf")
    files = sorted({v.mesh for visuals in urdf.links.values() for v in visuals if v.mesh is not None})
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputError(f"no meshes: {len(missing)} of {len(files)} mesh files missing (e.g. {missing[0]})")
    poses = link_transforms(urdf)
    mesh, link_of_face, part_of_face, links, parts = posed_mesh(urdf, poses)
    sample = sample_mesh(mesh, points, seed=seed)
    link_id, part_id = link_of_face[sample.face_index], part_of_face[sample.face_index]
    semantics = read_semantics(obj / "semantics.txt")
    named = [f"{k}:{semantics[k]}" if k in semantics else k for k in links]
    candidates = [("object", 0, np.arange(points))]
    candidates += [(named[i], 2, np.flatnonzero(link_id == i)) for i in range(len(links))]
    groups: dict[str, list[int]] = {}
    for i, link in enumerate(links):
        if link in semantics:
            groups.setdefault(semantics[link], []).append(i)
    for sem, members in groups.items():
        if len(members) > 1:
            candidates.append((f"semantic:{sem}", 1, np.flatnonzero(np.isin(link_id, members))))
    for i, (link, part) in enumerate(parts):
        if sum(p[0] == link for p in parts) > 1:
            candidates.append((f"{named[link]}/{part}", 3, np.flatnonzero(part_id == i)))
    masks, names, levels, seen = [], [], [], set()
    for name, level, idx in candidates:
        if len(idx) < min_mask_points:
            if report is not None:
                report.drop_mask(obj, f"{name}: {len(idx)} point(s) < {min_mask_points}")
            continue
        if idx.tobytes() in seen:
            continue
        seen.add(idx.tobytes())
        masks.append(idx)
        names.append(name)
        levels.append(level)
    # a stable level order: coarse to fine, as in the hierarchy
    order = np.argsort(levels, kind="stable")
    return LabelledCloud(xyz=sample.xyz.astype(np.float32), masks=[masks[i] for i in order],
                         names=[names[i] for i in order], levels=np.array(levels, np.int32)[order],
                         category=category, source=str(obj), name=f"{category or 'obj'}_{obj.name}")


def posed_mesh(urdf: Urdf, poses: dict[str, np.ndarray]
               ) -> tuple[trimesh.Trimesh, np.ndarray, np.ndarray, list[str], list[tuple[int, str]]]:
    """All visuals placed in the world as one mesh, with each face's link and (link, part) index."""
    vertices, faces, face_link, face_part = [], [], [], []
    links: list[str] = []
    parts: list[tuple[int, str]] = []
    offset = 0
    cache: dict[Path, trimesh.Trimesh] = {}
    for link, visuals in urdf.links.items():
        for visual in visuals:
            if visual.primitive is not None:
                geometry = visual.primitive
            else:
                if visual.mesh not in cache:
                    cache[visual.mesh] = read_mesh(visual.mesh)
                geometry = cache[visual.mesh]
            if len(geometry.faces) == 0:
                continue
            if link not in links:
                links.append(link)
            part = (links.index(link), visual.name or f"visual_{len(parts)}")
            if part not in parts:
                parts.append(part)
            transform = poses[link] @ visual.origin
            v = np.asarray(geometry.vertices, np.float64) * visual.scale
            vertices.append(v @ transform[:3, :3].T + transform[:3, 3])
            faces.append(np.asarray(geometry.faces, np.int64) + offset)
            face_link.append(np.full(len(geometry.faces), links.index(link)))
            face_part.append(np.full(len(geometry.faces), parts.index(part)))
            offset += len(v)
    if not faces:
        raise InputError("no link has visual geometry with faces")
    mesh = trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)
    return mesh, np.concatenate(face_link), np.concatenate(face_part), links, parts


def index_rows(root: Path) -> dict[Path, dict[str, str]]:
    """Object folder → its row of an ``INDEX.csv`` (with a ``path`` column) at or above `root`."""
    for folder in (root, *root.parents):
        index = folder / "INDEX.csv"
        if index.is_file():
            with open(index, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            if rows and "path" in rows[0]:
                return {(folder / r["path"]).resolve(): r for r in rows}
    return {}
