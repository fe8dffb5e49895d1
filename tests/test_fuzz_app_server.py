"""Hostile and careless requests to the annotation server, over raw sockets to 127.0.0.1 (issue 13):
request smuggling behind a refused request, Host/Origin/token checks on every bind address, a client that
stops reading, bounded connections, oversized numbers and deep nesting, a sidecar that cannot be written,
and a bounded random fuzz of request bytes. Every loop is bounded and every socket has a short timeout."""

from __future__ import annotations

import json
import random
import socket
import threading
import time

import numpy as np
import pytest

from pointsam.app import server as server_module
from pointsam.app.server import TOKEN_HEADER, AnnotateApp, Handler, bind
from pointsam.app.session import AnnotationSession
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
A = 9999
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def cloud():
    return read_point_cloud(require(SAMPLE))


@pytest.fixture(scope="module")
def predictor(cloud):
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(cloud.xyz, cloud.rgb)
    return p


def serve(app, host="127.0.0.1"):
    server = bind(app, host, 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def live(predictor, cloud, tmp_path):
    """A served session holding one pending click (so a smuggled /api/clear would be visible)."""
    session = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "labels.json")
    session.click(A)
    app = AnnotateApp(session, cloud, out_dir=tmp_path / "out", stem="tiko", display_points=10_000)
    server = serve(app)
    yield server
    server.shutdown()
    server.server_close()


def request_bytes(method, path, port, body=b"", headers=None, token=None, length=True,
                  keep_alive=False) -> bytes:
    """One HTTP/1.1 request as bytes; `headers` entries win, a None value drops the header."""
    hdrs = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
    if not keep_alive:  # the server closes after answering, so `exchange` returns at once
        hdrs["Connection"] = "close"
    if token is not None:
        hdrs[TOKEN_HEADER] = token
    if length:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


def exchange(port, data: bytes, timeout=TIMEOUT, end=False) -> tuple[bytes, bool]:
    """Send `data` on a fresh connection (`end`: then shut our side); all read back, and whether the
    server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if end:
            sock.shutdown(socket.SHUT_WR)
        chunks, closed = [], False
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            closed = True
        except TimeoutError:
            pass
        return b"".join(chunks), closed


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def json_of(reply: bytes) -> dict:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])


def test_a_refused_request_never_smuggles_its_body_as_a_second_request(live):
    session = live.app.session
    port, token = live.server_address[1], live.token
    inner = request_bytes("POST", "/api/clear", port, b"{}", token=token)  # valid on its own
    chunked = b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n"

    def outer(method, path="/api/clear", body=inner, token=token, **kw):  # asks to be kept alive
        return request_bytes(method, path, port, body, token=token, keep_alive=True, **kw)

    refusals = {  # the outer request is refused (or its body left unread); its body is the inner one
        "foreign Origin": outer("POST", headers={"Origin": "http://attacker.example",
                                                 "Content-Type": "text/plain"}),
        "foreign Host": outer("POST", headers={"Host": "attacker.example"}),
        "no token": outer("POST", token=None),
        "PUT (405)": outer("PUT"),
        "OPTIONS preflight": outer("OPTIONS"),
        "POST to the page (405)": outer("POST", "/"),
        "chunked (411)": outer("POST", body=chunked, headers={"Transfer-Encoding": "chunked",
                                                               "Content-Length": None}),
        "no Content-Length (411)": outer("POST", length=False),
        "two Content-Lengths": outer("POST", headers={"Content-Length": "0\r\nContent-Length: 5"}),
        "too large (413)": outer("POST", headers={"Content-Length": str(10**9)}),
        "text/plain (415)": outer("POST", headers={"Content-Type": "text/plain"}),
        "GET with a body": outer("GET", "/api/state"),
        "HEAD with a body": outer("HEAD", "/"),
        "unknown method": outer("BREW"),
    }
    for name, data in refusals.items():
        revision = session.revision
        reply, closed = exchange(port, data)
        assert reply.count(b"HTTP/1.1 ") == 1, (name, reply[:300])  # one answer: the inner one never ran
        assert closed, name  # and the connection is closed behind the refusal
        assert len(session.steps) == 1 and session.revision == revision, name
    # the same inner request, sent on its own, does run: the test above could fail
    reply, _ = exchange(port, inner)
    assert status_of(reply) == 200 and not session.steps


def test_keep_alive_still_works_for_good_requests(live):
    port, token = live.server_address[1], live.token
    two = request_bytes("GET", "/api/state", port, token=token, keep_alive=True) * 2
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(two)
        data = b""
        deadline = time.monotonic() + TIMEOUT
        while data.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
            data += sock.recv(65536)
    assert data.count(b"HTTP/1.1 200") == 2


def test_wildcard_bind_keeps_host_origin_and_token_checks(predictor, cloud, tmp_path):
    session = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "labels.json")
    session.click(A)
    server = serve(AnnotateApp(session, cloud, out_dir=tmp_path, stem="t"), host="0.0.0.0")
    port, token = server.server_address[1], server.token
    try:
        foreign = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
        cases = [
            (request_bytes("POST", "/api/clear", port, b"{}", token=token, headers=foreign), 403,
             "Host header"),
            (request_bytes("POST", "/api/clear", port, b"{}", token=token,
                           headers={"Origin": "http://attacker.example"}), 403, "cross-site"),
            (request_bytes("POST", "/api/clear", port, b"{}", token=token,
                           headers={"Origin": "null"}), 403, "cross-site"),
            (request_bytes("POST", "/api/clear", port, b"{}"), 403, "access token"),
            (request_bytes("GET", "/api/state", port, token="x" * len(token)), 403, "access token"),
        ]
        for data, want_status, want_text in cases:
            reply, _ = exchange(port, data)
            assert status_of(reply) == want_status and want_text in json_of(reply)["error"], reply[:300]
        assert len(session.steps) == 1
        # this machine's own names and the address connected to are accepted, with the token
        hostname = socket.gethostname().lower()
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"{hostname}:{port}"):
            reply, _ = exchange(port, request_bytes("GET", "/api/state", port, token=token,
                                                    headers={"Host": host, "Origin": f"http://{host}"}))
            assert status_of(reply) == 200, (host, reply[:300])
        reply, _ = exchange(port, request_bytes("POST", "/api/clear", port, b"{}", token=token))
        assert status_of(reply) == 200 and not session.steps
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_stops_reading_blocks_nobody(live):
    port, token = live.server_address[1], live.token
    stalled = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:  # ~16 MB of /api/view answers asked for and never read: the server's writes to it block
        stalled.sendall(request_bytes("GET", "/api/view", port, token=token, keep_alive=True) * 400)
        time.sleep(0.5)
        start = time.monotonic()
        for data in (request_bytes("GET", "/api/state", port, token=token),
                     request_bytes("POST", "/api/click", port, b'{"index": 5}', token=token)):
            reply, _ = exchange(port, data, timeout=10)
            assert reply and status_of(reply) == 200, reply[:200]
        assert time.monotonic() - start < 10
    finally:
        stalled.close()


def test_connections_are_bounded_and_idle_ones_time_out(live, monkeypatch):
    monkeypatch.setattr(Handler, "timeout", 1.0)
    monkeypatch.setattr(server_module, "SLOT_WAIT", 0.2)
    live.slots = threading.BoundedSemaphore(3)
    port, token = live.server_address[1], live.token
    idle = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(3)]
    try:
        time.sleep(0.1)
        reply, closed = exchange(port, request_bytes("GET", "/api/state", port, token=token))
        assert status_of(reply) == 503 and closed and b"too many connections" in reply
        for sock in idle:  # each idle connection is dropped after the socket timeout
            sock.settimeout(3.0)
            assert sock.recv(100) == b""
        reply, _ = exchange(port, request_bytes("GET", "/api/state", port, token=token))
        assert status_of(reply) == 200
    finally:
        for sock in idle:
            sock.close()


def test_many_concurrent_clients_are_all_answered(live):
    port, token = live.server_address[1], live.token
    assert live.request_queue_size > 5
    data = request_bytes("GET", "/api/state", port, token=token)
    results = []

    def one():
        try:
            results.append(status_of(exchange(port, data, timeout=20)[0]))
        except OSError as exc:
            results.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 100


def test_big_numbers_deep_nesting_and_odd_json_get_a_clear_400(live):
    port, token = live.server_address[1], live.token
    cases = [
        (b'{"index": ' + b"9" * 5000 + b"}", "over 18 digits"),
        (b'{"index": -' + b"1" * 30 + b"}", "over 18 digits"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b'{"a": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, "nested too deeply"),
        (b'{"index": NaN}', "must be an integer"),
        (b'{"index": 1e999}', "must be an integer"),
        (b'{"index": 1.0}', "must be an integer"),
        (b'\xff\xfe{"index": 1}', "malformed JSON"),
        (b'{"index": 1} trailing', "malformed JSON"),
        (b'"just a string"', "must be an object"),
        (b'{"index": 10000}', "outside the cloud"),
        (b'{"index": 1, "positive": null, "positive": "x"}', "must be bool"),
    ]
    for body, text in cases:
        reply, closed = exchange(port, request_bytes("POST", "/api/click", port, body, token=token))
        assert status_of(reply) == 400 and text in json_of(reply)["error"], (body[:40], reply[:300])
        assert closed and b"Traceback" not in reply


def test_a_change_that_cannot_be_saved_is_refused_and_undone(predictor, cloud, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the sidecar's folder should be")  # no write can succeed, even as root
    session = AnnotationSession.open(predictor, cloud.xyz, blocker / "labels.json")
    server = serve(AnnotateApp(session, cloud, out_dir=tmp_path, stem="t"))
    port, token = server.server_address[1], server.token
    try:
        reply, _ = exchange(port, request_bytes("POST", "/api/click", port, b'{"index": 9999}', token=token))
        err = json_of(reply)
        assert status_of(reply) == 500 and err["not_saved"] and "could not save" in err["error"]
        assert "undone" in err["error"]
        reply, _ = exchange(port, request_bytes("GET", "/api/state", port, token=token))
        state = json_of(reply)
        assert state["clicks"] == [] and state["revision"] == 0 and session.current_mask() is None
    finally:
        server.shutdown()
        server.server_close()


def test_random_request_bytes_never_crash_the_server(live):
    """A bounded random fuzz: mutated requests get an answer (never a 500) or a closed connection."""
    port, token = live.server_address[1], live.token
    rng = random.Random(13)
    base = [request_bytes("POST", "/api/click", port, b'{"index": 5, "positive": true}', token=token,
                          keep_alive=True),
            request_bytes("POST", "/api/accept", port, b'{"name": "x", "overlap": "keep"}', token=token,
                          keep_alive=True),
            request_bytes("GET", "/api/view", port, token=token, keep_alive=True)]
    for _ in range(60):
        data = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 8)):
            kind, at = rng.random(), rng.randrange(len(data))
            if kind < 0.4:
                data[at] = rng.randrange(256)
            elif kind < 0.7:
                del data[at:at + rng.randint(1, 20)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        reply, _ = exchange(port, bytes(data), end=True)
        if reply:
            assert reply.startswith(b"HTTP/1.") and status_of(reply) != 500, reply[:300]
    reply, _ = exchange(port, request_bytes("GET", "/api/state", port, token=token))
    assert status_of(reply) == 200
    view = live.app.view()
    assert np.frombuffer(view, "<i4").size == 10_000
