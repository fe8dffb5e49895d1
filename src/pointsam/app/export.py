"""Export a session's objects: PLY (label + instance), NPY, SemanticKITTI `.label`, PCD with label fields,
LAS classification (the class map's ASPRS / user codes), JSON, labelled mesh, and one class map beside them
(`STEM.classes.json`, the ids of the label fields; `pointsam.io.labelformats.read_label_files` and
`pointsam.io.las_labels.read_las_classes` read the label files back with it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pointsam.app.session import AnnotationSession
from pointsam.errors import PointSAMError
from pointsam.io import PointCloud, labels_to_faces, write_mesh_labels, write_ply
from pointsam.io.classmap import ClassEntry, ClassMap
from pointsam.io.las_labels import write_las_classes
from pointsam.io.palette import label_colors
from pointsam.utils.files import atomic_output

MESH_EXPORTS = (".ply", ".obj", ".glb")

# Hook for the dataset label formats written by pointsam.io (SemanticKITTI .label, PCD with label fields):
# kind -> (file name suffix, writer(path, cloud, label, instance, overwrite)); label/instance are (N,) int32,
# -1 = unlabelled. Register a writer here and every export (one file or a whole folder) writes it.
LabelWriter = Callable[[Path, PointCloud, np.ndarray, np.ndarray, bool], None]


def _write_semantickitti(path: Path, cloud: PointCloud, label: np.ndarray, instance: np.ndarray,
                         overwrite: bool) -> None:
    """uint32 per point: class in the low 16 bits (-1 -> 0, SemanticKITTI's 'unlabeled'), instance + 1 in
    the high 16 bits (0 = none), as `pointsam.io.labelformats` writes and reads them."""
    from pointsam.io.semantickitti import write_kitti_labels

    write_kitti_labels(path, label, instance.astype(np.int64) + 1, overwrite=overwrite)


def _write_pcd(path: Path, cloud: PointCloud, label: np.ndarray, instance: np.ndarray,
               overwrite: bool) -> None:
    """x y z [rgb] label instance (int32, -1 = unlabelled), binary PCD."""
    from pointsam.io.pcd_labels import write_pcd_labels

    write_pcd_labels(path, cloud.xyz, label, instance, cloud.rgb, overwrite=overwrite)


LABEL_WRITERS: dict[str, tuple[str, LabelWriter]] = {
    "semantickitti": (".label", _write_semantickitti),
    "pcd": (".labels.pcd", _write_pcd),
}


def unwritable_kinds(cmap: ClassMap, label: np.ndarray) -> dict[str, str]:
    """Label formats that cannot hold these labels, with the reason: SemanticKITTI stores unlabelled points
    as class 0, so a map whose class 0 is a real class (ScanNet20's wall) cannot use it while points are
    left unlabelled."""
    if 0 in cmap.ids and (label < 0).any() and cmap.by_id(0).name.lower() not in ("unlabeled", "unlabelled"):
        return {"semantickitti": f"not written: SemanticKITTI stores unlabelled points as class 0, which is "
                                 f"{cmap.by_id(0).name!r} in this class map; label every point or use a "
                                 f"class map without id 0"}
    return {}


def export_stem(input_path: Path) -> str:
    """The name shared by every export of `input_path` (file name without its extension)."""
    return input_path.stem if input_path.suffix else input_path.name


def planned_exports(cloud: PointCloud, out_dir: Path, stem: str) -> dict[str, Path]:
    """The files an export writes for this cloud: kind -> path."""
    plan = {
        "ply": out_dir / f"{stem}.labels.ply",
        "label_npy": out_dir / f"{stem}.label.npy",
        "instance_npy": out_dir / f"{stem}.instance.npy",
        "json": out_dir / f"{stem}.objects.json",
        "classes": out_dir / f"{stem}.classes.json",
    }
    for kind, (suffix, _) in LABEL_WRITERS.items():
        plan[kind] = out_dir / f"{stem}{suffix}"
    src = cloud.source
    if src is not None and src.suffix.lower() in (".las", ".laz"):
        plan["las"] = out_dir / f"{stem}.labels{src.suffix.lower()}"
    if cloud.mesh is not None and cloud.face_index is not None:
        ext = src.suffix.lower() if src is not None and src.suffix.lower() in MESH_EXPORTS else ".ply"
        plan["mesh"] = out_dir / f"{stem}.labelled{ext}"
        plan["mesh_legend"] = out_dir / f"{stem}.labelled.legend.json"
    return plan


def session_class_map(session: AnnotationSession) -> ClassMap:
    """The classes of the exported label ids: the session's class map, or one made of its classes."""
    if session.class_map is not None:
        return session.class_map
    return ClassMap([ClassEntry(cid, name, tuple(int(c) for c in label_colors([cid])[0]))
                     for name, cid in session.class_ids().items()], name=session.input_name)


def _save_npy(path: Path, values: np.ndarray, overwrite: bool) -> None:
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as fh:
        np.save(fh, values, allow_pickle=False)


def export_session(session: AnnotationSession, cloud: PointCloud, out_dir: Path, stem: str,
                   overwrite: bool = False) -> dict[str, Path]:
    """Write every planned export; refuses (FileExistsError naming them) when any exists, unless overwrite."""
    plan = planned_exports(cloud, out_dir, stem)
    existing = [str(p) for p in plan.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"export files already exist: {', '.join(existing)}; confirm to replace them")
    instance = session.instance_labels()
    label = session.class_labels()
    write_ply(plan["ply"], cloud.xyz, cloud.rgb, fields={"label": label, "instance": instance},
              overwrite=overwrite, source=cloud)
    _save_npy(plan["label_npy"], label, overwrite)
    _save_npy(plan["instance_npy"], instance, overwrite)
    cmap = session_class_map(session)
    if "las" in plan:  # the source LAS re-read: every original field kept, classification = the map's code
        write_las_classes(plan["las"], cloud.xyz, label, cmap, cloud.rgb, source=cloud, overwrite=overwrite)
    if "mesh" in plan:  # faces take the majority object id of their points
        faces = labels_to_faces(cloud.mesh, cloud.xyz, cloud.face_index, instance)
        write_mesh_labels(plan["mesh"], cloud.mesh, faces, overwrite=overwrite, source_path=cloud.source)
    skipped = unwritable_kinds(cmap, label)
    for kind, (_, writer) in LABEL_WRITERS.items():
        if kind not in skipped:
            writer(plan[kind], cloud, label, instance, overwrite)
        elif overwrite:  # replacing confirmed: no stale file of older labels is left beside the new ones
            plan[kind].unlink(missing_ok=True)
    cmap.save(plan["classes"], overwrite=overwrite)
    ids = session.class_ids()
    doc = {
        "input": session.input_name,
        "num_points": session.num_points,
        "unlabelled": -1,
        "fields": {"label": "class id (see classes)", "instance": "object id (see objects)"},
        "classes": [{"id": ids[c], "name": c} for c in session.classes],
        "mode": "semantic" if session.semantic else "instance",
        "objects": [{"id": o.id, "name": o.name, "class": o.label, "class_id": ids[o.label],
                     "num_points": int(o.indices.size), "indices": o.indices.tolist()}
                    for o in sorted(session.objects.values(), key=lambda o: o.id)],
        "files": {k: p.name for k, p in plan.items() if k != "json" and k not in skipped},
        **({"not_written": skipped} if skipped else {}),
    }
    with atomic_output(plan["json"], overwrite) as tmp:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
    return {k: p for k, p in plan.items() if k not in skipped}


def export_dataset(dataset, *, mesh_samples: int, class_map: ClassMap | None = None,
                   overwrite: bool = False) -> dict:
    """Export every file of a `pointsam.app.dataset.Dataset` that has annotations into its export folder
    (same sub-folders); files that fail are listed with the reason, the others still exported."""
    from pointsam.io import read_point_cloud

    done, failed = [], []
    for k, f in enumerate(dataset.files):
        sidecar = dataset.sidecar(k)
        if not sidecar.exists():
            continue
        if f.error:
            failed.append({"name": f.name, "error": f.error})
            continue
        try:
            cloud = read_point_cloud(f.path, mesh_samples=mesh_samples)
            cmap = None if class_map is None else ClassMap(class_map.entries, name=class_map.name)
            session = AnnotationSession.open(None, cloud.xyz, sidecar, input_name=f.path.name,
                                             class_map=cmap, replay=False)
            out = dataset.out_dir / Path(f.name).parent
            export_session(session, cloud, out, export_stem(f.path), overwrite=overwrite)
            done.append(f.name)
        except (FileExistsError, PointSAMError, OSError) as exc:
            failed.append({"name": f.name, "error": str(exc)})
    text = f"exported {len(done)} file(s) to {dataset.out_dir}"
    if failed:
        text += f"; {len(failed)} not exported: " + "; ".join(f"{x['name']}: {x['error']}" for x in failed)
    return {"exported": done, "failed": failed, "out_dir": str(dataset.out_dir), "summary": text}
