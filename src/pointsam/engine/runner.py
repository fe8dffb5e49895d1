"""The data-engine run: find meshes, shard them over ranks, label each one, resume after a stop.

Output folder layout: one ``<mesh id>.npz`` per labelled mesh (pointsam dataset format plus
provenance arrays ``mask_view``, ``mask_proposal``, ``mask_iou``, ``mask_sam_score``), the
``dataset.json`` index (rebuilt by every rank when it finishes, under a file lock), and
``.engine/``: ``settings.json`` (a resumed run must use the same settings), ``done/<id>.json``
per finished mesh (written atomically after its ``.npz``: a mesh with a marker is never redone)
and ``failed/<id>.json`` with the error of each failed mesh (retried on the next run).

Order of a run: :meth:`EngineOutput.prepare` only checks the folder (writes nothing), the caller
loads its models, and :func:`run_shard` starts the output (creates it, resets it on overwrite,
records the settings) before the first mesh: a start that fails, e.g. on a bad SAM folder,
leaves nothing that could block the corrected rerun.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pointsam.data.dataset import LabelledCloud, owned_files, write_index
from pointsam.engine.cameras import object_cameras
from pointsam.engine.fusion import fuse_views
from pointsam.engine.lifting import Lifter, LiftSettings, Proposal3D
from pointsam.engine.render import load_colored_mesh, render_mesh
from pointsam.engine.sam2d import ProposalSettings
from pointsam.errors import InputError
from pointsam.io.mesh import MESH_EXTENSIONS
from pointsam.utils.files import atomic_output

STATE = ".engine"
LICENCE = "pseudo labels of the input meshes: the meshes' own licence applies"


@dataclass(frozen=True)
class MeshItem:
    """One object to label: a mesh file or an object folder (all its meshes combined)."""

    id: str
    path: Path
    category: str


@dataclass
class EngineSettings:
    """Everything that changes the labels (a resumed run must use the same)."""

    views: int = 6
    image_size: int = 512
    fov_deg: float = 40.0
    num_points: int = 32768
    seed: int = 0
    lift: LiftSettings = field(default_factory=LiftSettings)
    proposals: ProposalSettings = field(default_factory=ProposalSettings)
    models: dict = field(default_factory=dict)  # checkpoints used, for provenance

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))


def find_meshes(root: str | Path) -> list[MeshItem]:
    """Objects under `root`: folders with a ``textured_objs/`` (PartNet-Mobility), else mesh files."""
    root = Path(root)
    if root.is_file():
        return [MeshItem(root.stem, root, "")]
    if not root.is_dir():
        raise InputError(f"{root}: no such mesh file or folder")
    items = []
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        folder = Path(dirpath)
        if "textured_objs" in dirnames:  # an object folder: all its meshes are one item
            dirnames.clear()
            parts = folder.relative_to(root).parts or (folder.name,)
            items.append(MeshItem("_".join(parts), folder, parts[0] if len(parts) > 1 else ""))
            continue
        dirnames.sort()
        files += [folder / f for f in filenames if Path(f).suffix.lower() in MESH_EXTENSIONS]
    for file in sorted(files):
        rel = file.relative_to(root).with_suffix("")
        items.append(MeshItem("_".join(rel.parts), file, rel.parts[0] if len(rel.parts) > 1 else ""))
    items.sort(key=lambda i: i.id)
    if not items:
        raise InputError(f"{root}: no meshes found ({', '.join(MESH_EXTENSIONS)} files, or object "
                         "folders with textured_objs/)")
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise InputError(f"{root}: two meshes map to the same id; rename one of them")
    return items


def shard(items: list[MeshItem], rank: int, world_size: int) -> list[MeshItem]:
    """The meshes of one rank: every world_size-th, starting at rank."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"rank must be in [0, world size), got rank {rank} of {world_size}")
    return items[rank::world_size]


def label_mesh(item: MeshItem, predictor, segmenter, settings: EngineSettings,
               progress: Callable[[str], None] | None = None) -> tuple[LabelledCloud, list[Proposal3D]]:
    """Render, fuse, segment every view with SAM and lift the proposals to 3D masks."""
    cmesh = load_colored_mesh(item.path)
    verts = np.asarray(cmesh.mesh.vertices)
    center = (verts.min(axis=0) + verts.max(axis=0)) / 2
    radius = float(np.linalg.norm(verts - center, axis=1).max())
    cameras = object_cameras(center, radius, settings.views, settings.image_size, fov_deg=settings.fov_deg)
    views = render_mesh(cmesh, cameras)
    cloud = fuse_views(views, settings.num_points, seed=settings.seed)
    predictor.set_point_cloud(cloud.xyz, cloud.rgb)
    segmenter.set_images(views.rgb)
    lifted = Lifter(predictor, cloud, segmenter, settings.lift, seed=settings.seed).run(progress)
    labelled = LabelledCloud(
        xyz=cloud.xyz, rgb=cloud.rgb, masks=[np.flatnonzero(p.mask) for p in lifted],
        names=[f"view{p.view}/proposal{p.proposal}" for p in lifted], category=item.category,
        source=f"pointsam engine pseudo labels of {item.path}", name=item.id,
    )
    return labelled, lifted


def _provenance_arrays(lifted: list[Proposal3D]) -> dict[str, np.ndarray]:
    return {"mask_view": np.array([p.view for p in lifted], np.int32),
            "mask_proposal": np.array([p.proposal for p in lifted], np.int32),
            "mask_iou": np.array([p.iou for p in lifted], np.float32),
            "mask_sam_score": np.array([p.sam_score for p in lifted], np.float32)}


class EngineOutput:
    """The output folder of an engine run: results, markers, settings and the dataset index."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.state = self.root / STATE
        self._pending: tuple[dict, bool] | None = None
        self._started = False

    def prepare(self, settings: dict, overwrite: bool = False, may_reset: bool = True) -> None:
        """Check that `root` can take this run (new, empty, or resumable); writes nothing yet.

        A resumed run must use the settings of the earlier one. The folder is created (and, with
        `overwrite`, an earlier run discarded) only by :meth:`start`, once the models are loaded.
        """
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{self.root} exists and is not a folder")
        is_engine = self.state.is_dir()
        if self.root.exists() and any(self.root.iterdir()) and not is_engine:
            raise InputError(f"{self.root} is a non-empty folder that is not a `pointsam engine` output; "
                             "refusing to write into it")
        if is_engine and overwrite and not may_reset:
            raise InputError("--overwrite with several ranks would race; delete the folder instead")
        if is_engine and not overwrite:
            self._check_settings(settings)
        self._pending = (settings, overwrite and is_engine)

    def start(self) -> None:
        """Create the folder (resetting an earlier run if `prepare` was told to overwrite) and record
        the settings, or check them against those of the run being resumed. Idempotent."""
        if self._started:
            return
        if self._pending is None:
            raise RuntimeError("call EngineOutput.prepare(settings) before starting the run")
        settings, reset = self._pending
        if reset:
            self._reset()
        (self.state / "done").mkdir(parents=True, exist_ok=True)
        (self.state / "failed").mkdir(exist_ok=True)
        path = self.state / "settings.json"
        with self.lock():
            if path.is_file():
                self._check_settings(settings)
            else:
                with atomic_output(path) as tmp:
                    tmp.write_text(json.dumps(settings, indent=1) + "\n")
        self._started = True

    def _check_settings(self, settings: dict) -> None:
        path = self.state / "settings.json"
        if not path.is_file():
            return
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise InputError(f"{self.root} was made with other settings ({', '.join(diff)} "
                             "differ); resume with the same options, use another --out, or "
                             "pass --overwrite to start again")

    def _reset(self) -> None:
        """Delete an earlier run's own files: its state, the clouds it recorded or indexed, its index."""
        owned = {r.get("file") for r in self.records("done")} | set(owned_files(self.root))
        for name in owned:
            if isinstance(name, str) and name and Path(name).name == name:  # the run writes flat names
                (self.root / name).unlink(missing_ok=True)
        shutil.rmtree(self.state)

    def lock(self):
        return _FileLock(self.state / "lock")

    def is_done(self, item: MeshItem) -> bool:
        return (self.state / "done" / f"{item.id}.json").is_file()

    def save(self, item: MeshItem, cloud: LabelledCloud, lifted: list[Proposal3D], seconds: float) -> None:
        """Write the cloud (if it has masks), then its done-marker, both atomically."""
        file = None
        if cloud.num_masks:
            file = f"{item.id}.npz"
            cloud.save(self.root / file, overwrite=True, extra=_provenance_arrays(lifted))
        record = {"id": item.id, "mesh": str(item.path), "file": file, "category": item.category,
                  "num_points": cloud.num_points, "num_masks": cloud.num_masks,
                  "seconds": round(seconds, 2), "masks": [p.provenance() for p in lifted]}
        with atomic_output(self.state / "done" / f"{item.id}.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")
        (self.state / "failed" / f"{item.id}.json").unlink(missing_ok=True)

    def fail(self, item: MeshItem, exc: BaseException) -> None:
        record = {"id": item.id, "mesh": str(item.path), "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
        with atomic_output(self.state / "failed" / f"{item.id}.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")

    def records(self, kind: str = "done") -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.state / kind).glob("*.json"))]

    def write_index(self, name: str) -> dict:
        """Rebuild ``dataset.json`` from the done-markers (under the lock, atomically)."""
        with self.lock():
            done = [r for r in self.records("done") if r["file"]]
            clouds = [{"file": r["file"], "category": r["category"], "num_points": r["num_points"],
                       "num_masks": r["num_masks"]} for r in done]
            source = ("pointsam engine: 2D SAM proposals lifted to 3D with Point-SAM "
                      f"(settings in {STATE}/settings.json, per-mask provenance in "
                      f"{STATE}/done/*.json and the mask_* arrays)")
            return write_index(self.root, clouds, name=name, source=source, licence=LICENCE)


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> _FileLock:
        self.fh = open(self.path, "a")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def dist_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's RANK / WORLD_SIZE environment (0, 1 without)."""
    from pointsam.utils.distributed import launch_env

    env = launch_env()
    return env.rank, env.world_size


def run_shard(items: list[MeshItem], output: EngineOutput, predictor, segmenter, settings: EngineSettings,
              show_progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Label every not-yet-done mesh of `items`; a failing mesh is logged and skipped."""
    from tqdm import tqdm

    output.start()
    todo = [i for i in items if not output.is_done(i)]
    stats = {"skipped_done": len(items) - len(todo), "done": 0, "failed": 0, "masks": 0}
    bar = tqdm(todo, unit="mesh", disable=not show_progress, dynamic_ncols=True)
    for item in bar:
        bar.set_description(item.id)
        start = time.perf_counter()
        try:
            cloud, lifted = label_mesh(item, predictor, segmenter, settings)
            output.save(item, cloud, lifted, time.perf_counter() - start)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # one bad mesh must not stop the run
            output.fail(item, exc)
            stats["failed"] += 1
            log(f"failed: {item.id} ({item.path}): {type(exc).__name__}: {exc}")
            continue
        stats["done"] += 1
        stats["masks"] += cloud.num_masks
        bar.set_postfix(masks=stats["masks"], failed=stats["failed"])
    return stats
