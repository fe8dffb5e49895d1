"""The annotation web server: bundled static page + a small JSON/binary API over one session.

Standard library only (`ThreadingHTTPServer`). The security model (also in the README):

- it binds to 127.0.0.1 unless told otherwise; static files come from a fixed table built at start-up
  (no request path ever reaches the file system) and the only data served is the named cloud;
- every request must name this server in its Host header (loopback names, the bound address, the address
  the client connected to, the machine's host name: no DNS rebinding, whatever the bind address), a
  browser's Origin must be this same server (no cross-site requests), and every /api request must carry
  the per-launch token of the printed URL (`?token=...`; the page sends it as the X-PointSAM-Token header);
- request bodies are small flat JSON objects (64 KB, integers of at most 18 digits, no deep nesting);
  only a hand-tool selection (/api/edit) may be bigger (16 MB: a packed list of point indices);
- every refused or failed request closes its connection, as does any request whose body was not read, so
  an unread body can never be parsed as a second request;
- responses are built under the session lock and written outside it; sockets time out (30 s) and at most
  64 connections are served at once (more wait briefly, then get 503).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy as np

from pointsam.app.classes import save_class_map
from pointsam.app.display import DisplayCopy
from pointsam.app.export import export_session, planned_exports, session_class_map
from pointsam.app.session import AnnotationSession, OverlapError, SaveError
from pointsam.errors import PointSAMError
from pointsam.io import PointCloud

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".md": "text/plain; charset=utf-8",
                 "": "text/plain; charset=utf-8"}
MAX_BODY = 64 * 1024
MAX_EDIT_BODY = 16 * 1024 * 1024  # a selection of up to ~3M points as packed uint32 (base64)
MAX_INT_DIGITS = 18
DEFAULT_DISPLAY_POINTS = 1_000_000
MASK_BIT = 1 << 30
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
TOKEN_HEADER = "X-PointSAM-Token"
SOCKET_TIMEOUT = 30.0
MAX_CONNECTIONS = 64
SLOT_WAIT = 2.0  # seconds a new connection waits for a free slot before it gets 503
REQUEST_QUEUE_SIZE = 128


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
                 display_points: int = DEFAULT_DISPLAY_POINTS, up: str = "z",
                 model_name: str = "", classes_path: Path | None = None, workspace=None) -> None:
        self.lock = threading.Lock()
        self.workspace = workspace  # dataset mode (`pointsam.app.dataset.Workspace`), else None
        self.static = static_table()
        self.model_name = model_name
        self.classes_path = None if classes_path is None else Path(classes_path)
        self.display_points = display_points
        self.show(session, cloud, out_dir=out_dir, stem=stem, up=up)

    def show(self, session: AnnotationSession, cloud: PointCloud, *, out_dir: Path, stem: str,
             up: str = "z") -> None:
        """Serve this session and cloud (a new file of a dataset replaces the previous one)."""
        self.session = session
        self.cloud = cloud
        self.out_dir = Path(out_dir)
        self.stem = stem
        self.up = up
        self.last_decode_ms: float | None = None
        index = getattr(session.predictor, "spatial_index", None)  # local mode's KD-tree, reused
        self.display = DisplayCopy(cloud, self.display_points, up=up, index=index)

    # ----------------------------------------------------------------------------- answers

    def state(self) -> dict:
        """Session state plus what the page needs to draw it."""
        s = self.session.state()
        for click in s["clicks"]:
            pos = np.asarray(self.cloud.xyz[click["index"]], dtype=np.float64) - self.display.center
            click["position"] = [round(float(v), 6) for v in pos]
        s["input"] = self.session.input_name
        s["display"] = self.display.state()
        s["exports"] = [p.name for p in planned_exports(self.cloud, self.out_dir, self.stem).values()]
        s["out_dir"] = str(self.out_dir)
        s["last_decode_ms"] = self.last_decode_ms
        s["model"] = self.model_name
        s["classes_file"] = str(self.classes_file())
        if self.workspace is not None:
            ws = self.workspace
            s["dataset"] = {**ws.dataset.listing(),
                            "ready": [k for k in range(len(ws.dataset.files)) if ws.ready(k)]}
        return s

    def classes_file(self) -> Path:
        """Where "save class map" writes: the --classes file, else classes.json in the export folder."""
        return self.classes_path or self.out_dir / "classes.json"

    def view(self) -> bytes:
        """Per displayed point: object id (0 = none), plus MASK_BIT where the current mask is."""
        shown = self.display.index
        out = self.session.owner[shown].astype(np.int32)
        mask = self.session.current_mask()
        if mask is not None:
            out |= np.where(mask[shown], MASK_BIT, 0).astype(np.int32)
        return out.astype("<i4").tobytes()

    def binary(self, what: str) -> bytes:
        """The display copy: positions (float32 x3, centred), colours (uint8 x3), indices (uint32)."""
        d = self.display
        if what == "positions":
            return d.positions.astype("<f4").tobytes()
        if what == "colors":
            if d.colors is None:
                raise HTTPError(404, "this cloud has no colours")
            return d.colors.tobytes()
        if what == "intensity":
            if d.intensity is None:
                raise HTTPError(404, "this cloud has no intensity")
            return d.intensity.tobytes()
        if what == "indices":
            return d.index.astype("<u4").tobytes()
        raise HTTPError(404, f"no such cloud array: {what!r}")

    def post(self, route: str, body: dict) -> dict:
        """Run one POST action on the session and return the new state."""
        s = self.session
        if route == "/api/click":
            start = time.perf_counter()
            index = _field(body, "index", int)
            s.click(index, _field(body, "positive", bool, default=True))
            self.last_decode_ms = round(1000 * (time.perf_counter() - start), 1)
            point = np.asarray(self.cloud.xyz[index], dtype=np.float64)
            if not self.display.covers(point):  # a big scan: full resolution where the work is
                self.display.focus(point)
        elif route == "/api/focus":
            self.display.focus(self._focus_point(body))
        elif route == "/api/edit":
            s.edit(_selection(body), _field(body, "add", bool, default=True),
                   target=_field(body, "target", int, default=None),
                   tool=_field(body, "tool", str, default="select"))
        elif route == "/api/grow":
            radius = body.get("radius")
            if radius is not None and (isinstance(radius, bool) or not isinstance(radius, int | float)):
                raise HTTPError(400, f"field 'radius' must be a number, got {json.dumps(radius)[:40]}")
            s.grow(target=_field(body, "target", int, default=None), radius=radius,
                   shrink=_field(body, "shrink", bool, default=False))
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
        elif route.startswith("/api/dataset/"):
            return self._dataset_action(route, body)
        elif route == "/api/classes/save":
            path = self.classes_file()
            save_class_map(session_class_map(s), path)
            return {**self.state(), "saved_classes": str(path)}
        elif route == "/api/export":
            plan = export_session(s, self.cloud, self.out_dir, self.stem,
                                  overwrite=_field(body, "overwrite", bool, default=False))
            return {**self.state(), "exported": [str(p) for p in plan.values()]}
        else:
            raise HTTPError(404, f"no such action: {route}")
        return self.state()

    def _focus_point(self, body: dict) -> np.ndarray:
        """/api/focus: a cloud point {"index": i}, or the minimap's {"ground": [a, b]} (the page's centred
        coordinates along the two horizontal axes); the cloud coordinates to draw in full around."""
        if not self.display.is_lod:
            raise HTTPError(400, "every point is drawn already: there is no level of detail to move")
        if "index" in body:
            index = _field(body, "index", int)
            n = self.session.num_points
            if not 0 <= index < n:
                raise HTTPError(400, f"point index {index} is outside the cloud (0..{n - 1})")
            return np.asarray(self.cloud.xyz[index], dtype=np.float64)
        ground = body.get("ground")
        if (not isinstance(ground, list) or len(ground) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in ground)
                or not all(np.isfinite(ground))):
            raise HTTPError(400, "focus needs {'index': point} or {'ground': [a, b]} (two finite numbers)")
        return self.display.ground_point((float(ground[0]), float(ground[1])))

    def _dataset_action(self, route: str, body: dict) -> dict:
        """Dataset mode: open another file, mark the current one, export the whole folder."""
        ws = self.workspace
        if ws is None:
            raise HTTPError(404, "not in dataset mode: run pointsam annotate FOLDER")
        if route == "/api/dataset/open":
            index = ws.dataset.check_index(_field(body, "index", int))
            self.show(**ws.open(index))
        elif route == "/api/dataset/mark":
            ws.dataset.mark(ws.dataset.current, _field(body, "labelled", bool, default=True))
        elif route == "/api/dataset/export":
            result = ws.export(overwrite=_field(body, "overwrite", bool, default=False))
            return {**self.state(), "exported_all": result["summary"], "export_result": result}
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


def _selection(body: dict) -> list[int] | np.ndarray:
    """A tool's point indices: "indices" (a JSON list) or "packed" (base64 of little-endian uint32)."""
    if "packed" in body:
        packed = _field(body, "packed", str)
        try:
            raw = base64.b64decode(packed, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPError(400, "field 'packed' must be base64 of little-endian uint32 indices") from None
        if len(raw) % 4:
            raise HTTPError(400, f"field 'packed' holds {len(raw)} bytes, not a whole number of uint32")
        return np.frombuffer(raw, dtype="<u4").astype(np.int64)
    indices = _field(body, "indices", list)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise HTTPError(400, "field 'indices' must be a list of integer point indices")
    return indices


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise HTTPError(400, f"number {text[:12]}... in the JSON body has over {MAX_INT_DIGITS} digits")
    return int(text)


def parse_body(raw: bytes) -> dict:
    """A request body as a JSON object; `HTTPError` 400 with a clear message for anything else."""
    if not raw:
        return {}
    try:
        body = json.loads(raw.decode("utf-8"), parse_int=_bounded_int)
    except RecursionError:
        raise HTTPError(400, "malformed JSON body: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "the JSON body must be an object")
    return body


def split_host(value: str) -> tuple[str, int] | None:
    """A Host header or URL authority as (lower-case name, port; 80 when absent), None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[:end + 1], value[end + 1:]
    else:
        name, sep, rest = value.partition(":")
        rest = sep + rest
    if not name:
        return None
    if not rest:
        return name, 80
    digits = rest[1:]
    if rest[0] != ":" or not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        return None
    return name, int(digits)


def _bracket(address: str) -> str:
    address = address.lower().split("%")[0]  # no IPv6 zone index
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def host_names(host: str, extra: tuple[str, ...] | list[str] = ()) -> set[str]:
    """Names a Host header may give for a server bound to `host` (besides the address connected to)."""
    names = {"localhost", "127.0.0.1", "[::1]"}
    if host not in WILDCARD:
        names.add(_bracket(host))
    if host not in LOOPBACK and not host.startswith("127."):  # reachable from other machines
        hostname = socket.gethostname().lower()
        short = hostname.split(".")[0]
        names |= {hostname, short, f"{short}.local"}
    names |= {_bracket(h) for h in extra}
    names.discard("")
    return names


class Response(NamedTuple):
    """A complete answer: status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: dict | None = None


def _json_response(status: int, payload: dict) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), "application/json")


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the `AnnotateApp` bound as `self.server.app`."""

    server_version = "pointsam"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # even an answer to a garbled request line has a status line
    timeout = SOCKET_TIMEOUT  # per socket read/write: an idle or stalled client lets go of its thread

    @property
    def app(self) -> AnnotateApp:
        if self.server.app is None:
            raise HTTPError(503, "still loading the cloud and the model; reload in a moment")
        return self.server.app

    def log_message(self, format: str, *args) -> None:  # quiet: the terminal shows errors only
        pass

    # ------------------------------------------------------------------------- one request

    def _respond(self, action) -> None:
        """Check the request, run `action` (which returns a `Response`), write the answer."""
        self._body_read = False
        try:
            self._check_request()
            response = action()
        except Exception as exc:
            response = self._error_response(exc)
        self._write(response)

    def _error_response(self, exc: Exception) -> Response:
        if isinstance(exc, HTTPError):
            return _json_response(exc.status, {"error": str(exc), **exc.extra})
        if isinstance(exc, OverlapError):
            return self._error_response(
                HTTPError(409, str(exc), overlap={str(k): v for k, v in exc.overlaps.items()}))
        if isinstance(exc, FileExistsError):
            return self._error_response(HTTPError(409, str(exc), exists=True))
        if isinstance(exc, SaveError):
            return self._error_response(HTTPError(500, str(exc), not_saved=True))
        if isinstance(exc, PointSAMError | OSError):
            return self._error_response(HTTPError(400, str(exc)))
        traceback.print_exc(file=sys.stderr)  # answer the page, and leave the details in the terminal
        return self._error_response(HTTPError(500, f"internal error: {type(exc).__name__}: {exc}"))

    def _body_settled(self) -> bool:
        """True when nothing of this request's body is left unread on the connection."""
        if self._body_read:
            return True
        length = self.headers.get("Content-Length")
        return not self.headers.get("Transfer-Encoding") and (length is None or length.strip() == "0")

    def _write(self, response: Response) -> None:
        """Send the answer; refused requests and unread bodies close the connection (no smuggling)."""
        close = response.status >= 400 or not self._body_settled()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for key, value in (response.headers or {}).items():
                self.send_header(key, value)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:  # the client went away or stopped reading (timeout): drop it
            pass
        finally:
            if close:
                self.close_connection = True

    # ------------------------------------------------------------------------------ checks

    def _check_request(self) -> None:
        server = self.server
        hosts = self.headers.get_all("Host") or []
        host = hosts[0] if len(hosts) == 1 else ""
        if not server.host_allowed(host, self.connection.getsockname()[0]):
            raise HTTPError(403, f"unexpected Host header {host!r}: open the URL the server printed")
        origin = self.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme != "http" or split_host(parts.netloc) != split_host(host):
                raise HTTPError(403, f"cross-site request from {origin!r} refused")
        api = urlsplit(self.path).path.startswith("/api/")
        if api and not server.token_ok(self.headers.get(TOKEN_HEADER)):
            raise HTTPError(403, "missing or wrong access token: open the exact URL the server printed "
                            "(it ends in ?token=...)")

    def _read_json(self, limit: int = MAX_BODY) -> dict:
        if self.headers.get("Transfer-Encoding"):
            raise HTTPError(411, "send the body with a Content-Length, not chunked")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise HTTPError(411, "a Content-Length header is required")
        text = lengths[0].strip()
        if len(lengths) > 1 or not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise HTTPError(400, f"bad Content-Length {', '.join(lengths)[:40]!r}")
        size = int(text)
        if size > limit:
            raise HTTPError(413, f"request body of {size} bytes is over the {limit}-byte limit")
        try:
            raw = self.rfile.read(size) if size else b""
        except OSError:
            raise HTTPError(408, "the request body did not arrive in time") from None
        if len(raw) != size:
            raise HTTPError(400, f"request body ended after {len(raw)} of {size} bytes")
        self._body_read = True
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if raw and ctype != "application/json":
            raise HTTPError(415, f"send JSON (Content-Type: application/json), got {ctype or 'none'!r}")
        return parse_body(raw)

    # ----------------------------------------------------------------------------- methods

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._respond(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._respond(self._post)

    def _not_allowed(self) -> None:
        self._respond(self._refuse_method)

    def _refuse_method(self) -> Response:
        raise HTTPError(405, f"method {self.command} is not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _get(self) -> Response:
        path = urlsplit(self.path).path
        app = self.app
        if path in app.static:
            file = app.static[path]
            headers = {"Content-Security-Policy": CSP} if file.suffix == ".html" else None
            return Response(200, file.read_bytes(), CONTENT_TYPES[file.suffix], headers)
        if path.startswith("/api/cloud/"):  # changes only when a dataset moves to another file
            with app.lock:
                body = app.binary(path[len("/api/cloud/"):])
            return Response(200, body, "application/octet-stream")
        if path == "/api/state":
            with app.lock:  # built under the lock, written outside it: a slow reader blocks nobody
                return _json_response(200, app.state())
        if path == "/api/view":
            with app.lock:
                body, revision = app.view(), app.session.revision
            return Response(200, body, "application/octet-stream", {"X-Revision": str(revision)})
        raise HTTPError(404, f"not found: {path}")

    def _post(self) -> Response:
        route = urlsplit(self.path).path
        body = self._read_json(MAX_EDIT_BODY if route == "/api/edit" else MAX_BODY)
        if not route.startswith("/api/"):
            raise HTTPError(405 if route in self.app.static else 404, f"cannot POST to {route}")
        app = self.app
        with app.lock:
            return _json_response(200, app.post(route, body))


BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 54\r\n"
        b"Retry-After: 1\r\nConnection: close\r\n\r\n"
        b'{"error": "too many connections; retry in a moment"}\r\n')


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the app: bounded connections, Host names, the per-launch token."""

    daemon_threads = True
    block_on_close = False  # Ctrl+C never waits for a stalled client
    request_queue_size = REQUEST_QUEUE_SIZE

    def __init__(self, address: tuple[str, int], app: AnnotateApp | None, *, token: str | None = None,
                 allowed_hosts: tuple[str, ...] | list[str] = (),
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app  # None until loaded: requests get 503
        self.token = token or secrets.token_urlsafe(24)
        self.host_names = host_names(address[0], allowed_hosts)
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, Handler)

    def host_allowed(self, host: str, local_address: str) -> bool:
        """The Host header names this server: a known name, or the address the client connected to."""
        parsed = split_host(host)
        return parsed is not None and (parsed[0] in self.host_names or parsed[0] == _bracket(local_address))

    def token_ok(self, given: str | None) -> bool:
        """The request carries this launch's token (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                         self.token.encode("ascii"))

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(timeout=SLOT_WAIT):
            try:
                request.settimeout(1.0)
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def handle_error(self, request, client_address) -> None:
        """A client that went away is no error worth a traceback; anything else is printed."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def bind(app: AnnotateApp | None, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None,
         allowed_hosts: tuple[str, ...] | list[str] = ()) -> Server:
    """Bind a server for `app` on host:port (0 = any free port), with a fresh token unless one is given.

    Host/Origin checks hold for every bind address; `allowed_hosts` adds names (e.g. a DNS name of this
    machine) a Host header may use."""
    return Server((host, port), app, token=token, allowed_hosts=allowed_hosts)


def url_of(server: Server) -> str:
    """The address to open in a browser, with the access token."""
    host, port = server.server_address[:2]
    if server.address_family == socket.AF_INET6:
        host = "[::1]" if host == "::" else f"[{host}]"
    elif host == "0.0.0.0":
        host = "127.0.0.1"
    return f"http://{host}:{port}/?token={server.token}"
