"""Hand tools of the annotation session (no browser): exact index edits of the mask and of objects (lasso,
box, brush selections arrive as point indices), grow/shrink by neighbours, one undo history with the clicks,
persistence of edits, refusals that change nothing; and the same over the HTTP API."""

from __future__ import annotations

import base64
import http.client
import json
import threading

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from pointsam.app import session as session_module
from pointsam.app.server import MAX_BODY, TOKEN_HEADER, AnnotateApp, bind
from pointsam.app.session import MAX_EDITS, AnnotationSession, SaveError
from pointsam.errors import FileFormatError, InputError
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
A, B = 9999, 2500  # see test_app_session


@pytest.fixture(scope="module")
def cloud():
    return read_point_cloud(require(SAMPLE))


@pytest.fixture(scope="module")
def predictor(cloud):
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(cloud.xyz, cloud.rgb)
    return p


@pytest.fixture
def session(predictor, cloud, tmp_path):
    return AnnotationSession.open(predictor, cloud.xyz, tmp_path / "labels.json", input_name=SAMPLE.name)


def nonempty_click(s: AnnotationSession, index: int, positive: bool = True) -> np.ndarray:
    """Click and cycle until the chosen candidate is not empty; the model's mask."""
    s.click(index, positive)
    for _ in range(6):
        if s.current_mask().any():
            break
        s.cycle()
    return s.current_mask().copy()


def box(cloud, lo, hi) -> np.ndarray:
    """Indices of the points inside an axis-aligned box (a known region, like a page's box selection)."""
    xyz = np.asarray(cloud.xyz)
    return np.flatnonzero(np.all((xyz >= lo) & (xyz <= hi), axis=1))


@pytest.fixture(scope="module")
def regions(cloud):
    xyz = np.asarray(cloud.xyz)
    mid = np.median(xyz, axis=0)
    left = box(cloud, xyz.min(0), [mid[0], np.inf, np.inf])
    core = np.flatnonzero(np.linalg.norm(xyz - xyz[A], axis=1) < 0.05 * np.ptp(xyz, axis=0).max())
    assert 100 < left.size < 9900 and 5 < core.size < 2000
    return left, core


def test_a_selection_alone_makes_an_exact_mask_and_undo_redo_walks_it_back(session, regions):
    left, core = regions
    assert session.current_mask() is None
    assert session.edit(left, add=True, tool="lasso") == left.size
    assert np.array_equal(np.flatnonzero(session.current_mask()), left)
    removed = np.intersect1d(left, core)
    assert session.edit(core, add=False, tool="brush") == removed.size  # only points in the mask change
    assert np.array_equal(np.flatnonzero(session.current_mask()), np.setdiff1d(left, core))
    assert session.state()["history"] == [f"lasso: add {left.size} points (mask)",
                                          f"brush: remove {core.size} points (mask)"]
    session.undo()
    assert np.array_equal(np.flatnonzero(session.current_mask()), left)
    session.undo()
    assert session.current_mask() is None and not session.state()["can_undo"]
    session.redo()
    session.redo()
    assert np.array_equal(np.flatnonzero(session.current_mask()), np.setdiff1d(left, core))


def test_clicks_and_hand_edits_share_one_history(session, regions, predictor):
    left, core = regions
    model_a = nonempty_click(session, A)
    session.edit(left, add=True, tool="box")
    expected = model_a.copy()
    expected[left] = True
    assert np.array_equal(session.current_mask(), expected)
    model_ab = session.click(B, positive=False)  # a refinement: the model's part changes, the edit stays
    base = model_ab.logits[model_ab.selected] > 0
    after_click = base.copy()
    after_click[left] = True
    assert np.array_equal(session.current_mask(), after_click)
    session.edit(core, add=False, tool="brush")
    final = after_click.copy()
    final[core] = False
    assert np.array_equal(session.current_mask(), final)
    assert [c.index for c in session.clicks] == [A, B]

    session.undo()  # the brush
    assert np.array_equal(session.current_mask(), after_click)
    session.undo()  # the click on B
    assert np.array_equal(session.current_mask(), expected) and [c.index for c in session.clicks] == [A]
    session.undo()  # the box
    assert np.array_equal(session.current_mask(), model_a)
    session.redo()
    session.redo()
    session.redo()
    assert np.array_equal(session.current_mask(), final)
    session.cycle()  # another candidate of the latest click: the edits still apply on top
    step = session._click_steps()[-1]
    again = step.logits[step.selected] > 0
    again[left] = True
    again[core] = False
    assert np.array_equal(session.current_mask(), again)

    obj = session.accept("left part", "part")
    assert np.array_equal(obj.indices, np.flatnonzero(again))
    assert session.current_mask() is None  # the clicks and edits of the mask leave the history
    described = f"accept object #{obj.id} (left part, part, {obj.indices.size} points)"
    assert session.state()["history"] == [described]


def test_edits_are_saved_and_resumed_exactly(session, regions, predictor, cloud):
    left, core = regions
    nonempty_click(session, A)
    session.edit(left, add=True, tool="lasso")
    session.edit(core, add=False, tool="brush")
    session.click(B, positive=False)
    doc = json.loads(session.path.read_text())
    kinds = [type(e).__name__ for e in doc["pending"]]
    assert kinds == ["list", "dict", "dict", "list"]
    assert doc["pending"][1]["edit"] == "add" and doc["pending"][2]["tool"] == "brush"
    again = AnnotationSession.open(predictor, cloud.xyz, session.path)
    assert np.array_equal(again.current_mask(), session.current_mask())
    assert again.state()["history"] == session.state()["history"]
    again.undo()
    again.undo()  # the brush edit, replayed from the file, is undone like any other
    expected = session._click_steps()[0]
    mask = expected.logits[expected.selected] > 0
    mask[left] = True
    assert np.array_equal(again.current_mask(), mask)


def test_a_damaged_saved_edit_is_a_clear_error(session, regions, predictor, cloud):
    session.edit(regions[0], add=True, tool="lasso")
    doc = json.loads(session.path.read_text())
    for bad, message in (({**doc["pending"][0], "edit": "paint"}, "must be add or remove"),
                         ({**doc["pending"][0], "tool": "magic"}, "must be add or remove"),
                         ({**doc["pending"][0], "points": "!!"}, "undecodable point set"),
                         ({"edit": "add"}, "points")):
        session.path.write_text(json.dumps({**doc, "pending": [bad]}))
        with pytest.raises(FileFormatError, match=message):
            AnnotationSession.open(predictor, cloud.xyz, session.path)
    session.path.write_text(json.dumps({**doc, "pending": doc["pending"] * (MAX_EDITS + 1)}))
    with pytest.raises(FileFormatError, match=f"{MAX_EDITS + 1} pending hand edits"):
        AnnotationSession.open(predictor, cloud.xyz, session.path)


def test_editing_accepted_objects_moves_exact_points_and_undoes_exactly(session, regions):
    left, core = regions
    session.edit(left, tool="lasso")
    first = session.accept("left", "part")
    session.edit(core, tool="brush")
    second = session.accept("core", "part", overlap="keep")  # core minus left
    assert np.array_equal(second.indices, np.setdiff1d(core, left))
    owner_before = session.owner.copy()

    taken = np.intersect1d(core, left)
    assert session.edit(core, add=True, target=second.id, tool="brush") == taken.size  # from object 1
    assert np.array_equal(session.objects[second.id].indices, core)
    assert np.array_equal(session.objects[first.id].indices, np.setdiff1d(left, core))
    saved = json.loads(session.path.read_text())
    assert [o["num_points"] for o in saved["objects"]] == [left.size - taken.size, core.size]
    assert session.state()["history"][-1] == f"brush: add {taken.size} points (object #{second.id})"

    some = core[::2]
    assert session.edit(some, add=False, target=second.id, tool="lasso") == some.size
    assert np.array_equal(session.objects[second.id].indices, np.setdiff1d(core, some))
    assert (session.owner[some] == 0).all()

    session.undo()
    session.undo()
    assert np.array_equal(session.owner, owner_before)
    assert np.array_equal(session.objects[first.id].indices, first.indices)
    session.redo()
    assert np.array_equal(session.objects[second.id].indices, core)
    with pytest.raises(InputError, match="no object with id 99"):
        session.edit(core, target=99)
    session.delete_object(first.id)  # undoable too; the object edits before it stay in the history
    assert session.state()["history"][-1].startswith(f"delete object #{first.id} (left, part")
    session.undo()
    assert np.array_equal(session.objects[first.id].indices, np.setdiff1d(left, core))
    session.undo()  # the brush edit made before the delete: `left` whole again
    assert np.array_equal(session.objects[first.id].indices, np.sort(left))


def test_accept_and_delete_are_undoable_across_accepts_and_saved_at_once(session, regions):
    left, core = regions
    session.edit(left, tool="lasso")
    first = session.accept("left", "part")
    assert session.state()["history"] == [f"accept object #{first.id} (left, part, {left.size} points)"]
    session.edit(core, tool="brush")
    second = session.accept("core", "other", overlap="replace")  # takes core's points from `left`
    taken = np.intersect1d(core, left)
    assert np.array_equal(session.objects[first.id].indices, np.setdiff1d(left, core))
    session.edit(left[:5], add=False, target=first.id, tool="brush")  # an object edit after both accepts

    session.undo()  # the object edit
    session.undo()  # the second accept: objects as before it, its mask is the current mask again
    assert list(session.objects) == [first.id] and np.array_equal(session.objects[first.id].indices, left)
    assert np.array_equal(np.flatnonzero(session.current_mask()), np.sort(core))
    saved = json.loads(session.path.read_text())
    assert [o["id"] for o in saved["objects"]] == [first.id] and saved["next_id"] == second.id
    assert len(saved["pending"]) == 1  # the mask, saved as one exact edit
    session.redo()  # accepted again, exactly
    assert np.array_equal(session.objects[second.id].indices, core)
    assert np.array_equal(session.objects[first.id].indices, np.setdiff1d(left, taken))
    assert session.current_mask() is None and session.objects[second.id].label == "other"

    session.delete_object(second.id)
    assert second.id not in session.objects and (session.owner[core] == 0).all()
    session.undo()
    assert np.array_equal(session.objects[second.id].indices, core)
    assert session.objects[second.id].name == "core"
    owners = session.owner.copy()
    for _ in range(3):  # accept #2, its mask, accept #1: nothing labelled, the first mask is back
        session.undo()
    assert not session.objects and (session.owner == 0).all()
    assert np.array_equal(np.flatnonzero(session.current_mask()), np.sort(left))
    for _ in range(3):
        session.redo()
    assert np.array_equal(session.owner, owners) and session.current_mask() is None
    again = AnnotationSession.open(session.predictor, session.xyz, session.path)  # what was saved
    assert np.array_equal(again.owner, owners)


def test_the_object_history_keeps_the_newest_entries(session, regions, monkeypatch):
    import pointsam.app.session as module

    monkeypatch.setattr(module, "MAX_OBJECT_HISTORY", 3)
    left, core = regions
    for k in range(5):
        session.edit(core[k::5], tool="brush")
        session.accept(f"o{k}", "part")
    assert len(session.state()["history"]) == 3
    for _ in range(6):  # each accept, then the mask it gives back
        session.undo()
    assert sorted(session.objects) == [1, 2] and not session.state()["can_undo"]


def test_grow_and_shrink_by_neighbours_are_exact(session, regions, cloud):
    _, core = regions
    xyz = np.asarray(cloud.xyz, dtype=np.float64)
    session.edit(core, tool="brush")
    radius = session.neighbour_radius()
    assert radius > 0
    dist = cdist(xyz, xyz[core]).min(axis=1)
    grown = np.flatnonzero(dist <= radius)
    assert session.grow() == grown.size - core.size > 0
    assert np.array_equal(np.flatnonzero(session.current_mask()), grown)
    outside = np.setdiff1d(np.arange(len(xyz)), grown)
    edge = cdist(xyz[grown], xyz[outside]).min(axis=1) <= 2 * radius
    assert session.grow(shrink=True, radius=2 * radius) == int(edge.sum())
    assert np.array_equal(np.flatnonzero(session.current_mask()), grown[~edge])
    assert session.state()["history"][-2:] == [f"grow: add {grown.size - core.size} points (mask)",
                                               f"shrink: remove {int(edge.sum())} points (mask)"]
    session.undo()
    session.undo()
    assert np.array_equal(np.flatnonzero(session.current_mask()), core)

    obj = session.accept("core", "part")  # an object grows over unlabelled points only
    session.edit(grown[~np.isin(grown, core)][:3], tool="brush")
    other = session.accept("bit", "part")
    session.grow(target=obj.id)
    assert np.array_equal(session.objects[obj.id].indices, np.setdiff1d(grown, other.indices))
    assert np.array_equal(session.objects[other.id].indices, other.indices)
    with pytest.raises(InputError, match="radius must be a positive number"):
        session.grow(radius=-1.0)
    with pytest.raises(InputError, match="no point lies within"):
        session.grow(target=obj.id, radius=1e-9)


def test_bad_selections_are_refused_and_change_nothing(session, regions):
    session.edit(regions[1], tool="brush")
    before = (session.path.read_text(), session.state())
    cases = [([], "nothing selected.*a lasso needs an area"),
             ([1, 2, 2], "point index 2 is selected twice"),
             ([5, 10_000], "point index 10000 is outside the cloud"),
             ([-1], "point index -1 is outside"),
             ([1.5], "integer point indices"), ([True], "integer point indices"),
             ([[1, 2]], "flat list"), (["7"], "integer point indices"),
             (np.arange(10_001) % 10_000, "at most 10000 points")]
    for indices, message in cases:
        with pytest.raises(InputError, match=message):
            session.edit(indices)
    with pytest.raises(InputError, match="tool must be one of"):
        session.edit([1], tool="wand")
    with pytest.raises(InputError, match="add must be true or false"):
        session.edit([1], add="yes")
    assert (session.path.read_text(), session.state()) == before
    empty = AnnotationSession(session.predictor, session.xyz, session.path.with_name("other.json"))
    with pytest.raises(InputError, match="the mask is empty: nothing to grow"):
        empty.grow()


def test_a_failed_save_undoes_every_tool(session, regions, monkeypatch):
    left, core = regions
    session.edit(left, tool="lasso")
    obj = session.accept("left", "part")
    session.edit(core, tool="brush")
    before = (json.dumps(session.state()), session.owner.copy(), session.path.read_text())

    def disk_full(path, document):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session_module, "write_sidecar", disk_full)
    for change in (lambda: session.edit(core[:5], add=False), lambda: session.edit(core, target=obj.id),
                   lambda: session.edit(left, add=False, target=obj.id), session.grow,
                   lambda: session.grow(shrink=True), lambda: session.grow(target=obj.id), session.undo):
        with pytest.raises(SaveError, match="undone"):
            change()
        assert (json.dumps(session.state()), session.path.read_text()) == (before[0], before[2])
        assert np.array_equal(session.owner, before[1])


# ------------------------------------------------------------------------------------------ over HTTP


@pytest.fixture
def served(predictor, cloud, tmp_path):
    session = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "labels.json", input_name=SAMPLE.name)
    app = AnnotateApp(session, cloud, out_dir=tmp_path / "out", stem="tiko")
    server = bind(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield app, server.server_address[1], server.token
    server.shutdown()
    server.server_close()


def post(srv, path, body=None, raw=None):
    app, port, token = srv
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body=raw if raw is not None else json.dumps(body).encode(),
                 headers={"Content-Type": "application/json", TOKEN_HEADER: token})
    resp = conn.getresponse()
    data = json.loads(resp.read())
    conn.close()
    return resp.status, data


def packed(indices) -> str:
    return base64.b64encode(np.asarray(indices, "<u4").tobytes()).decode()


def test_hand_tools_over_the_api(served, regions):
    app = served[0]
    left, core = regions
    status, state = post(served, "/api/edit", {"packed": packed(left[::-1]), "add": True, "tool": "lasso"})
    assert status == 200 and state["mask_points"] == left.size
    assert state["history"] == [f"lasso: add {left.size} points (mask)"]
    status, state = post(served, "/api/edit", {"indices": core.tolist(), "add": False, "tool": "brush"})
    assert status == 200 and np.array_equal(np.flatnonzero(app.session.current_mask()),
                                            np.setdiff1d(left, core))
    status, state = post(served, "/api/grow", {"radius": 1e6})
    assert status == 200 and state["mask_points"] == 10_000
    status, state = post(served, "/api/undo", {})
    assert state["mask_points"] == np.setdiff1d(left, core).size
    status, state = post(served, "/api/accept", {"name": "left", "class": "part"})
    oid = state["objects"][0]["id"]
    status, state = post(served, "/api/edit", {"indices": core.tolist(), "target": oid, "tool": "brush"})
    assert status == 200 and state["objects"][0]["num_points"] == np.union1d(left, core).size
    status, state = post(served, "/api/grow", {"target": oid, "shrink": True})
    assert status == 200 and state["history"][-1].startswith("shrink: remove")

    big = np.arange(10_000)  # a selection bigger than the usual 64 KB body limit is fine here
    raw = json.dumps({"indices": big.tolist(), "add": False, "target": oid}, indent=1).encode()
    status, state = post(served, "/api/edit", raw=raw)
    assert status == 200 and len(raw) > MAX_BODY
    assert state["objects"][0]["num_points"] == 0


@pytest.mark.parametrize("body, message", [
    ({"indices": []}, "nothing selected"),
    ({"indices": [3, 3]}, "selected twice"),
    ({"indices": [10**6]}, "outside the cloud"),
    ({"indices": [1, "2"]}, "list of integer point indices"),
    ({"indices": "1,2"}, "must be list"),
    ({"packed": "%%%"}, "base64"),
    ({"packed": base64.b64encode(b"abc").decode()}, "not a whole number of uint32"),
    ({"indices": [1], "target": 5}, "no object with id 5"),
    ({"indices": [1], "tool": "wand"}, "tool must be one of"),
    ({"indices": [1], "add": 1}, "'add' must be bool"),
])
def test_bad_selections_over_the_api(served, body, message):
    status, data = post(served, "/api/edit", body)
    assert status == 400 and message in data["error"], data
    assert served[0].session.current_mask() is None


def test_grow_needs_a_number_and_other_routes_keep_the_small_body_limit(served):
    status, data = post(served, "/api/grow", {"radius": "big"})
    assert status == 400 and "'radius' must be a number" in data["error"]
    status, data = post(served, "/api/grow", {})
    assert status == 400 and "the mask is empty" in data["error"]
    status, data = post(served, "/api/click", raw=b" " * (MAX_BODY + 1))
    assert status == 413


def test_class_map_saved_from_the_page(served, tmp_path):
    app = served[0]
    post(served, "/api/edit", {"indices": [1, 2, 3]})
    status, state = post(served, "/api/accept", {"class": "chair"})
    status, state = post(served, "/api/classes/save", {})
    assert status == 200 and state["saved_classes"] == str(app.out_dir / "classes.json")
    saved = json.loads((app.out_dir / "classes.json").read_text())["classes"]
    assert [(c["id"], c["name"]) for c in saved] == [(1, "chair")]
    assert state["classes"] == [{"id": 1, "name": "chair", "color": saved[0]["color"]}]
    assert state["palette"] is None and state["mode"] == "instance" and state["model"] == ""


def test_intensity_is_served_as_grey_levels_when_present(predictor, tmp_path):
    cloud = read_point_cloud(require(SAMPLE))
    session = AnnotationSession(predictor, cloud.xyz, tmp_path / "x.json")
    app = AnnotateApp(session, cloud, out_dir=tmp_path, stem="tiko", display_points=3000)
    assert not app.state()["display"]["has_intensity"]
    cloud.extra["intensity"] = np.arange(cloud.num_points, dtype=np.uint16)
    app = AnnotateApp(session, cloud, out_dir=tmp_path, stem="tiko", display_points=3000)
    grey = np.frombuffer(app.binary("intensity"), np.uint8)
    assert app.state()["display"]["has_intensity"] and grey.size == app.state()["display"]["count"] <= 3000
    assert np.all(np.diff(grey.astype(int)) >= 0) and grey[0] == 0 and grey[-1] == 255  # order kept


def test_dataset_actions_outside_dataset_mode(served):
    status, data = post(served, "/api/dataset/open", {"index": 0})
    assert status == 404 and "not in dataset mode" in data["error"]
    assert "dataset" not in served[0].state()
