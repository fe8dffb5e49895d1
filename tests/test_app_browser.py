"""End to end in a real headless Chromium (Debian's package, driven by Playwright; nothing downloaded):
`pointsam annotate` on a shared example, click a known point, undo, accept two objects, kill and resume,
export. A screenshot is saved to tests/artifacts/annotate.png."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointsam.checkpoint import load_model, save_model
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, REPO, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
A, B = 1421, 6916  # two known points, both visible in the default view; their masks overlap a little


def _need_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium ({CHROMIUM}; apt-get install chromium chromium-driver)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (pip install -e '.[dev]')")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason + ": .ci/run installs both, so CI must run this test")
        pytest.skip(reason)



def start_server(args: list[str]) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "pointsam", "annotate", *args, "--port", "0", "--no-browser"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once the cloud is encoded and the port is open
    if "http://" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line}{proc.stderr.read()}")
    return proc, line.split("open ", 1)[1].split()[0]


def open_page(pw, tmp_path, url: str, height: int = 800):
    """Headless Chromium (a fresh profile under tmp_path, 1200 x `height`) on `url`: (context, page,
    page errors)."""
    ctx = pw.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
        headless=True, bypass_csp=True, viewport={"width": 1200, "height": height})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return ctx, page, errors


def mask_pixels(page) -> int:
    """Pixels of the 3D view drawn in the current-mask colour."""
    from matplotlib.image import imread

    box = page.locator("#canvas").bounding_box()
    png = page.screenshot(clip=box)
    r, g, b = np.moveaxis((imread(io.BytesIO(png))[:, :, :3] * 255).astype(int), 2, 0)
    # 0.25 * any colour + 0.75 * (255, 212, 0): R >= 191, 159 <= G <= 223, B <= 64
    return int(((r >= 185) & (g >= 150) & (g <= 230) & (b <= 70)).sum())


def wait_state(page, expr: str, timeout: float = 30_000):
    page.wait_for_function(f"window.pointsam && window.pointsam.ready && ({expr})", timeout=timeout)
    return page.evaluate("window.pointsam.state")


def click_point(page, index: int) -> dict:
    """Click where point `index` is drawn; returns the new state (non-empty mask: cycles if needed)."""
    page.evaluate("window.pointsam.idle()")
    before = page.evaluate("window.pointsam.state.clicks.length")
    pos = page.evaluate(f"window.pointsam.screenOf({index})")
    assert pos is not None, f"point {index} is not drawn"
    page.mouse.click(pos["x"], pos["y"])
    state = wait_state(page, f"window.pointsam.state.clicks.length == {before + 1}")
    for _ in range(3):  # the random test model may rank an empty candidate first
        if state["mask_points"]:
            break
        revision = state["revision"]
        page.click("#cycle")
        state = wait_state(page, f"window.pointsam.state.revision > {revision}")
    assert state["mask_points"] > 0
    return state


def expected_mask(predictor, index: int, selected: int) -> np.ndarray:
    masks, scores, _ = predictor.predict(point_indices=[index], multimask_output=True)
    return masks[np.argsort(-scores, kind="stable")[selected]]


def object_points(sidecar: Path) -> dict[int, np.ndarray]:
    from pointsam.app.sidecar import decode_indices

    doc = json.loads(sidecar.read_text())
    return {o["id"]: decode_indices(o["points"], doc["input"]["num_points"]) for o in doc["objects"]}


@pytest.mark.slow
def test_annotate_in_a_real_browser(tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    cloud = read_point_cloud(require(SAMPLE))
    ckpt = save_model(tiny_model(), tmp_path / "tiny.safetensors")
    predictor = PointCloudPredictor(load_model(ckpt, device="cpu"))
    predictor.set_point_cloud(cloud.xyz, cloud.rgb)
    sidecar = tmp_path / "tiko.pointsam.json"
    args = [str(SAMPLE), "--checkpoint", str(ckpt), "--labels", str(sidecar),
            "--out-dir", str(tmp_path / "out")]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    proc, url = start_server(args)
    try:
        with sync_playwright() as pw:
            ctx, page, errors = open_page(pw, tmp_path, url)
            wait_state(page, "true")
            plain = mask_pixels(page)

            # a click on a known point: the mask appears, and the click is saved at once
            state = click_point(page, A)
            hit = state["clicks"][0]["index"]
            assert hit == A  # the page picked the point under the cursor
            want = expected_mask(predictor, hit, state["selected"])
            assert state["mask_points"] == int(want.sum())
            assert mask_pixels(page) > plain + 50
            assert json.loads(sidecar.read_text())["pending"][0][:2] == [hit, 1]
            page.click("#undo")
            state = wait_state(page, "window.pointsam.state.clicks.length == 0")
            assert state["mask_points"] == 0 and not json.loads(sidecar.read_text())["pending"]
            assert mask_pixels(page) <= plain + 5

            # two objects
            state = click_point(page, A)
            first = expected_mask(predictor, state["clicks"][0]["index"], state["selected"])
            page.fill("#name", "first")
            page.fill("#class", "part")
            page.click("#accept")
            wait_state(page, "window.pointsam.state.objects.length == 1")
            assert np.array_equal(object_points(sidecar)[1], np.flatnonzero(first))
            state = click_point(page, B)
            assert state["clicks"][0]["index"] == B
            second = expected_mask(predictor, B, state["selected"])
            page.fill("#name", "second")
            page.click("#accept")
            if (second & first).any():  # the overlap is resolved explicitly
                page.wait_for_selector("#overlap:not([hidden])")
                page.click("#overlap-keep")
            state = wait_state(page, "window.pointsam.state.objects.length == 2")
            saved = object_points(sidecar)
            assert np.array_equal(saved[2], np.flatnonzero(second & ~first))
            assert page.locator("#objects li").count() == 2
            state = click_point(page, A)  # a pending, unaccepted click
            pending = state["clicks"]
            screenshot = ARTIFACTS / "annotate.png"
            page.screenshot(path=str(screenshot))
            print(f"\nscreenshot of the annotation page: {screenshot}")

            # kill the server; a new one resumes everything, the pending click included
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc, url = start_server(args)
            page.goto(url)
            state = wait_state(page, "window.pointsam.state.objects.length == 2")
            assert [(o["id"], o["name"]) for o in state["objects"]] == [(1, "first"), (2, "second")]
            assert [c["index"] for c in state["clicks"]] == [c["index"] for c in pending]
            assert all(np.array_equal(v, saved[k]) for k, v in object_points(sidecar).items())

            # export from the page
            page.click("#clear")
            wait_state(page, "window.pointsam.state.clicks.length == 0")
            page.click("#export")
            page.wait_for_function("document.getElementById('export-result').textContent.includes('wrote')")
            from plyfile import PlyData

            ply = PlyData.read(str(tmp_path / "out" / "tiko_10000_points.labels.ply"))["vertex"]
            instance = np.full(cloud.num_points, -1)
            for k, v in saved.items():
                instance[v] = k
            assert np.array_equal(ply["instance"], instance)
            assert errors == []
            ctx.close()
    finally:
        proc.kill()
        proc.wait(timeout=30)
