"""Hostile and damaged annotation sidecars, and a sidecar that cannot be written (issue 13): a zlib bomb
and an oversized file are refused before being inflated or read, out-of-range ids and 10^12 next ids give
a clear error, thousands of pending clicks are refused without a single decode, a random fuzz of the
document's fields only ever gives `FileFormatError`, and a change whose save fails is undone."""

from __future__ import annotations

import base64
import copy
import json
import random
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from pointsam.app import session as session_module
from pointsam.app.server import MASK_BIT, AnnotateApp
from pointsam.app.session import MAX_CLICKS, MAX_OBJECT_ID, AnnotationSession, SaveError
from pointsam.app.sidecar import MAX_SIDECAR_BYTES, decode_indices, encode_indices
from pointsam.errors import FileFormatError, InputError
from pointsam.io import read_point_cloud
from pointsam.predictor import PointCloudPredictor

from conftest import DATA, require, tiny_model

SAMPLE = DATA / "samples" / "tiko_10000_points.ply"
A = 9999


@pytest.fixture(scope="module")
def cloud():
    return read_point_cloud(require(SAMPLE))


@pytest.fixture(scope="module")
def predictor(cloud):
    p = PointCloudPredictor(tiny_model())
    p.set_point_cloud(cloud.xyz, cloud.rgb)
    return p


class CountingPredictor:
    """The real predictor, counting decodes."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def predict_region(self, *args, **kwargs):
        self.calls += 1
        return self.inner.predict_region(*args, **kwargs)


@pytest.fixture(scope="module")
def saved(predictor, cloud, tmp_path_factory):
    """A real sidecar document: one object (id 1) and one pending click."""
    path = tmp_path_factory.mktemp("saved") / "labels.json"
    s = AnnotationSession.open(predictor, cloud.xyz, path)
    s.click(A)
    choose_nonempty(s)
    s.accept("seat", "chair")
    s.click(2500)
    return json.loads(path.read_text())


def choose_nonempty(s: AnnotationSession) -> None:
    """Cycle the candidates of the latest click until its mask is not empty."""
    for _ in range(7):
        if s.current_mask().any():
            return
        s.cycle()
    raise AssertionError("every candidate is empty")


def open_doc(predictor, cloud, tmp_path, doc) -> AnnotationSession:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return AnnotationSession.open(predictor, cloud.xyz, path)


def bomb(inflated_bytes: int) -> str:
    """base64 of a zlib stream of zeros that inflates to `inflated_bytes` (built in small pieces)."""
    deflate, parts, chunk = zlib.compressobj(9), [], bytes(1 << 20)
    for _ in range(inflated_bytes // len(chunk)):
        parts.append(deflate.compress(chunk))
    parts.append(deflate.flush())
    return base64.b64encode(b"".join(parts)).decode("ascii")


def test_a_zlib_bomb_point_set_is_refused_without_being_inflated(predictor, cloud, saved, tmp_path):
    text = bomb(128 << 20)  # 128 MB of zeros in ~130 KB
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more bits than expected"):
            decode_indices(text, 10_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the compressed data, never the inflated 128 MB
    doc = copy.deepcopy(saved)
    doc["objects"][0]["points"] = text
    with pytest.raises(FileFormatError, match="damaged annotation file: point set holds more bits"):
        open_doc(predictor, cloud, tmp_path, doc)
    for bad, msg in ((encode_indices(np.array([1]), 10_000)[:-8], "undecodable"),
                     ("not base64!", "undecodable"),
                     (base64.b64encode(zlib.compress(b"\x01" * 10)).decode(), "expected 10000")):
        with pytest.raises(ValueError, match=msg):
            decode_indices(bad, 10_000)


def test_an_oversized_sidecar_is_refused_before_it_is_read(predictor, cloud, tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:  # sparse: no disk space used, nothing to read
        fh.write(b'{"format": "pointsam-annotation"')
        fh.truncate(MAX_SIDECAR_BYTES + 1)
    start = time.perf_counter()
    with pytest.raises(FileFormatError, match="over the 256 MB limit"):
        AnnotationSession.open(predictor, cloud.xyz, path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("field, value, message", [
    ("id", 2**31, "object id 2147483648 is outside"),
    ("id", 2**30, "object id 1073741824 is outside"),
    ("id", 0, "object id 0 is outside"),
    ("id", -5, "object id -5 is outside"),
    ("id", 1e400, "cannot convert float infinity"),
    ("next_id", 10**12, "next_id 1000000000000 is outside"),
    ("next_id", -1, "next_id -1 is outside"),
    ("next_id", "many", "invalid literal"),
    ("pending", {"a": 1}, "'pending' must be a list"),
    ("pending", [[A, 1, 0]] * 3000, "3000 pending clicks, but a mask takes at most 100"),
    ("pending", [[A, 1, 7]], "cannot replay a pending click: candidate 7 does not exist"),
    ("pending", [[10**6, 1, 0]], "cannot replay a pending click: point index 1000000 is outside"),
    ("input", [1, 2], "belongs to another cloud"),
])
def test_out_of_range_ids_and_pending_clicks_give_a_clear_error(predictor, cloud, saved, tmp_path, field,
                                                               value, message):
    doc = copy.deepcopy(saved)
    if field == "id":
        doc["objects"][0]["id"] = value
    else:
        doc[field] = value
    counting = CountingPredictor(predictor)
    start = time.perf_counter()
    with pytest.raises(FileFormatError, match=message):
        AnnotationSession.open(counting, cloud.xyz, open_doc(predictor, cloud, tmp_path, doc).path)
    assert time.perf_counter() - start < 5.0
    if field != "pending" or len(value) > MAX_CLICKS:
        assert counting.calls == 0  # refused before any replay


def test_the_largest_ids_still_work_and_the_view_keeps_its_mask_bit(predictor, cloud, saved, tmp_path):
    doc = copy.deepcopy(saved)
    doc["objects"][0]["id"] = MAX_OBJECT_ID
    doc["next_id"] = MAX_OBJECT_ID + 1
    s = open_doc(predictor, cloud, tmp_path, doc)
    choose_nonempty(s)  # for the pending click
    points = s.objects[MAX_OBJECT_ID].indices
    assert (s.class_labels()[points] == 1).all() and (s.instance_labels()[points] == MAX_OBJECT_ID).all()
    view = np.frombuffer(AnnotateApp(s, cloud, out_dir=tmp_path, stem="t").view(), "<i4")
    assert (view[points] & ~MASK_BIT == MAX_OBJECT_ID).all()
    assert ((view & MASK_BIT) != 0).sum() == s.current_mask().sum()  # the pending click's mask, apart
    with pytest.raises(InputError, match="no object ids left"):
        s.accept(overlap="keep")
    assert len(s.objects) == 1 and s.clicks  # nothing changed


def test_clicks_per_mask_are_capped(predictor, cloud, tmp_path, monkeypatch):
    monkeypatch.setattr(session_module, "MAX_CLICKS", 2)
    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "cap.json")
    for index in (A, 2500):
        s.click(index)
    with pytest.raises(InputError, match="at most 2 clicks"):
        s.click(200)
    assert len(s.steps) == 2
    again = AnnotationSession.open(predictor, cloud.xyz, s.path)  # exactly the cap replays
    np.testing.assert_array_equal(again.current_mask(), s.current_mask())


def test_random_damage_to_a_sidecar_only_ever_gives_a_file_format_error(predictor, cloud, saved, tmp_path):
    rng = random.Random(16)
    junk = [None, True, -1, 0, 2**40, 1e308, float("nan"), "", "x" * 200, [], {}, [1, 2, 3], {"a": 1}, "\x00"]
    paths = [("format",), ("version",), ("input",), ("input", "num_points"), ("classes",), ("next_id",),
             ("objects",), ("objects", 0), ("objects", 0, "id"), ("objects", 0, "name"),
             ("objects", 0, "class"), ("objects", 0, "points"), ("pending",), ("pending", 0),
             ("pending", 0, 0), ("pending", 0, 2)]
    outcomes = {"opened": 0, "refused": 0}
    for _ in range(60):
        doc = copy.deepcopy(saved)
        where = rng.choice(paths)
        node = doc
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = rng.choice(junk)
        text = json.dumps(doc)
        if rng.random() < 0.2:  # and sometimes truncated or bit-flipped text
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice(["", "\x7f", "}", "]]]"]) + text[cut + 1:]
        try:
            s = open_doc(predictor, cloud, tmp_path, text)
        except FileFormatError:
            outcomes["refused"] += 1
        else:
            outcomes["opened"] += 1
            s.class_labels(), s.instance_labels(), s.state()  # a session that opens is a working one
    assert outcomes["refused"] > 15 and outcomes["opened"] > 5, outcomes


def test_a_failed_save_undoes_the_change(predictor, cloud, tmp_path, monkeypatch):
    s = AnnotationSession.open(predictor, cloud.xyz, tmp_path / "labels.json")
    s.click(A)
    choose_nonempty(s)
    first = s.accept("seat", "chair")
    s.click(2500)
    s.click(A, positive=False)
    s.click(100)
    s.undo()  # so that there is something to redo
    choose_nonempty(s)
    before = (json.dumps(s.state()), s.owner.copy(), s.document()["objects"], s.next_id)

    def disk_full(path, document):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(session_module, "write_sidecar", disk_full)
    changes = [lambda: s.click(100), s.undo, s.redo, s.clear, s.cycle, lambda: s.select_candidate(2),
               lambda: s.accept("x", "y", overlap="replace"), lambda: s.accept("x", "y", overlap="keep"),
               lambda: s.update_object(first.id, "renamed", "sofa"), lambda: s.delete_object(first.id)]
    for change in changes:
        with pytest.raises(SaveError, match="No space left on device.*undone"):
            change()
        after = (json.dumps(s.state()), s.owner.copy(), s.document()["objects"], s.next_id)
        assert after[0] == before[0] and np.array_equal(after[1], before[1]), change
        assert after[2:] == before[2:], change
    monkeypatch.undo()
    s.undo()  # and the session goes on working once the disk has room again
    assert json.loads(s.path.read_text())["pending"] == [[2500, 1, 0]] and s.redo_steps
