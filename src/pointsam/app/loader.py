"""Open one file for annotation: read it, encode it once (its own predictor), open or resume its session."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pointsam.app.classes import ClassMap
from pointsam.app.session import AnnotationSession
from pointsam.io import PointCloud, read_point_cloud
from pointsam.predictor import PointCloudPredictor


def default_up(path: Path) -> str:
    """The view's up axis: y for .obj/.glb/.gltf meshes (their convention), else z."""
    return "y" if path.suffix.lower() in (".obj", ".glb", ".gltf") else "z"


def read_and_encode(model, path: Path, *, mesh_samples: int = 100_000,
                    say: Callable[[str], None] = print) -> tuple[PointCloud, PointCloudPredictor]:
    """Read `path` and encode it once with a fresh predictor (so a failure leaves any open file untouched)."""
    t0 = time.perf_counter()
    cloud = read_point_cloud(path, mesh_samples=mesh_samples)
    say(f"read {cloud.num_points:,} points from {path} in {time.perf_counter() - t0:.1f} s")
    predictor = PointCloudPredictor(model, mode="auto")  # big scans: clicks answered on local regions
    t1 = time.perf_counter()
    predictor.set_point_cloud(cloud.xyz, cloud.rgb, progress=lambda m: say(m + " ..."))
    say(f"encoded {path.name} once in {time.perf_counter() - t1:.1f} s; each click only decodes")
    return cloud, predictor


def open_session(predictor: PointCloudPredictor, cloud: PointCloud, path: Path, sidecar: Path, *,
                 class_map: ClassMap | None = None, semantic: bool = False,
                 say: Callable[[str], None] = print) -> AnnotationSession:
    """Open (or resume) the session of an encoded cloud from `sidecar`."""
    session = AnnotationSession.open(predictor, cloud.xyz, sidecar, input_name=path.name,
                                     class_map=class_map, semantic=semantic)
    if session.objects or session.steps:
        say(f"resumed {sidecar}: {len(session.objects)} object(s), {len(session.steps)} pending step(s)")
    else:
        say(f"annotations will be saved to {sidecar}")
    if session.unknown_classes:
        missing = ", ".join(session.unknown_classes)
        say(f"warning: {sidecar} uses classes that the class map lacks: {missing}; kept with new ids")
    return session


def open_for_annotation(model, path: Path, sidecar: Path, *, mesh_samples: int = 100_000,
                        class_map: ClassMap | None = None, semantic: bool = False,
                        say: Callable[[str], None] = print) -> tuple[AnnotationSession, PointCloud]:
    """Read and encode `path`, open its session from `sidecar`; `FileFormatError`/`InputError`/`OSError`
    say why it cannot be opened."""
    cloud, predictor = read_and_encode(model, path, mesh_samples=mesh_samples, say=say)
    session = open_session(predictor, cloud, path, sidecar, class_map=class_map, semantic=semantic, say=say)
    return session, cloud
