"""The annotation web server: bundled static page + a small JSON/binary API over one session.

Standard library only (`ThreadingHTTPServer`). Safety: only the package's own static files and the named
cloud are served (static files come from a fixed table built at start-up, so no request path ever reaches
the file system); request bodies are small JSON objects (size-limited); the Host header must name the
server when it binds to a loopback address (no DNS rebinding) and cross-site POSTs are refused.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from pointsam.app.export import export_session, planned_exports
from pointsam.app.session import AnnotationSession, OverlapError
from pointsam.errors import PointSAMError
from pointsam.io import PointCloud
from pointsam.io.pointcloud import rgb_to_uint8

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".md": "text/plain; charset=utf-8",
                 "": "text/plain; charset=utf-8"}
MAX_BODY = 64 * 1024
DEFAULT_DISPLAY_POINTS = 1_000_000
MASK_BIT = 1 << 30
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HTTPError(Exception):
    """An error answered to the client as JSON {"error": message, ...} with an HTTP status."""

    def __init__(self, status: int, message: str, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def static_table(root: Path = STATIC_DIR) -> dict[str, Path]:
    """URL path -> file for every servable file of the bundled front end."""
    table = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in CONTENT_TYPES and not path.name.startswith("."):
            table["/static/" + path.relative_to(root).as_posix()] = path
    table["/"] = root / "index.html"
    return table


class AnnotateApp:
    """Everything a request handler needs: the session, the display copy of the cloud, the exports."""

    def __init__(self, session: AnnotationSession, cloud: PointCloud, *, out_dir: Path, stem: str,
                 display_points: int = DEFAULT_DISPLAY_POINTS, up: str = "z", seed: int = 0) -> None:
        self.session = session
        self.cloud = cloud
        self.out_dir = Path(out_dir)
        self.stem = stem
        self.up = up
        self.lock = threading.Lock()
        self.static = static_table()
        self.last_decode_ms: float | None = None
        n = session.num_points
        if display_points < n:  # show a random subset; labels are still computed for every point
            rng = np.random.default_rng(seed)
            index = np.sort(rng.choice(n, size=display_points, replace=False))
        else:
            index = np.arange(n)
        self.display_index = index.astype(np.uint32)
        shown = np.asarray(cloud.xyz[index], dtype=np.float64)
        self.center = shown.mean(axis=0)
        self.positions = np.ascontiguousarray(shown - self.center, dtype=np.float32)
        self.radius = float(np.sqrt((self.positions.astype(np.float64) ** 2).sum(axis=1).max()))
        self.colors = None if cloud.rgb is None else np.ascontiguousarray(rgb_to_uint8(cloud.rgb[index]))

    # ----------------------------------------------------------------------------- answers

    def state(self) -> dict:
        """Session state plus what the page needs to draw it."""
        s = self.session.state()
        for click in s["clicks"]:
            pos = np.asarray(self.cloud.xyz[click["index"]], dtype=np.float64) - self.center
            click["position"] = [round(float(v), 6) for v in pos]
        s["input"] = self.session.input_name
        s["display"] = {"count": int(self.display_index.size), "total": self.session.num_points,
                        "has_color": self.colors is not None, "radius": self.radius, "up": self.up}
        s["exports"] = [p.name for p in planned_exports(self.cloud, self.out_dir, self.stem).values()]
        s["out_dir"] = str(self.out_dir)
        s["last_decode_ms"] = self.last_decode_ms
        return s

    def view(self) -> bytes:
        """Per displayed point: object id (0 = none), plus MASK_BIT where the current mask is."""
        out = self.session.owner[self.display_index].astype(np.int32)
        mask = self.session.current_mask()
        if mask is not None:
            out |= np.where(mask[self.display_index], MASK_BIT, 0).astype(np.int32)
        return out.astype("<i4").tobytes()

    def binary(self, what: str) -> bytes:
        """The display copy: positions (float32 x3, centred), colours (uint8 x3), indices (uint32)."""
        if what == "positions":
            return self.positions.astype("<f4").tobytes()
        if what == "colors":
            if self.colors is None:
                raise HTTPError(404, "this cloud has no colours")
            return self.colors.tobytes()
        if what == "indices":
            return self.display_index.astype("<u4").tobytes()
        raise HTTPError(404, f"no such cloud array: {what!r}")

    def post(self, route: str, body: dict) -> dict:
        """Run one POST action on the session and return the new state."""
        s = self.session
        if route == "/api/click":
            start = time.perf_counter()
            s.click(_field(body, "index", int), _field(body, "positive", bool, default=True))
            self.last_decode_ms = round(1000 * (time.perf_counter() - start), 1)
        elif route == "/api/undo":
            s.undo()
        elif route == "/api/redo":
            s.redo()
        elif route == "/api/clear":
            s.clear()
        elif route == "/api/cycle":
            s.cycle()
        elif route == "/api/candidate":
            s.select_candidate(_field(body, "index", int))
        elif route == "/api/accept":
            s.accept(_field(body, "name", str, default=None), _field(body, "class", str, default=None),
                     _field(body, "overlap", str, default=None))
        elif route == "/api/object/update":
            s.update_object(_field(body, "id", int), _field(body, "name", str, default=None),
                            _field(body, "class", str, default=None))
        elif route == "/api/object/delete":
            s.delete_object(_field(body, "id", int))
        elif route == "/api/export":
            plan = export_session(s, self.cloud, self.out_dir, self.stem,
                                  overwrite=_field(body, "overwrite", bool, default=False))
            return {**self.state(), "exported": [str(p) for p in plan.values()]}
        else:
            raise HTTPError(404, f"no such action: {route}")
        return self.state()


def _field(body: dict, key: str, kind: type, default=...):
    if key not in body or body[key] is None:
        if default is ...:
            raise HTTPError(400, f"missing field {key!r}")
        return default
    value = body[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise HTTPError(400, f"field {key!r} must be an integer, got {json.dumps(value)[:40]}")
    if not isinstance(value, kind):
        raise HTTPError(400, f"field {key!r} must be {kind.__name__}, got {json.dumps(value)[:40]}")
    return value


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the `AnnotateApp` bound as `self.server.app`."""

    server_version = "pointsam"
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> AnnotateApp:
        if self.server.app is None:
            raise HTTPError(503, "still loading the cloud and the model; reload in a moment")
        return self.server.app

    def log_message(self, format: str, *args) -> None:  # quiet: the terminal shows errors only
        pass

    # ------------------------------------------------------------------------------ sending

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def _error(self, exc: HTTPError) -> None:
        if exc.status == 413:
            self.close_connection = True  # the unread body must not be parsed as a request
        self._json(exc.status, {"error": str(exc), **exc.extra})

    # ------------------------------------------------------------------------------ checks

    def _check_origin(self) -> None:
        allowed = self.server.allowed_hosts
        if allowed is None:
            return
        host = self.headers.get("Host", "")
        if host not in allowed:
            raise HTTPError(403, f"unexpected Host header {host!r}: open the URL the server printed")
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc not in allowed:
            raise HTTPError(403, f"cross-site request from {origin!r} refused")

    def _read_json(self) -> dict:
        if self.headers.get("Transfer-Encoding"):
            raise HTTPError(411, "send the body with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None:
            raise HTTPError(411, "a Content-Length header is required")
        try:
            size = int(length)
        except ValueError:
            raise HTTPError(400, f"bad Content-Length {length!r}") from None
        if size < 0 or size > MAX_BODY:
            raise HTTPError(413, f"request body of {size} bytes is over the {MAX_BODY}-byte limit")
        raw = self.rfile.read(size) if size else b""
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if raw and ctype != "application/json":
            raise HTTPError(415, f"send JSON (Content-Type: application/json), got {ctype or 'none'!r}")
        if not raw:
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(400, f"malformed JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the JSON body must be an object")
        return body

    # ----------------------------------------------------------------------------- methods

    def _guard(self, action) -> None:
        try:
            self._check_origin()
            action()
        except HTTPError as exc:
            self._error(exc)
        except OverlapError as exc:
            self._error(HTTPError(409, str(exc), overlap={str(k): v for k, v in exc.overlaps.items()}))
        except FileExistsError as exc:
            self._error(HTTPError(409, str(exc), exists=True))
        except (PointSAMError, OSError) as exc:
            self._error(HTTPError(400, str(exc)))
        except Exception as exc:  # answer the page, and leave the details in the terminal
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPError(500, f"internal error: {type(exc).__name__}: {exc}"))

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._guard(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guard(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guard(self._post)

    def _not_allowed(self) -> None:
        self._error(HTTPError(405, f"method {self.command} is not allowed"))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _get(self) -> None:
        path = urlsplit(self.path).path
        app = self.app
        if path in app.static:
            file = app.static[path]
            headers = {"Content-Security-Policy": CSP} if file.suffix == ".html" else None
            self._send(200, file.read_bytes(), CONTENT_TYPES[file.suffix], headers)
            return
        if path.startswith("/api/cloud/"):
            self._send(200, app.binary(path[len("/api/cloud/"):]), "application/octet-stream")
            return
        with app.lock:
            if path == "/api/state":
                self._json(200, app.state())
            elif path == "/api/view":
                self._send(200, app.view(), "application/octet-stream",
                           {"X-Revision": str(app.session.revision)})
            else:
                raise HTTPError(404, f"not found: {path}")

    def _post(self) -> None:
        route = urlsplit(self.path).path
        body = self._read_json()
        if not route.startswith("/api/"):
            raise HTTPError(405 if route in self.app.static else 404, f"cannot POST to {route}")
        with self.app.lock:
            self._json(200, self.app.post(route, body))


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the app; IPv6 when the host is an IPv6 address."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: AnnotateApp | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app  # None until loaded: requests get 503
        self.allowed_hosts: set[str] | None = None
        super().__init__(address, Handler)


def bind(app: AnnotateApp | None, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Bind a server for `app` on host:port (0 = any free port); loopback hosts get Host-header checks."""
    server = Server((host, port), app)
    real_port = server.server_address[1]
    if host in LOOPBACK or host.startswith("127."):
        names = {host, "localhost", "127.0.0.1", "[::1]"}
        names = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
        server.allowed_hosts = {f"{n}:{real_port}" for n in names}
    return server


def url_of(server: Server) -> str:
    """The address to open in a browser."""
    host, port = server.server_address[:2]
    if server.address_family == socket.AF_INET6:
        host = f"[{host}]"
    elif host == "0.0.0.0":
        host = "127.0.0.1"
    return f"http://{host}:{port}/"
