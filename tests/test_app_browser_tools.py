"""Hand tools in a real headless Chromium (Debian's package, driven by Playwright, as test_app_browser): a
lasso drawn around a known region selects exactly the points drawn inside it, a brush stroke removes exactly
the points within its radius, undo walks back through both; dataset mode labels a file with a class key, moves
to the next file and resumes there after a restart. Screenshots in tests/artifacts/annotate-*.png (look at
them)."""

from __future__ import annotations

import json
import shutil
import signal

import numpy as np
import pytest
from matplotlib.path import Path as PolyPath
from test_app_browser import (
    ARTIFACTS,
    SAMPLE,
    _need_browser,
    open_page,
    start_server,
    wait_state,
)

from pointsam.app.sidecar import decode_indices
from pointsam.checkpoint import save_model
from pointsam.io import read_point_cloud

from conftest import require, tiny_model


def pending_edits(sidecar, num_points: int) -> list[tuple[str, str, np.ndarray]]:
    doc = json.loads(sidecar.read_text())
    return [(e["tool"], e["edit"], decode_indices(e["points"], num_points))
            for e in doc["pending"] if isinstance(e, dict)]


@pytest.mark.slow
def test_lasso_and_brush_in_a_real_browser(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    cloud = read_point_cloud(require(SAMPLE))
    xyz = np.asarray(cloud.xyz, dtype=np.float64)
    ckpt = save_model(tiny_model(), tmp_path / "tiny.safetensors")
    sidecar = tmp_path / "tiko.pointsam.json"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    proc, url = start_server([str(SAMPLE), "--checkpoint", str(ckpt), "--labels", str(sidecar),
                              "--out-dir", str(tmp_path / "out")])
    try:
        with sync_playwright() as pw:
            ctx, page, errors = open_page(pw, tmp_path, url)
            state = wait_state(page, "true")
            assert state["display"]["count"] == cloud.num_points  # every point is drawn

            # lasso, every point inside (not only the visible ones): exactly the points drawn inside
            page.keyboard.press("l")
            page.evaluate("window.pointsam.setVisibleOnly(false)")
            box = page.locator("#canvas").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            lasso = [(cx - 130, cy - 90), (cx + 40, cy - 120), (cx + 140, cy + 10), (cx + 20, cy + 30),
                     (cx - 60, cy + 130), (cx - 150, cy + 40)]
            lasso = [(round(x), round(y)) for x, y in lasso]
            screen = page.evaluate("window.pointsam.screenPoints()")
            cloud_index = np.array(page.evaluate("window.pointsam.cloudIndices()"))
            drawn = np.array([s if s is not None else (np.nan, np.nan) for s in screen], dtype=np.float64)
            inside = PolyPath(np.array(lasso, dtype=np.float64)).contains_points(drawn)
            expected = np.sort(cloud_index[inside])
            assert 100 < expected.size < cloud.num_points - 100
            page.mouse.move(*lasso[0])
            page.mouse.down()
            for x, y in lasso[1:]:
                page.mouse.move(x, y, steps=1)
            page.screenshot(path=str(ARTIFACTS / "annotate-lasso-drawing.png"))
            page.mouse.up()
            state = wait_state(page, "window.pointsam.state.history.length == 1")
            assert state["mask_points"] == expected.size
            (tool, kind, points), = pending_edits(sidecar, cloud.num_points)
            assert (tool, kind) == ("lasso", "add") and np.array_equal(points, expected)
            page.screenshot(path=str(ARTIFACTS / "annotate-lasso.png"))

            # a zero-area lasso: a clear message, nothing sent
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx + 30, cy, steps=1)
            page.mouse.up()
            page.wait_for_function("document.getElementById('status').textContent.includes('zero area')")
            assert page.evaluate("window.pointsam.state.history.length") == 1

            # brush with Shift: removes exactly the points within its radius of the point under the cursor
            page.keyboard.press("r")
            page.evaluate("window.pointsam.setBrush(0.15)")
            inner = np.flatnonzero(inside)  # the selected point drawn nearest to a spot well inside the lasso
            target = cloud_index[inner[np.argmin(np.hypot(*(drawn[inner] - (cx - 50, cy)).T))]]
            pos = page.evaluate(f"window.pointsam.screenOf({int(target)})")
            picked = page.evaluate(f"window.pointsam.pick({pos['x']}, {pos['y']})")
            radius = 0.15 * state["display"]["radius"]
            sphere = np.flatnonzero(np.linalg.norm(xyz - xyz[picked], axis=1) <= radius)
            removed = np.intersect1d(expected, sphere)
            assert removed.size > 0
            page.keyboard.down("Shift")
            page.mouse.move(pos["x"], pos["y"])
            page.mouse.down()
            page.screenshot(path=str(ARTIFACTS / "annotate-brush-stroke.png"))  # the preview, in cyan
            page.mouse.up()
            page.keyboard.up("Shift")
            state = wait_state(page, "window.pointsam.state.history.length == 2")
            assert state["mask_points"] == expected.size - removed.size
            edits = pending_edits(sidecar, cloud.num_points)
            assert edits[1][:2] == ("brush", "remove") and np.array_equal(edits[1][2], sphere)
            page.screenshot(path=str(ARTIFACTS / "annotate-brush.png"))

            # one history: undo takes back the brush, then the lasso
            page.keyboard.press("Control+z")
            state = wait_state(page, "window.pointsam.state.history.length == 1")
            assert state["mask_points"] == expected.size
            page.keyboard.press("?")
            page.wait_for_selector("#help:not([hidden])")
            page.screenshot(path=str(ARTIFACTS / "annotate-help.png"))
            page.keyboard.press("Escape")
            page.keyboard.press("Control+z")
            state = wait_state(page, "window.pointsam.state.history.length == 0")
            assert state["mask_points"] == 0
            assert errors == []
            ctx.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_dataset_mode_in_a_real_browser(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("tiko_10000_points.ply", "sixaxis_10000_points.ply"):
        shutil.copy(require(SAMPLE.parent / name), folder / name)
    (folder / "broken.ply").write_bytes(b"ply\nnonsense\n")
    ckpt = save_model(tiny_model(), tmp_path / "tiny.safetensors")
    args = [str(folder), "--checkpoint", str(ckpt), "--classes", "scannet20"]
    ARTIFACTS.mkdir(exist_ok=True)
    proc, url = start_server(args)
    try:
        with sync_playwright() as pw:
            ctx, page, errors = open_page(pw, tmp_path, url, height=900)
            state = wait_state(page, "true")
            names = [f["name"] for f in state["dataset"]["files"]]
            assert names == ["broken.ply", "sixaxis_10000_points.ply", "tiko_10000_points.ply"]
            assert state["dataset"]["current"] == 1 and state["dataset"]["files"][0]["status"] == "unreadable"
            assert state["input"] == "sixaxis_10000_points.ply" and len(state["palette"]) == 20

            # a box around the middle, class "chair" by its key, accepted
            page.keyboard.press("b")
            box = page.locator("#canvas").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx - 80, cy - 60)
            page.mouse.down()
            page.mouse.move(cx + 80, cy + 60, steps=4)
            page.mouse.up()
            state = wait_state(page, "window.pointsam.state.mask_points > 0")
            page.keyboard.press("5")
            assert page.input_value("#class") == "chair"
            page.keyboard.press("Enter")
            state = wait_state(page, "window.pointsam.state.objects.length == 1")
            # ScanNet20 ids are those of segment20.npy: chair is 4
            assert state["objects"][0]["class"] == "chair" and state["objects"][0]["class_id"] == 4
            page.select_option("#color-by", "class")
            page.screenshot(path=str(ARTIFACTS / "annotate-dataset.png"))
            page.keyboard.press("i")  # only the unlabelled points: the chair disappears
            hidden = state["objects"][0]["num_points"]
            page.wait_for_function(f"document.getElementById('hidden-info').textContent.startsWith('{hidden:,}')")
            page.screenshot(path=str(ARTIFACTS / "annotate-isolate.png"))
            page.keyboard.press("i")
            page.wait_for_function("document.getElementById('hidden-info').textContent === ''")

            # two more objects, each class by its palette key: the README's screenshot (docs/)
            page.keyboard.press("b")
            for (x0, y0, x1, y1), key, cls in (((-260, -220, -140, -120), "3", "cabinet"),
                                               ((100, -60, 260, 100), "8", "door")):
                before = len(state["objects"])
                page.mouse.move(cx + x0, cy + y0)
                page.mouse.down()
                page.mouse.move(cx + x1, cy + y1, steps=4)
                page.mouse.up()
                wait_state(page, "window.pointsam.state.mask_points > 0")
                page.keyboard.press(key)
                assert page.input_value("#class") == cls
                page.keyboard.press("Enter")
                state = wait_state(page, f"window.pointsam.state.objects.length == {before + 1}")
            assert [(o["class"], o["class_id"]) for o in state["objects"]] == [("chair", 4), ("cabinet", 2),
                                                                                ("door", 7)]
            page.select_option("#color-by", "class")
            page.set_viewport_size({"width": 1200, "height": 1300})  # the palette below the tools too
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "annotate-dataset-labelled.png"))

            page.click("#next-file")
            state = wait_state(page, "window.pointsam.state.input == 'tiko_10000_points.ply'")
            statuses = [f["status"] for f in state["dataset"]["files"]]
            assert statuses == ["unreadable", "in progress", "untouched"]

            # restart: the server resumes at the file last open
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc, url = start_server(args)
            page.goto(url)
            state = wait_state(page, "true")
            assert state["input"] == "tiko_10000_points.ply" and state["dataset"]["current"] == 2
            page.click("#prev-file")
            state = wait_state(page, "window.pointsam.state.input == 'sixaxis_10000_points.ply'")
            assert [o["class"] for o in state["objects"]] == ["chair", "cabinet", "door"]

            assert (folder / "broken.ply").read_bytes() == b"ply\nnonsense\n"
            assert not (folder / "broken.ply.pointsam.json").exists()
            assert errors == []
            ctx.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_minimap_and_level_of_detail_in_a_real_browser(tmp_path):
    """A cloud bigger than --display-points: an overview with a minimap; a click on the minimap draws that
    place in full (the page fetches the new points), and a click on the cloud works on the new copy."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    cloud = read_point_cloud(require(SAMPLE))
    xyz = np.asarray(cloud.xyz, dtype=np.float64)
    ckpt = save_model(tiny_model(), tmp_path / "tiny.safetensors")
    ARTIFACTS.mkdir(exist_ok=True)
    proc, url = start_server([str(SAMPLE), "--checkpoint", str(ckpt), "--labels", str(tmp_path / "t.json"),
                              "--out-dir", str(tmp_path / "out"), "--display-points", "3000"])
    try:
        with sync_playwright() as pw:
            ctx, page, errors = open_page(pw, tmp_path, url)
            state = wait_state(page, "true")
            assert state["display"]["lod"] and state["display"]["count"] <= 3000
            page.wait_for_selector("#minimap:not([hidden])")
            assert "an overview" in page.locator("#file").text_content()
            # click the minimap where the cloud's point 0 lies (seen from above, z up)
            box = page.locator("#minimap").bounding_box()
            d = state["display"]
            page_xyz = xyz[0] - xyz[np.array(page.evaluate("window.pointsam.cloudIndices()"))].mean(axis=0)
            k = 0.5 * box["width"] / d["radius"]
            page.mouse.click(box["x"] + box["width"] / 2 + page_xyz[0] * k,
                             box["y"] + box["height"] / 2 - page_xyz[1] * k)
            state = wait_state(page, "window.pointsam.state.display.version == 1")
            focus = np.array(state["display"]["focus"]["center"])
            shown = np.array(page.evaluate("window.pointsam.cloudIndices()"))
            assert shown.size == state["display"]["count"]
            center = np.asarray(xyz[shown], np.float64).mean(axis=0)  # not the frame: only a sanity bound
            assert np.isfinite(center).all() and np.linalg.norm(focus) < 2 * d["radius"]
            # a click on the cloud works on the new display copy
            pos = page.evaluate(f"window.pointsam.screenOf({int(shown[len(shown) // 2])})")
            if pos is not None:
                page.mouse.click(pos["x"], pos["y"])
                state = wait_state(page, "window.pointsam.state.clicks.length == 1")
                assert len(state["candidates"]) == 3  # decoded (the tiny model's mask may be empty)
            page.screenshot(path=str(ARTIFACTS / "annotate-minimap.png"))
            assert errors == []
            ctx.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)
