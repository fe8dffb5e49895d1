"""The page's hand-tool geometry (static/select.js) run under Node, checked against numpy/matplotlib on a real
cloud: projection, lasso point-in-polygon, box, visible-only depth test, 3D brush, zero-area refusals, the
packed index format the server reads. Skipped when `node` is not installed."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.path import Path as PolyPath

from pointsam.app.server import STATIC_DIR
from pointsam.io import read_point_cloud

from conftest import DATA, require

NODE = shutil.which("node")
SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
W, H = 900, 700


def run_node(tmp_path, script: str, data: dict) -> dict:
    if NODE is None:
        pytest.skip("node is not installed")
    shutil.copy(STATIC_DIR / "select.js", tmp_path / "select.mjs")
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "run.mjs").write_text(
        "import * as S from './select.mjs';\nimport { readFileSync } from 'node:fs';\n"
        "const data = JSON.parse(readFileSync(new URL('./data.json', import.meta.url)));\n"
        "const out = {};\n" + script + "\nconsole.log(JSON.stringify(out));\n")
    done = subprocess.run([NODE, str(tmp_path / "run.mjs")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def view_projection() -> np.ndarray:
    """A perspective camera looking at the origin from (2, -2, 1.5) (z up), as a row-major 4x4."""
    eye, up = np.array([2.0, -2.0, 1.5]), np.array([0.0, 0.0, 1.0])
    f = -eye / np.linalg.norm(eye)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = s, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    near, far, t = 0.01, 100.0, 1 / np.tan(np.radians(25))
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = t / (W / H), t
    proj[2, 2], proj[2, 3], proj[3, 2] = (far + near) / (near - far), 2 * far * near / (near - far), -1
    return proj @ view


@pytest.fixture(scope="module")
def points():
    xyz = np.asarray(read_point_cloud(require(SAMPLE)).xyz, dtype=np.float64)
    xyz = (xyz - xyz.mean(0)) / np.abs(xyz - xyz.mean(0)).max()
    return xyz.astype(np.float32)


def project(xyz: np.ndarray, m: np.ndarray) -> np.ndarray:
    clip = np.c_[xyz.astype(np.float64), np.ones(len(xyz))] @ m.T
    x, y, w = clip[:, 0] / clip[:, 3], clip[:, 1] / clip[:, 3], clip[:, 3]
    return np.c_[(x * 0.5 + 0.5) * W, (0.5 - y * 0.5) * H, w]


def test_lasso_box_and_brush_select_exactly_the_expected_points(points, tmp_path):
    m = view_projection()
    screen = project(points, m)
    lasso = [[300, 200], [620, 260], [560, 520], [420, 430], [330, 560]]  # not convex
    box = [350, 250, 600, 480]
    center, radius = points[1421].tolist(), 0.2
    indices = (np.arange(len(points)) * 7 + 3).tolist()  # a display -> cloud index map
    got = run_node(tmp_path, """
        const m = data.m; const pos = Float32Array.from(data.pos);
        const screen = S.projectPoints(pos, m, data.W, data.H);
        out.screen = Array.from(screen);
        out.lasso = S.selectPolygon(screen, data.lasso);
        out.box = S.selectBox(screen, ...data.box);
        out.brush = S.selectSphere(pos, data.center, data.radius);
        out.area = S.polygonArea([[0, 0], [4, 0], [4, 3], [0, 3]]);
        const twice = [...out.lasso].reverse().concat(out.lasso);  // unsorted, repeated: still exact
        out.packed = S.packIndices(S.toCloudIndices(twice, data.indices));
    """, {"m": m.T.flatten().tolist(), "pos": points.flatten().tolist(), "W": W, "H": H, "lasso": lasso,
          "box": box, "center": center, "radius": radius, "indices": indices})
    np.testing.assert_allclose(np.array(got["screen"]).reshape(-1, 3), screen, rtol=1e-4, atol=1e-2)
    want_lasso = np.flatnonzero(PolyPath(np.array(lasso)).contains_points(screen[:, :2]))
    assert 200 < want_lasso.size < 9000 and got["lasso"] == want_lasso.tolist()
    inside_box = ((screen[:, 0] >= box[0]) & (screen[:, 0] <= box[2]) & (screen[:, 1] >= box[1])
                  & (screen[:, 1] <= box[3]))
    assert got["box"] == np.flatnonzero(inside_box).tolist()
    near = np.linalg.norm(points.astype(np.float64) - np.array(center), axis=1) <= radius
    assert got["brush"] == np.flatnonzero(near).tolist() and 10 < near.sum() < 5000
    assert got["area"] == 12
    packed = np.frombuffer(base64.b64decode(got["packed"]), "<u4")  # what the server's /api/edit reads
    assert packed.tolist() == sorted(np.array(indices)[want_lasso].tolist())


def test_visible_only_keeps_the_front_surface(tmp_path):
    # two points on the same pixel at depths 1 and 3, a third alone; and one hidden, one behind the camera
    screen = [10, 10, 1.0, 10.5, 10.2, 3.0, 50, 50, 5.0, 60, 60, 1.0, None, None, None]
    got = run_node(tmp_path, """
        const screen = Float32Array.from(data.screen.map((v) => (v === null ? NaN : v)));
        out.visible = Array.from(S.visibleMask(screen, 100, 100, 4, 0.5));
        out.shown = Array.from(S.visibleMask(screen, 100, 100, 4, 0.5, Uint8Array.from([1, 1, 1, 0, 1])));
        out.lasso = S.selectPolygon(screen, [[0, 0], [99, 0], [99, 99], [0, 99]],
          { visible: S.visibleMask(screen, 100, 100, 4, 0.5) });
        out.all = S.selectPolygon(screen, [[0, 0], [99, 0], [99, 99], [0, 99]]);
    """, {"screen": screen})
    assert got["visible"] == [1, 0, 1, 1, 0] and got["shown"] == [1, 0, 1, 0, 0]
    assert got["lasso"] == [0, 2, 3] and got["all"] == [0, 1, 2, 3]


def test_a_lasso_or_box_without_area_is_refused_clearly(tmp_path):
    got = run_node(tmp_path, """
        const screen = Float32Array.from([5, 5, 1]);
        for (const [name, poly] of [['line', [[0, 0], [10, 10], [20, 20]]], ['two', [[0, 0], [9, 9]]],
                                    ['dot', [[3, 3], [3, 3], [3, 3], [3, 3]]]]) {
          try { S.selectPolygon(screen, poly); out[name] = 'selected'; } catch (e) { out[name] = e.message; }
        }
        try { S.selectBox(screen, 1, 1, 40, 1); out.box = 'selected'; } catch (e) { out.box = e.message; }
        out.tiny = S.selectPolygon(screen, [[4, 4], [7, 4], [7, 7], [4, 7]]);
    """, {})
    for name in ("line", "two", "dot"):
        assert got[name] == "the lasso has zero area: drag around the points to select them"
    assert got["box"] == "the box has zero area: drag a rectangle around the points"
    assert got["tiny"] == [0]
