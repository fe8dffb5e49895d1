"""`pointsam annotate`: label objects of a cloud or mesh by clicking in the browser."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import threading
import webbrowser
from pathlib import Path

from pointsam.cli_common import add_common_arguments, load_model_from_args

DEFAULT_PORT = 8765


def add_annotate_parser(sub: argparse._SubParsersAction) -> None:
    """Register the `annotate` subcommand."""
    an = sub.add_parser(
        "annotate",
        description="Serve a local, offline web page to label INPUT: click to segment, accept masks as "
        "named objects, export labels. Every change is saved to a sidecar file and resumed on reopening.",
    )
    an.add_argument("input", type=Path, help="point cloud or mesh (.ply .las .laz .pcd .npy .npz .xyz "
                    ".txt .obj .glb ...), or a FOLDER of them (dataset mode: file list, progress, resume)")
    an.add_argument("--labels", type=Path, help="annotation file (default: INPUT.pointsam.json beside "
                    "INPUT, or in the current folder when INPUT's folder is read-only); for a FOLDER, the "
                    "folder for its annotation files (default: beside each file)")
    an.add_argument("--classes", help="class map: a .json/.yaml file ({\"classes\": [{\"id\", \"name\", "
                    "\"color\", \"key\", \"stuff\", \"las\"}]}, see pointsam.io.classmap) or a preset: "
                    "scannet20 (ids 0..19), semantickitti, asprs")
    an.add_argument("--semantic", action="store_true", help="semantic-only labelling: one object per "
                    "class, no instances (default: instances; stuff classes of the class map have none)")
    an.add_argument("--out-dir", type=Path, help="folder for exports (default: the annotation file's)")
    an.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: "
                    "this computer only)")
    an.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT}, or a free one if taken; "
                    "0 = any free port)")
    an.add_argument("--display-points", type=int, default=1_000_000,
                    help="draw at most this many points (a random subset; labels always cover every "
                    "point; default 1000000)")
    an.add_argument("--up", choices=("z", "y"), help="up axis of the view (default: y for "
                    ".obj/.glb/.gltf meshes, else z)")
    an.add_argument("--mesh-samples", type=int, default=100_000,
                    help="points sampled from a mesh input (default 100000)")
    an.add_argument("--no-browser", action="store_true", help="do not open a browser")
    add_common_arguments(an, overwrite=False)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _can_open_browser() -> bool:
    """A graphical browser can be shown: macOS/Windows, or a Linux/BSD desktop session."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _bind(host: str, port: int | None):
    from pointsam.app.server import bind
    from pointsam.errors import PointSAMError

    try:
        return bind(None, host, DEFAULT_PORT if port is None else port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and port is None:
            return bind(None, host, 0)
        if exc.errno == errno.EADDRINUSE:
            raise PointSAMError(f"port {port} is in use; pass another --port (0 = any free port)") from exc
        raise PointSAMError(f"cannot listen on {host}:{port if port is not None else DEFAULT_PORT}: "
                            f"{exc.strerror or exc}") from exc


def _load(args: argparse.Namespace, sidecar: Path | None):
    """Load the model; read the cloud (or a dataset folder's file to resume at), encode once, open (or
    resume) the session: the app to serve."""
    from pointsam.app.classes import resolve_class_map
    from pointsam.app.dataset import Dataset, Workspace
    from pointsam.app.export import export_stem
    from pointsam.app.loader import default_up, open_for_annotation
    from pointsam.app.server import AnnotateApp

    class_map = None if args.classes is None else resolve_class_map(args.classes)
    classes_path = None if args.classes is None or not Path(args.classes).exists() else Path(args.classes)
    dataset = None if sidecar is not None else Dataset(args.input, args.labels)  # before the slow part
    model = load_model_from_args(args)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    model_name = f"{args.checkpoint.name if args.checkpoint else 'bundled default model'} ({params:.1f}M)"
    if sidecar is None:  # dataset mode
        ws = Workspace(dataset, model, mesh_samples=args.mesh_samples,
                       class_map=class_map, semantic=args.semantic, up=args.up, say=_say)
        if args.out_dir:
            ws.dataset.out_dir = args.out_dir
        shown = ws.dataset.open_first(ws.open)
        return AnnotateApp(**shown, display_points=args.display_points, model_name=model_name,
                           classes_path=classes_path, workspace=ws)
    session, cloud = open_for_annotation(model, args.input, sidecar, mesh_samples=args.mesh_samples,
                                         class_map=class_map, semantic=args.semantic, say=_say)
    return AnnotateApp(session, cloud, out_dir=args.out_dir or sidecar.resolve().parent,
                       stem=export_stem(args.input), display_points=args.display_points,
                       up=args.up or default_up(args.input), model_name=model_name, classes_path=classes_path)


def run_annotate(args: argparse.Namespace) -> None:
    """Run the `annotate` subcommand: load, encode once, resume the session, serve until Ctrl+C."""
    from pointsam.app.server import url_of
    from pointsam.app.sidecar import default_sidecar
    from pointsam.errors import PointSAMError

    if args.port is not None and not 0 <= args.port <= 65535:
        raise PointSAMError(f"--port must be in 0..65535, got {args.port}")
    if args.display_points < 1:
        raise PointSAMError(f"--display-points must be positive, got {args.display_points}")
    if not args.input.exists():
        raise PointSAMError(f"{args.input}: no such file")
    if args.input.is_dir():  # dataset mode: --labels is a folder of annotation files
        sidecar = None
    else:
        sidecar = args.labels or default_sidecar(args.input)
        if sidecar.is_dir():
            raise PointSAMError(f"--labels {sidecar} is a folder; give a file name")
    server = _bind(args.host, args.port)  # first: a busy port is reported before the slow loading
    try:
        server.app = _load(args, sidecar)
    except BaseException:
        server.server_close()
        raise
    url = url_of(server)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _say(f"warning: listening on {args.host}: anyone who can reach this address and has the printed "
             "URL (with its token) can view the cloud and edit the labels; the Host/Origin checks stay on. "
             "Prefer 127.0.0.1 and an SSH tunnel")
    print(f"pointsam annotate: open {url} in your browser (Ctrl+C to stop)", flush=True)
    if not args.no_browser and _can_open_browser():
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    where = sidecar or f"the annotation files of {args.input}"
    _say(f"stopped; every accepted change is in {where}")
