"""`pointsam annotate`: label objects of a cloud or mesh by clicking in the browser."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import threading
import time
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
                    ".txt .obj .glb ...)")
    an.add_argument("--labels", type=Path, help="annotation file (default: INPUT.pointsam.json beside "
                    "INPUT, or in the current folder when INPUT's folder is read-only)")
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


def _load(args: argparse.Namespace, sidecar: Path):
    """Read the cloud, load the model, encode once, open (or resume) the session: the app to serve."""
    from pointsam.app.export import export_stem
    from pointsam.app.server import AnnotateApp
    from pointsam.app.session import AnnotationSession
    from pointsam.io import read_point_cloud
    from pointsam.predictor import PointCloudPredictor

    t0 = time.perf_counter()
    cloud = read_point_cloud(args.input, mesh_samples=args.mesh_samples)
    _say(f"read {cloud.num_points:,} points from {args.input} in {time.perf_counter() - t0:.1f} s")
    model = load_model_from_args(args)
    predictor = PointCloudPredictor(model)
    t1 = time.perf_counter()
    predictor.set_point_cloud(cloud.xyz, cloud.rgb, progress=lambda m: _say(m + " ..."))
    _say(f"encoded once in {time.perf_counter() - t1:.1f} s; each click only decodes")
    session = AnnotationSession.open(predictor, cloud.xyz, sidecar, input_name=args.input.name)
    if session.objects or session.steps:
        _say(f"resumed {sidecar}: {len(session.objects)} object(s), {len(session.steps)} pending click(s)")
    else:
        _say(f"annotations will be saved to {sidecar}")
    up = args.up or ("y" if args.input.suffix.lower() in (".obj", ".glb", ".gltf") else "z")
    return AnnotateApp(session, cloud, out_dir=args.out_dir or sidecar.resolve().parent,
                       stem=export_stem(args.input), display_points=args.display_points, up=up)


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
    _say(f"stopped; every accepted change is in {sidecar}")
