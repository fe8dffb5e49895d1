"""The annotation session model (no browser): clicks, candidates, undo/redo, objects, overlaps, persistence,
exports; on a real shared cloud with a tiny random model, checked against the predictor's own output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from plyfile import PlyData

from pointsam.app import sidecar
from pointsam.app.export import export_session, planned_exports
from pointsam.app.session import AnnotationSession, OverlapError
from pointsam.app.sidecar import decode_indices, default_sidecar, encode_indices
from pointsam.errors import FileFormatError, InputError
from pointsam.io import read_point_cloud, write_labels
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
MESH = DATA / "partnet_mobility" / "KitchenPot" / "100693" / "textured_objs" / "original-9.obj"
A, B = 9999, 2500  # clicked points: with this model, the mask of A lies partly inside a candidate of B



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


def best_first(predictor, indices, labels, mask=None, multimask=True):
    masks, scores, logits = predictor.predict(point_indices=indices, point_labels=labels, mask_input=mask,
                                              multimask_output=multimask)
    order = np.argsort(-scores, kind="stable")
    return logits[order], scores[order]


def test_clicks_decode_like_the_predictor_and_refine(session, predictor):
    step = session.click(A)
    logits, scores = best_first(predictor, [A], [1])
    np.testing.assert_allclose(step.logits, logits, atol=1e-5)
    assert step.logits.shape[0] == 3 and list(step.scores) == sorted(step.scores, reverse=True)
    np.testing.assert_array_equal(session.current_mask(), logits[0] > 0)
    doc = json.loads(session.path.read_text())
    assert doc["pending"] == [[A, 1, 0]] and doc["objects"] == []  # each click is saved at once

    session.select_candidate(1)
    step2 = session.click(B, positive=False)  # a refinement: all clicks + the chosen mask as prompt
    want, _ = best_first(predictor, [A, B], [1, 0], mask=logits[1], multimask=False)
    assert step2.logits.shape[0] == 1
    np.testing.assert_allclose(step2.logits, want, atol=1e-5)
    assert session.cycle() == 1  # the 3 multimask alternatives are decoded on demand
    alt, _ = best_first(predictor, [A, B], [1, 0], mask=logits[1], multimask=True)
    np.testing.assert_allclose(step2.logits[1:], alt, atol=1e-5)
    assert [session.cycle() for _ in range(3)] == [2, 3, 0]
    with pytest.raises(InputError, match="candidate 4 does not exist"):
        session.select_candidate(4)


def test_undo_redo_clear(session):
    with pytest.raises(InputError, match="nothing to undo"):
        session.undo()
    session.click(A)
    first = session.current_mask().copy()
    session.click(B, positive=False)
    second = session.current_mask().copy()
    session.undo()
    np.testing.assert_array_equal(session.current_mask(), first)
    assert [c.index for c in session.clicks] == [A]
    session.redo()
    np.testing.assert_array_equal(session.current_mask(), second)
    with pytest.raises(InputError, match="nothing to redo"):
        session.redo()
    session.undo()
    session.click(B)  # a new click drops the redo history
    assert not session.redo_steps
    session.clear()
    assert session.current_mask() is None and not session.clicks
    assert json.loads(session.path.read_text())["pending"] == []


def _choose(session, good) -> np.ndarray:
    """Cycle through the candidates until `good(mask)` holds; the mask."""
    for _ in range(4):
        if good(session.current_mask()):
            return session.current_mask().copy()
        session.cycle()
    raise AssertionError("no candidate fits")


def _accept_best(session, index, **kw):
    session.click(index)
    mask = _choose(session, np.any)
    return mask, session.accept(**kw)


def test_objects_overlaps_rename_delete_and_labels(session, predictor, cloud):
    mask_a, obj1 = _accept_best(session, A, name="seat", label="chair")
    assert obj1.id == 1 and np.array_equal(obj1.indices, np.flatnonzero(mask_a))
    assert not session.clicks  # accepting starts a fresh mask
    session.click(B)
    mask_b = _choose(session, lambda m: (m & mask_a).any() and (m & ~mask_a).any())  # overlaps partly
    with pytest.raises(OverlapError) as info:
        session.accept("leg", "chair")
    assert info.value.overlaps == {1: int((mask_a & mask_b).sum())}
    obj2 = session.accept("leg", "chair", overlap="keep")
    assert np.array_equal(obj2.indices, np.flatnonzero(mask_b & ~mask_a))

    session.click(B)
    _choose(session, lambda m: np.array_equal(m, mask_b))
    obj3 = session.accept("back", "sofa", overlap="replace")  # takes its points from objects 1 and 2
    assert np.array_equal(obj3.indices, np.flatnonzero(mask_b))
    assert 2 not in session.objects  # emptied entirely, so removed
    assert np.array_equal(session.objects[1].indices, np.flatnonzero(mask_a & ~mask_b))
    assert session.objects[1].indices.size > 0

    inst, cls = session.instance_labels(), session.class_labels()
    assert set(np.unique(inst)) == {-1, 1, 3}
    assert (cls[inst == 1] == 1).all() and (cls[inst == 3] == 2).all() and (cls[inst == -1] == -1).all()
    session.update_object(3, name="backrest", label="chair")
    assert session.objects[3].name == "backrest" and (session.class_labels()[inst == 3] == 1).all()
    session.delete_object(1)
    assert (session.instance_labels()[inst == 1] == -1).all()
    with pytest.raises(InputError, match="no object with id 1"):
        session.delete_object(1)
    _, obj4 = _accept_best(session, A, overlap="keep")
    assert obj4.id == 4 and obj4.name == "object 4" and obj4.label == "object"  # ids are never reused
    again = AnnotationSession.open(predictor, cloud.xyz, session.path)  # the saved file says the same
    assert {k: (o.name, o.label, o.indices.tolist()) for k, o in again.objects.items()} == {
        k: (o.name, o.label, o.indices.tolist()) for k, o in session.objects.items()}


def test_resume_restores_objects_and_pending_clicks(session, predictor, cloud):
    _, obj = _accept_best(session, A, name="seat", label="chair")
    session.click(B)
    session.click(A, positive=False)
    session.cycle()
    mask = session.current_mask().copy()
    again = AnnotationSession.open(predictor, cloud.xyz, session.path)
    assert list(again.objects) == [obj.id] and np.array_equal(again.objects[obj.id].indices, obj.indices)
    assert again.classes == ["chair"] and again.next_id == 2
    assert [(c.index, c.positive) for c in again.clicks] == [(B, True), (A, False)]
    assert again.steps[-1].selected == 1
    np.testing.assert_array_equal(again.current_mask(), mask)


def test_sidecar_safety(session, predictor, cloud, tmp_path):
    _accept_best(session, A)
    other = cloud.xyz.copy()
    other[0, 0] += 1.0
    with pytest.raises(FileFormatError, match="belongs to another cloud"):
        AnnotationSession.open(predictor, other, session.path)
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"hello": 1}')
    with pytest.raises(FileFormatError, match="not a pointsam annotation file"):
        AnnotationSession.open(predictor, cloud.xyz, foreign)
    assert foreign.read_text() == '{"hello": 1}'  # never overwritten
    broken = tmp_path / "broken.json"
    broken.write_text(session.path.read_text()[:-40])
    with pytest.raises(FileFormatError, match="not a readable pointsam annotation file"):
        AnnotationSession.open(predictor, cloud.xyz, broken)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # atomic writes leave no temporary files behind


def test_bad_input_is_refused_clearly(session):
    for bad, msg in ((10_000, "outside the cloud"), (-1, "outside the cloud"), (1.5, "must be an integer"),
                     (True, "must be an integer")):
        with pytest.raises(InputError, match=msg):
            session.click(bad)
    with pytest.raises(InputError, match="mask is empty"):
        session.accept()
    session.click(A)
    _choose(session, np.any)
    with pytest.raises(InputError, match="control characters"):
        session.accept("bad\x00name")
    with pytest.raises(InputError, match="longer than 100"):
        session.accept(label="x" * 101)
    with pytest.raises(InputError, match="overlap must be one of"):
        session.accept(overlap="merge")


def test_point_set_encoding_and_default_sidecar(tmp_path, monkeypatch):
    idx = np.array([0, 7, 8, 9999])
    assert np.array_equal(decode_indices(encode_indices(idx, 10_000), 10_000), idx)
    with pytest.raises(ValueError, match=r"more bits than expected \(9,"):
        decode_indices(encode_indices(idx, 10_000), 9)
    with pytest.raises(ValueError, match="expected 20000"):
        decode_indices(encode_indices(idx, 10_000), 20_000)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    writable = tmp_path / "mine"
    writable.mkdir()
    assert default_sidecar(writable / "a.ply") == writable / "a.ply.pointsam.json"
    # a folder marked read-only (made here, so the test holds as root and as a user): the current folder
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        assert default_sidecar(readonly / "a.ply") == work / "a.ply.pointsam.json"
    finally:
        readonly.chmod(0o755)
    # a folder this user may not write to, whatever its mode bits say (e.g. another user's)
    monkeypatch.setattr(sidecar.os, "access", lambda path, mode: False)
    assert default_sidecar(writable / "a.ply") == work / "a.ply.pointsam.json"


def test_export_ply_npy_json(session, cloud, tmp_path):
    mask, obj = _accept_best(session, A, name="seat", label="chair")
    out = tmp_path / "out"
    plan = export_session(session, cloud, out, "tiko")
    assert sorted(plan) == ["classes", "instance_npy", "json", "label_npy", "pcd", "ply", "semantickitti"]
    assert json.loads(plan["classes"].read_text())["classes"] == [
        {"id": 1, "name": "chair", "color": [255, 127, 14], "key": "", "stuff": False}]
    ply = PlyData.read(str(plan["ply"]))["vertex"]
    assert np.array_equal(ply["instance"], np.where(mask, 1, -1))
    assert np.array_equal(ply["label"], np.where(mask, 1, -1))
    np.testing.assert_array_equal(ply["red"], cloud.rgb[:, 0])
    assert np.array_equal(np.load(plan["instance_npy"]), np.where(mask, 1, -1))
    doc = json.loads(plan["json"].read_text())
    assert doc["classes"] == [{"id": 1, "name": "chair"}]
    assert doc["objects"][0]["indices"] == np.flatnonzero(mask).tolist()
    with pytest.raises(FileExistsError, match="already exist"):
        export_session(session, cloud, out, "tiko")
    export_session(session, cloud, out, "tiko", overwrite=True)


def test_export_las_classification(predictor, cloud, tmp_path):
    las_path = tmp_path / "tiko.las"
    write_labels(las_path, cloud.xyz, np.full(cloud.num_points, 2), cloud.rgb)
    las_cloud = read_point_cloud(las_path)
    s = AnnotationSession.open(predictor, las_cloud.xyz, tmp_path / "las.json")
    mask, _ = _accept_best(s, A, label="ground")
    plan = export_session(s, las_cloud, tmp_path, "tiko")
    assert plan["las"].name == "tiko.labels.las"
    relabelled = read_point_cloud(plan["las"])
    # class 1 has no ASPRS code in the class map: the first user code, 64; unlabelled points 0
    assert np.array_equal(relabelled.extra["classification"], np.where(mask, 64, 0))
    from pointsam.io.classmap import load_class_map
    from pointsam.io.las_labels import read_las_classes

    _, back = read_las_classes(plan["las"], load_class_map(plan["classes"]))
    assert np.array_equal(back, s.class_labels())
    np.testing.assert_allclose(relabelled.xyz, las_cloud.xyz, atol=1e-6)


def test_export_labelled_mesh(tmp_path):
    mesh_cloud = read_point_cloud(require(MESH), mesh_samples=3000)
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(mesh_cloud.xyz, mesh_cloud.rgb)
    s = AnnotationSession.open(p, mesh_cloud.xyz, tmp_path / "mesh.json")
    _accept_best(s, 100)
    plan = planned_exports(mesh_cloud, tmp_path, "pot")
    assert plan["mesh"].name == "pot.labelled.obj"
    export_session(s, mesh_cloud, tmp_path, "pot")
    mesh_cloud.source = tmp_path / "pot.ply"  # a PLY mesh input exports a PLY mesh with a face 'label'
    plan = export_session(s, mesh_cloud, tmp_path / "ply", "pot")
    faces = PlyData.read(str(plan["mesh"]))["face"]
    from pointsam.io import labels_to_faces

    want = labels_to_faces(mesh_cloud.mesh, mesh_cloud.xyz, mesh_cloud.face_index, s.instance_labels())
    assert np.array_equal(faces["label"], want) and len(want) == 548 and (want == 1).any()
