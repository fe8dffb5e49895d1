"""Dataset mode of `pointsam annotate FOLDER`: the file list and its statuses, unreadable files listed and
skipped (never written), a sidecar from another file refused, resuming where one stopped, next file over the
API, one export for the whole folder, and the CLI's loading of a folder."""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import threading
import time

import numpy as np
import pytest

from pointsam.app.command import _load, add_annotate_parser
from pointsam.app.dataset import PROGRESS_FILE, Dataset, Workspace, scan_folder
from pointsam.app.server import TOKEN_HEADER, AnnotateApp, bind
from pointsam.checkpoint import save_model
from pointsam.errors import FileFormatError, InputError
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLES = DATA / "samples"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "scans"
    (root / "sub").mkdir(parents=True)
    shutil.copy(require(SAMPLES / "tiko_10000_points.ply"), root / "a.ply")
    shutil.copy(require(SAMPLES / "sixaxis_10000_points.ply"), root / "sub" / "b.ply")
    (root / "bad.ply").write_bytes(b"ply\nformat nonsense\n")
    (root / "notes.txt").write_text("not a point cloud\n")
    (root / ".hidden.ply").write_bytes(b"x")
    (root / "a.labels.ply").write_bytes(b"an export of pointsam")
    (root / "readme.md").write_text("# scans")
    return root


def accept_some(session, indices):
    session.edit(indices, tool="lasso")
    return session.accept(None, "part")


def test_the_file_list_leaves_out_hidden_files_and_outputs(folder):
    assert [f.name for f in scan_folder(folder)] == ["a.ply", "bad.ply", "notes.txt", "sub/b.ply"]
    ds = Dataset(folder)
    assert ds.labels_dir == folder and ds.sidecar(3) == folder / "sub" / "b.ply.pointsam.json"
    assert [f["status"] for f in ds.listing()["files"]] == ["untouched"] * 4
    empty = folder / "sub" / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no point clouds or meshes found"):
        Dataset(empty)
    with pytest.raises(InputError, match="not a folder"):
        Dataset(folder / "a.ply")


def test_open_mark_skip_resume_and_export(folder, model, tmp_path):
    ws = Workspace(Dataset(folder), model)
    shown = ws.dataset.open_first(ws.open)
    assert ws.dataset.current == 0 and shown["stem"] == "a" and shown["up"] == "z"
    session = shown["session"]
    obj = accept_some(session, np.arange(100, 300))
    assert ws.dataset.status(0) == "in progress"
    ws.dataset.mark(0, True)
    assert ws.dataset.status(0) == "labelled"

    bad = (folder / "bad.ply").read_bytes()
    with pytest.raises(FileFormatError):
        ws.open(1)
    assert ws.dataset.status(1) == "unreadable" and ws.dataset.listing()["files"][1]["error"]
    assert (folder / "bad.ply").read_bytes() == bad and not (folder / "bad.ply.pointsam.json").exists()
    assert ws.dataset.current == 0  # still on the file that opened

    # a sidecar that belongs to another file: refused, listed, left as it is
    stray = folder / "sub" / "b.ply.pointsam.json"
    shutil.copy(session.path, stray)
    before = stray.read_bytes()
    with pytest.raises(FileFormatError, match="belongs to another cloud"):
        ws.open(3)
    assert ws.dataset.status(3) == "unreadable" and stray.read_bytes() == before
    stray.unlink()
    ws.dataset.files[3].error = ""
    shown = ws.open(3)
    accept_some(shown["session"], np.arange(10))
    assert shown["out_dir"] == folder / "pointsam-exports" / "sub"

    # restart: resumes at the file last open, statuses from the sidecars and the progress file
    again = Dataset(folder)
    assert again.current == 3 and [again.status(k) for k in range(4)] == [
        "labelled", "untouched", "untouched", "in progress"]
    assert json.loads((folder / PROGRESS_FILE).read_text())["labelled"] == ["a.ply"]

    result = Workspace(again, model).export()
    assert result["exported"] == ["a.ply", "sub/b.ply"] and not result["failed"]
    out = folder / "pointsam-exports"
    instance = np.load(out / "a.instance.npy")
    assert np.array_equal(np.flatnonzero(instance == obj.id), np.arange(100, 300))
    assert (out / "sub" / "b.classes.json").exists() and (out / "sub" / "b.labels.ply").exists()
    result = Workspace(again, model).export()  # nothing is overwritten without asking
    assert not result["exported"] and "already exist" in result["failed"][0]["error"]
    assert "2 not exported" in result["summary"]
    names = [f.name for f in Dataset(folder).files]  # the exports are never listed as inputs
    assert names == ["a.ply", "bad.ply", "notes.txt", "sub/b.ply"]


def test_a_damaged_progress_file_is_a_clear_error(folder):
    (folder / PROGRESS_FILE).write_text("{nope")
    with pytest.raises(FileFormatError, match="damaged dataset progress file"):
        Dataset(folder)


def test_dataset_over_the_api(folder, model):
    ws = Workspace(Dataset(folder), model)
    app = AnnotateApp(**ws.dataset.open_first(ws.open), workspace=ws)
    server = bind(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def post(path, body):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json",
                                                     TOKEN_HEADER: server.token})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        conn.close()
        return resp.status, data

    try:
        status, state = post("/api/edit", {"indices": list(range(50))})
        status, state = post("/api/accept", {"name": "x"})
        assert state["dataset"]["files"][0]["status"] == "in progress" and state["input"] == "a.ply"
        status, state = post("/api/dataset/mark", {"labelled": True})
        assert state["dataset"]["files"][0]["status"] == "labelled"
        status, err = post("/api/dataset/open", {"index": 2})
        assert status == 400 and "notes.txt" in err["error"]
        status, state = post("/api/dataset/open", {"index": 3})
        assert status == 200 and state["input"] == "b.ply" and state["dataset"]["current"] == 3
        assert state["dataset"]["files"][2]["status"] == "unreadable" and not state["objects"]
        status, err = post("/api/dataset/open", {"index": 9})
        assert status == 400 and "no file 9" in err["error"]
        status, state = post("/api/dataset/export", {})
        assert status == 200 and state["exported_all"].startswith("exported 1 file(s)")
    finally:
        server.shutdown()
        server.server_close()


def test_the_cli_loads_a_folder_with_a_class_map_preset(folder, model, tmp_path):
    ckpt = save_model(model, tmp_path / "tiny.safetensors")
    parser = argparse.ArgumentParser()
    add_annotate_parser(parser.add_subparsers())
    args = parser.parse_args(["annotate", str(folder), "--checkpoint", str(ckpt), "--device", "cpu",
                              "--classes", "scannet20", "--labels", str(tmp_path / "labels")])
    app = _load(args, None)
    assert app.workspace.dataset.labels_dir == tmp_path / "labels"
    assert app.session.path == tmp_path / "labels" / "a.ply.pointsam.json"
    state = app.state()
    assert state["model"].startswith("tiny.safetensors") and len(state["palette"]) == 20
    assert state["dataset"]["current"] == 0


def test_the_next_file_is_encoded_in_the_background(folder, model):
    (folder / "bad.ply").unlink()
    (folder / "notes.txt").unlink()
    said = []
    ws = Workspace(Dataset(folder), model, say=said.append)
    first = ws.dataset.open_first(ws.open)
    assert first["stem"] == "a"
    for _ in range(600):  # the next file is read and encoded while this one is labelled
        if ws.ready(1):
            break
        time.sleep(0.1)
    assert ws.ready(1)
    assert sum(m.startswith("encoded b.ply") for m in said) == 1
    shown = ws.open(1)
    assert sum(m.startswith("encoded b.ply") for m in said) == 1  # not encoded again
    step = shown["session"].click(5)
    fresh = PointCloudPredictor(model)
    fresh.set_point_cloud(shown["cloud"].xyz, shown["cloud"].rgb)
    _, scores, logits = fresh.predict(point_indices=[5])
    np.testing.assert_allclose(step.logits, logits[np.argsort(-scores, kind="stable")], atol=1e-5)
    assert not ws.ready(2) and not ws._ahead  # nothing after the last file


def test_cli_errors_of_dataset_mode_and_class_maps(folder, tmp_path, capsys):
    from pointsam.cli import main

    bad = tmp_path / "classes.json"
    bad.write_text(json.dumps({"classes": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}))
    for args, message in (
            (["--classes", "nuscenes"], "--classes nuscenes: no such file, and not a preset"),
            (["--classes", str(bad)], "class id 1 is used twice"),
            (["--labels", str(folder / "a.ply")], "is a file; in dataset mode give a folder")):
        assert main(["annotate", str(folder), "--port", "0", "--no-browser", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pointsam: error:") and message in err, err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["annotate", str(empty), "--port", "0", "--no-browser", "--classes", "asprs"]) == 2
    assert "no point clouds or meshes found" in capsys.readouterr().err
