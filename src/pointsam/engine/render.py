"""Ray-cast RGB-D rendering of a coloured mesh (trimesh, Embree when installed) from fixed cameras."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from pointsam.engine.cameras import Camera
from pointsam.errors import FileFormatError, InputError
from pointsam.io.mesh import MESH_EXTENSIONS

DEFAULT_GREY = 180
BACKGROUND = 255  # white, as in object renders
AMBIENT = 0.35  # Lambert shading with a head light: colour * (AMBIENT + (1 - AMBIENT) |n . d|)


@dataclass
class ColoredMesh:
    """Triangles plus per-corner colours (F, 3, 3) in [0, 1] and optional UV textures per face."""

    mesh: trimesh.Trimesh
    corner_colors: np.ndarray
    texture_id: np.ndarray  # (F,) int32, -1 = no texture
    corner_uv: np.ndarray  # (F, 3, 2) float32 (zeros where untextured)
    textures: list[np.ndarray]  # (h, w, 3) uint8 images

    @property
    def num_faces(self) -> int:
        return len(self.mesh.faces)

    def color_at(self, faces: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """Colours (K, 3) in [0, 1] at barycentric coordinates `bary` (K, 3) on `faces` (K,)."""
        out = np.einsum("kc,kcd->kd", bary, self.corner_colors[faces])
        tex = self.texture_id[faces]
        for t, image in enumerate(self.textures):
            sel = np.flatnonzero(tex == t)
            if sel.size == 0:
                continue
            uv = np.einsum("kc,kcd->kd", bary[sel], self.corner_uv[faces[sel]]) % 1.0
            h, w = image.shape[:2]
            col = np.clip((uv[:, 0] * w).astype(np.int64), 0, w - 1)
            row = np.clip(((1.0 - uv[:, 1]) * h).astype(np.int64), 0, h - 1)
            out[sel] = image[row, col, :3] / 255.0
        return out


def _part_colors(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Corner colours of one mesh, plus its (F, 3, 2) corner UVs and texture image when it has one."""
    faces = np.asarray(mesh.faces)
    grey = np.full((len(faces), 3, 3), DEFAULT_GREY / 255.0)
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "vertex":
        return np.asarray(visual.vertex_colors)[:, :3][faces] / 255.0, None, None
    if kind == "face":
        return np.repeat(np.asarray(visual.face_colors)[:, None, :3] / 255.0, 3, axis=1), None, None
    if kind == "texture":
        material = getattr(visual, "material", None)
        image = getattr(material, "image", None) if material is not None else None
        if image is None and material is not None:
            image = getattr(material, "baseColorTexture", None)
        uv = getattr(visual, "uv", None)
        color = None
        if material is not None:
            color = getattr(material, "main_color", None)
        if color is not None:
            grey[:] = np.asarray(color)[:3] / 255.0
        if image is not None and uv is not None and len(uv) == len(mesh.vertices):
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
            return grey, np.asarray(uv, dtype=np.float32)[faces], rgb
    return grey, None, None


def colored_mesh(parts: list[trimesh.Trimesh]) -> ColoredMesh:
    """Concatenate meshes into one, keeping each part's vertex / face / material colours or texture."""
    parts = [p for p in parts if isinstance(p, trimesh.Trimesh) and len(p.faces)]
    if not parts:
        raise FileFormatError("no triangle faces to render")
    colors, tex_ids, uvs, textures = [], [], [], []
    for part in parts:
        corner, uv, image = _part_colors(part)
        colors.append(corner)
        ids = np.full(len(part.faces), -1, np.int32)
        if image is not None:
            ids[:] = len(textures)
            textures.append(image)
        tex_ids.append(ids)
        uvs.append(uv if uv is not None else np.zeros((len(part.faces), 3, 2), np.float32))
    geometry = [trimesh.Trimesh(p.vertices, p.faces, process=False) for p in parts]
    mesh = trimesh.util.concatenate(geometry) if len(geometry) > 1 else geometry[0]
    return ColoredMesh(mesh, np.concatenate(colors), np.concatenate(tex_ids), np.concatenate(uvs),
                       textures)


def mesh_files(path: Path) -> list[Path]:
    """The mesh files of an object: the file itself, or all meshes of a folder (or its textured_objs/)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileFormatError(f"{path}: no such file or folder")
    folder = path / "textured_objs" if (path / "textured_objs").is_dir() else path
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in MESH_EXTENSIONS)
    if not files:
        raise FileFormatError(f"{folder}: no mesh files ({', '.join(MESH_EXTENSIONS)})")
    return files


def load_colored_mesh(path: str | Path) -> ColoredMesh:
    """Load a mesh file, or combine all meshes of an object folder, with their colours."""
    log = logging.getLogger("trimesh")
    level = log.level
    log.setLevel(logging.ERROR)
    parts: list[trimesh.Trimesh] = []
    try:
        for file in mesh_files(Path(path)):
            try:
                loaded = trimesh.load(file, process=False)
            except Exception as exc:
                raise FileFormatError(f"{file}: cannot read the mesh: {exc}") from exc
            if isinstance(loaded, trimesh.Scene):
                parts += [g for g in loaded.dump(concatenate=False) if isinstance(g, trimesh.Trimesh)]
            elif isinstance(loaded, trimesh.Trimesh):
                parts.append(loaded)
    finally:
        log.setLevel(level)
    try:
        return colored_mesh(parts)
    except FileFormatError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc


@dataclass
class RenderedViews:
    """RGB-D images of one object: rgb (V, H, W, 3) uint8, depth (V, H, W) camera z (0 = background)."""

    cameras: list[Camera]
    rgb: np.ndarray
    depth: np.ndarray
    face: np.ndarray  # (V, H, W) int64 face hit by each pixel, -1 = background

    @property
    def num_views(self) -> int:
        return len(self.cameras)

    @property
    def foreground(self) -> np.ndarray:
        """(V, H, W) bool: pixels that see the object."""
        return self.depth > 0


def _intersector(mesh: trimesh.Trimesh):
    try:
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        return RayMeshIntersector(mesh)
    except Exception:  # no embreex wheel: trimesh's pure-python intersector (slow)
        from trimesh.ray.ray_triangle import RayMeshIntersector

        return RayMeshIntersector(mesh)


def render_mesh(cmesh: ColoredMesh, cameras: list[Camera]) -> RenderedViews:
    """Ray-cast every pixel centre of every camera; shade colours with a head light."""
    if not cameras:
        raise InputError("give at least one camera")
    mesh = cmesh.mesh
    intersector = _intersector(mesh)
    normals = np.asarray(mesh.face_normals)
    tris = np.asarray(mesh.triangles)
    h, w = cameras[0].height, cameras[0].width
    rgb = np.full((len(cameras), h * w, 3), BACKGROUND, np.uint8)
    depth = np.zeros((len(cameras), h * w), np.float32)
    face = np.full((len(cameras), h * w), -1, np.int64)
    for v, cam in enumerate(cameras):
        if (cam.height, cam.width) != (h, w):
            raise InputError("all cameras must share one image size")
        dirs, z_per_len = cam.pixel_rays()
        origins = np.broadcast_to(cam.position, dirs.shape)
        tri, ray, loc = intersector.intersects_id(origins, dirs, multiple_hits=False,
                                                  return_locations=True)
        if len(tri) == 0:
            continue
        dist = np.einsum("kd,kd->k", loc - cam.position, dirs[ray])
        bary = trimesh.triangles.points_to_barycentric(tris[tri], loc)
        bary = np.clip(np.nan_to_num(bary, nan=1 / 3), 0.0, 1.0)
        bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
        albedo = cmesh.color_at(tri, bary)
        shade = AMBIENT + (1 - AMBIENT) * np.abs(np.einsum("kd,kd->k", normals[tri], dirs[ray]))
        rgb[v, ray] = np.clip(albedo * shade[:, None] * 255.0 + 0.5, 0, 255).astype(np.uint8)
        depth[v, ray] = dist * z_per_len[ray]
        face[v, ray] = tri
    shape = (len(cameras), h, w)
    return RenderedViews(cameras, rgb.reshape(*shape, 3), depth.reshape(shape), face.reshape(shape))
