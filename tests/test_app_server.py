"""The annotation web server: static files only from the package, JSON API, request safety, CLI errors."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import NamedTuple

import numpy as np
import pytest
from plyfile import PlyData

from pointsam.app.server import MASK_BIT, MAX_BODY, TOKEN_HEADER, AnnotateApp, bind, url_of
from pointsam.app.session import AnnotationSession
from pointsam.cli import main
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
A, B = 9999, 2500  # see test_app_session: A's best mask (1003 points) lies partly inside B's 3rd candidate



@pytest.fixture(scope="module")
def cloud():
    return read_point_cloud(require(SAMPLE))


@pytest.fixture(scope="module")
def predictor(cloud):
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(cloud.xyz, cloud.rgb)
    return p


class Served(NamedTuple):
    app: AnnotateApp
    port: int
    token: str


@pytest.fixture
def served(predictor, cloud, tmp_path):
    """A live server on a free loopback port (display copy: 4000 of the 10000 points)."""
    session = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "labels.json", input_name=SAMPLE.name)
    app = AnnotateApp(session, cloud, out_dir=tmp_path / "out", stem="tiko", display_points=4000)
    server = bind(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Served(app, server.server_address[1], server.token)
    server.shutdown()
    server.server_close()


def call(srv, method, path, body=None, headers=None, raw=None):
    """One request on a fresh connection, with the server's token unless `headers` replaces it."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs[TOKEN_HEADER] = srv.token
    hdrs.update(headers or {})
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    kind = resp.getheader("Content-Type", "")
    return resp.status, (json.loads(payload) if kind.startswith("application/json") else payload), resp


def test_static_files_only_from_the_package(served):
    srv = served
    status, page, resp = call(srv, "GET", "/")
    assert status == 200 and b'src="/static/app.js"' in page
    assert "default-src 'self'" in resp.getheader("Content-Security-Policy")
    for path in ("/static/app.js", "/static/vendor/three/three.module.js", "/static/vendor/three/LICENSE"):
        assert call(srv, "GET", path)[0] == 200, path
    assert b"https://" not in call(srv, "GET", "/static/app.js")[1]  # no CDN: everything is bundled
    for path in ("/static/../session.py", "/static/%2e%2e/session.py", "/static/..%2fserver.py",
                 "/static//etc/passwd", "/etc/passwd", "/api/cloud/../../session.py", "/static/app.js/..",
                 "/tiko_10000_points.ply"):
        status, body, _ = call(srv, "GET", path)
        assert status == 404 and b"import" not in json.dumps(body).encode(), path


def test_click_accept_export_over_the_api(served, cloud):
    srv = served
    app = srv.app
    status, state, _ = call(srv, "GET", "/api/state")
    count = state["display"]["count"]
    assert status == 200 and 1000 < count <= 4000 and state["num_points"] == 10_000
    assert state["display"]["lod"] and state["display"]["focus"] is None  # the overview until a click
    indices = np.frombuffer(call(srv, "GET", "/api/cloud/indices")[1], "<u4")
    positions = np.frombuffer(call(srv, "GET", "/api/cloud/positions")[1], "<f4").reshape(-1, 3)
    assert len(indices) == count and np.all(np.diff(indices.astype(np.int64)) > 0)
    np.testing.assert_allclose(positions, cloud.xyz[indices] - app.display.center, atol=1e-4)
    assert np.array_equal(np.frombuffer(call(srv, "GET", "/api/cloud/colors")[1], np.uint8).reshape(-1, 3),
                          cloud.rgb[indices])

    status, state, _ = call(srv, "POST", "/api/click", {"index": A, "positive": True})
    assert status == 200 and state["clicks"][0]["index"] == A and len(state["candidates"]) == 3
    # the click moved the full-resolution area onto it: the page fetches the drawn points again
    assert state["display"]["version"] == 1 and state["display"]["focus"] is not None
    indices = np.frombuffer(call(srv, "GET", "/api/cloud/indices")[1], "<u4").astype(np.int64)
    near = np.linalg.norm(cloud.xyz - cloud.xyz[A], axis=1) < 0.5 * state["display"]["focus"]["radius"]
    assert A in indices and np.isin(np.flatnonzero(near), indices).all()
    mask = app.session.current_mask()
    assert state["mask_points"] == int(mask.sum()) > 0
    view = np.frombuffer(call(srv, "GET", "/api/view")[1], "<i4")
    assert np.array_equal((view & MASK_BIT) != 0, mask[indices])
    status, state, _ = call(srv, "POST", "/api/accept", {"name": "seat", "class": "chair"})
    assert status == 200 and state["objects"][0]["num_points"] == int(mask.sum())  # every point counted
    view = np.frombuffer(call(srv, "GET", "/api/view")[1], "<i4")
    assert np.array_equal(view == 1, mask[indices])

    call(srv, "POST", "/api/click", {"index": B})
    status, state, _ = call(srv, "POST", "/api/candidate", {"index": 2})
    status, err, _ = call(srv, "POST", "/api/accept", {"name": "body"})
    assert status == 409 and err["overlap"] == {"1": int((mask & app.session.current_mask()).sum())}
    status, state, _ = call(srv, "POST", "/api/accept", {"name": "body", "overlap": "keep"})
    assert status == 200 and [o["id"] for o in state["objects"]] == [1, 2]
    status, state, _ = call(srv, "POST", "/api/object/update", {"id": 2, "class": "table"})
    assert [c["name"] for c in state["classes"]] == ["chair", "object", "table"]  # ids stay stable
    assert json.loads(app.session.path.read_text())["objects"][1]["class"] == "table"  # saved at once

    status, state, _ = call(srv, "POST", "/api/export", {})
    assert status == 200 and len(state["exported"]) == 7  # with .label, .labels.pcd and the class map
    ply = PlyData.read(str(app.out_dir / "tiko.labels.ply"))["vertex"]
    assert np.array_equal(ply["instance"], app.session.instance_labels())
    status, err, _ = call(srv, "POST", "/api/export", {})
    assert status == 409 and err["exists"] and "already exist" in err["error"]
    assert call(srv, "POST", "/api/export", {"overwrite": True})[0] == 200
    status, state, _ = call(srv, "POST", "/api/object/delete", {"id": 1})
    assert [o["id"] for o in state["objects"]] == [2]


def test_malformed_and_hostile_requests_get_clear_errors(served):
    srv = served
    cases = [
        (call(srv, "POST", "/api/click", raw=b"{bad json"), 400, "malformed JSON"),
        (call(srv, "POST", "/api/click", raw=b"[1, 2]"), 400, "must be an object"),
        (call(srv, "POST", "/api/click", {}), 400, "missing field 'index'"),
        (call(srv, "POST", "/api/click", {"index": "3"}), 400, "must be an integer"),
        (call(srv, "POST", "/api/click", {"index": 10**9}), 400, "outside the cloud"),
        (call(srv, "POST", "/api/click", {"index": 1, "positive": "yes"}), 400, "must be bool"),
        (call(srv, "POST", "/api/undo", {}), 400, "nothing to undo"),
        (call(srv, "POST", "/api/object/delete", {"id": 7}), 400, "no object with id 7"),
        (call(srv, "POST", "/api/nope", {}), 404, "no such action"),
        (call(srv, "POST", "/api/click", raw=b"{}", headers={"Content-Length": str(MAX_BODY + 1)}), 413,
         "over the"),
        (call(srv, "POST", "/api/click", raw=b"index=1", headers={"Content-Type": "text/plain"}), 415,
         "send JSON"),
        (call(srv, "PUT", "/api/click", {}), 405, "not allowed"),
        (call(srv, "GET", "/api/state", headers={"Host": "attacker.example:80"}), 403, "Host header"),
        (call(srv, "POST", "/api/clear", {}, headers={"Origin": "http://attacker.example"}), 403,
         "cross-site"),
        (call(srv, "POST", "/api/clear", {}, headers={TOKEN_HEADER: "guess"}), 403, "access token"),
        (call(srv, "GET", "/api/state", headers={TOKEN_HEADER: ""}), 403, "access token"),
    ]
    for (status, body, _), want_status, want_text in cases:
        assert status == want_status and want_text in body["error"], (body, want_status)
    assert call(srv, "POST", "/api/clear", {}, headers={"Origin": f"http://127.0.0.1:{srv.port}"})[0] == 200
    assert call(srv, "GET", "/", headers={TOKEN_HEADER: ""})[0] == 200  # the page itself needs no token


def test_binds_to_localhost_by_default_and_reports_a_busy_port(predictor, cloud, tmp_path, capsys):
    session = AnnotationSession(predictor, cloud.xyz, tmp_path / "s.json")
    app = AnnotateApp(session, cloud, out_dir=tmp_path, stem="t")
    server = bind(app)
    assert server.server_address[0] == "127.0.0.1"
    assert url_of(server) == f"http://127.0.0.1:{server.server_address[1]}/?token={server.token}"
    other = bind(None)
    other.server_close()
    assert len(server.token) >= 32 and other.token != server.token  # a fresh token per launch
    port = server.server_address[1]
    try:  # reported at once, before the slow loading
        code = main(["annotate", str(SAMPLE), "--labels", str(tmp_path / "x.json"), "--port", str(port),
                     "--no-browser"])
    finally:
        server.server_close()
    assert code == 2 and f"port {port} is in use" in capsys.readouterr().err
    with socket.socket() as probe:  # the port is free again once closed
        probe.bind(("127.0.0.1", port))


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["annotate", str(tmp_path / "missing.ply"), "--no-browser"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["annotate", str(require(SAMPLE)), "--port", "70000"]) == 2
    assert "--port must be in 0..65535" in capsys.readouterr().err
    folder = tmp_path / "dir.json"
    folder.mkdir()
    assert main(["annotate", str(SAMPLE), "--labels", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
