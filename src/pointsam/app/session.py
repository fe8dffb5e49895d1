"""The annotation session model: clicks with undo/redo, candidate masks, accepted objects, persistence.

Pure Python + numpy; the model is reached only through a predictor's `predict` (see
`pointsam.predictor.PointCloudPredictor`), so the whole model is unit-testable without a browser.
Every change is saved to the sidecar at once, pending clicks included: a crash loses nothing but a click
whose decode had not finished. A change whose save fails is undone (`SaveError`), so what the user sees is
always what is on disk. A mask takes at most `MAX_CLICKS` clicks, which bounds the replay of pending clicks
when a session is resumed.
"""

from __future__ import annotations

import functools
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from pointsam.app.sidecar import (
    FORMAT,
    VERSION,
    decode_indices,
    encode_indices,
    fingerprint,
    read_sidecar,
    write_sidecar,
)
from pointsam.errors import FileFormatError, InputError, PointSAMError
from pointsam.io.palette import label_colors

OVERLAP_POLICIES = ("keep", "replace")
MAX_NAME_LENGTH = 100
DEFAULT_CLASS = "object"
MAX_CLICKS = 100  # per mask: far more than any real refinement; bounds decode cost and resume replay
MAX_OBJECT_ID = 2**30 - 1  # ids are int32 per point, and the page's view protocol uses bit 30 for the mask


class Predictor(Protocol):
    """What the session needs from `PointCloudPredictor`."""

    def predict(self, point_coords=None, point_labels=None, mask_input=None, multimask_output=True,
                return_logits=False, *, point_indices=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ...


class SaveError(PointSAMError):
    """The sidecar could not be written; the change was undone."""


class OverlapError(PointSAMError):
    """The mask overlaps accepted objects and no overlap policy was chosen."""

    def __init__(self, overlaps: dict[int, int]) -> None:
        self.overlaps = overlaps
        total = sum(overlaps.values())
        names = ", ".join(f"#{oid} ({n} points)" for oid, n in overlaps.items())
        super().__init__(
            f"the mask overlaps {len(overlaps)} accepted object(s) on {total} points: {names}; choose "
            "overlap 'keep' (those points stay with their objects) or 'replace' (the new object takes them)"
        )


@dataclass(frozen=True)
class Click:
    """One prompt: a point index of the full cloud, positive (part of the object) or negative."""

    index: int
    positive: bool


@dataclass
class Step:
    """The state after one click: candidate logits (C, N) sorted by score, and the chosen candidate."""

    click: Click
    logits: np.ndarray
    scores: np.ndarray
    selected: int = 0


@dataclass
class LabelledObject:
    """An accepted object: stable id, free-text name and class, sorted point indices."""

    id: int
    name: str
    label: str
    indices: np.ndarray


def _atomic(method):
    """A session change that is saved at once: when it fails (its save included) the session is put back
    as it was before, so memory never holds a change the sidecar does not."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not kwargs.get("save", True):  # replaying a sidecar: nothing to roll back to
            return method(self, *args, **kwargs)
        snapshot = self._snapshot()
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self._rollback(snapshot)
            raise

    return wrapper


def clean_text(value, what: str, default: str) -> str:
    """A name or class as given by a person: a string, trimmed, printable, at most 100 characters."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {type(value).__name__}")
    text = " ".join(value.split())
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InputError(f"{what} must not contain control characters")
    if len(text) > MAX_NAME_LENGTH:
        raise InputError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    return text or default


def _object_id(value) -> int:
    oid = int(value)
    if not 1 <= oid <= MAX_OBJECT_ID:
        raise ValueError(f"object id {str(oid)[:20]} is outside 1..{MAX_OBJECT_ID}")
    return oid


class AnnotationSession:
    """Interactive labelling of one cloud: decode per click, accept masks as objects, save every change."""

    def __init__(self, predictor: Predictor, xyz: np.ndarray, path: str | Path, *,
                 input_name: str = "") -> None:
        self.predictor = predictor
        self.num_points = int(len(xyz))
        self.path = Path(path)
        self.input_name = input_name
        self.fingerprint = fingerprint(xyz)
        self.steps: list[Step] = []
        self.redo_steps: list[Step] = []
        self.objects: dict[int, LabelledObject] = {}
        self.classes: list[str] = []
        self.next_id = 1
        self.owner = np.zeros(self.num_points, dtype=np.int32)  # object id per point, 0 = none
        self.revision = 0
        self._encoded: dict[int, str] = {}  # object id -> its saved point set, reused until it changes

    # ------------------------------------------------------------------------------ opening

    @classmethod
    def open(cls, predictor: Predictor, xyz: np.ndarray, path: str | Path, *,
             input_name: str = "") -> AnnotationSession:
        """A session on `xyz`, resumed from the sidecar at `path` when it exists."""
        session = cls(predictor, xyz, path, input_name=input_name)
        if session.path.exists():
            session._restore(read_sidecar(session.path))
        return session

    def _restore(self, doc: dict) -> None:
        where = self.path
        info = doc.get("input")
        info = info if isinstance(info, dict) else {}
        if info.get("num_points") != self.num_points or info.get("fingerprint") != self.fingerprint:
            raise FileFormatError(
                f"{where} belongs to another cloud ({info.get('name', '?')}, "
                f"{info.get('num_points', '?')} points; this one has {self.num_points}): refusing to mix "
                "annotations; pass another --labels FILE"
            )
        try:
            self.classes = [clean_text(c, "class", DEFAULT_CLASS) for c in doc.get("classes", [])]
            for entry in doc.get("objects", []):
                indices = decode_indices(entry["points"], self.num_points)
                obj = LabelledObject(_object_id(entry["id"]), clean_text(entry["name"], "name", ""),
                                     clean_text(entry["class"], "class", DEFAULT_CLASS), indices)
                if obj.id in self.objects or (self.owner[indices] != 0).any():
                    raise ValueError(f"object {obj.id} repeats an id or shares points with another object")
                if obj.label not in self.classes:
                    self.classes.append(obj.label)
                self.objects[obj.id] = obj
                self.owner[indices] = obj.id
            next_id = int(doc.get("next_id", 1))
            if not 1 <= next_id <= MAX_OBJECT_ID + 1:
                raise ValueError(f"next_id {str(next_id)[:20]} is outside 1..{MAX_OBJECT_ID + 1}")
            self.next_id = max(next_id, max(self.objects, default=0) + 1)
            pending = doc.get("pending", [])
            if not isinstance(pending, list):
                raise ValueError("'pending' must be a list of clicks")
            if len(pending) > MAX_CLICKS:
                raise ValueError(
                    f"{len(pending)} pending clicks, but a mask takes at most {MAX_CLICKS}; delete the "
                    "\"pending\" list from the file to open its accepted objects")
            pending = [(int(i), bool(p), int(s)) for i, p, s in pending]
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, InputError) as exc:
            raise FileFormatError(f"{where}: damaged annotation file: {exc}") from exc
        for index, positive, selected in pending:  # replay the unaccepted clicks (deterministic)
            try:
                self.click(index, positive, save=False)
                if selected:
                    self.select_candidate(selected, save=False)
            except InputError as exc:
                raise FileFormatError(f"{where}: cannot replay a pending click: {exc}") from exc

    # ----------------------------------------------------------------------------- clicking

    @property
    def clicks(self) -> list[Click]:
        """The clicks of the mask being built, in order."""
        return [s.click for s in self.steps]

    def _decode(self, clicks: list[Click], mask_input: np.ndarray | None,
                multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        _, scores, logits = self.predictor.predict(
            point_labels=np.array([int(c.positive) for c in clicks], np.int64),
            mask_input=mask_input, multimask_output=multimask,
            point_indices=np.array([c.index for c in clicks], np.int64),
        )
        order = np.argsort(-scores, kind="stable")
        return np.asarray(logits[order], np.float32), np.asarray(scores[order], np.float32)

    def _mask_prompt(self, upto: int) -> np.ndarray | None:
        """The chosen logits of step `upto - 1`, the mask prompt for step `upto` (None for the first)."""
        if upto == 0:
            return None
        prev = self.steps[upto - 1]
        return prev.logits[prev.selected]

    @_atomic
    def click(self, index, positive: bool = True, *, save: bool = True) -> Step:
        """Add a click on point `index` and decode: 3 candidates for the first click, then a refinement."""
        if len(self.steps) >= MAX_CLICKS:
            raise InputError(f"a mask takes at most {MAX_CLICKS} clicks: accept it, undo or clear")
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise InputError(f"point index must be an integer, got {index!r}")
        if not 0 <= int(index) < self.num_points:
            raise InputError(f"point index {index} is outside the cloud (0..{self.num_points - 1})")
        if not isinstance(positive, bool | np.bool_):
            raise InputError(f"positive must be true or false, got {positive!r}")
        clicks = [*self.clicks, Click(int(index), bool(positive))]
        first = not self.steps
        logits, scores = self._decode(clicks, self._mask_prompt(len(self.steps)), multimask=first)
        step = Step(clicks[-1], logits, scores)
        self.steps.append(step)
        self.redo_steps.clear()
        self._changed(save)
        return step

    def _require_step(self) -> Step:
        if not self.steps:
            raise InputError("no mask yet: click on the cloud first")
        return self.steps[-1]

    def _add_alternatives(self) -> None:
        """After a refinement click, also decode the 3 multimask candidates (on demand)."""
        step = self._require_step()
        if step.logits.shape[0] == 1:
            logits, scores = self._decode(self.clicks, self._mask_prompt(len(self.steps) - 1), True)
            step.logits = np.concatenate([step.logits, logits])
            step.scores = np.concatenate([step.scores, scores])

    @_atomic
    def cycle(self, *, save: bool = True) -> int:
        """Show the next candidate mask (a refinement's 3 alternatives are decoded on first use)."""
        self._add_alternatives()
        step = self.steps[-1]
        step.selected = (step.selected + 1) % step.logits.shape[0]
        self._changed(save)
        return step.selected

    @_atomic
    def select_candidate(self, k, *, save: bool = True) -> None:
        """Choose candidate `k` (0 = the most confident) of the latest click."""
        step = self._require_step()
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InputError(f"candidate must be an integer, got {k!r}")
        if k >= step.logits.shape[0]:
            self._add_alternatives()
        if not 0 <= k < step.logits.shape[0]:
            raise InputError(f"candidate {k} does not exist (0..{step.logits.shape[0] - 1})")
        step.selected = int(k)
        self._changed(save)

    @_atomic
    def undo(self) -> None:
        """Take back the latest click (and its mask)."""
        if not self.steps:
            raise InputError("nothing to undo")
        self.redo_steps.append(self.steps.pop())
        self._changed()

    @_atomic
    def redo(self) -> None:
        """Put back the click taken back last."""
        if not self.redo_steps:
            raise InputError("nothing to redo")
        self.steps.append(self.redo_steps.pop())
        self._changed()

    @_atomic
    def clear(self) -> None:
        """Drop every click of the mask being built."""
        self.steps.clear()
        self.redo_steps.clear()
        self._changed()

    def current_mask(self) -> np.ndarray | None:
        """(N,) bool mask of the chosen candidate, or None before the first click."""
        if not self.steps:
            return None
        step = self.steps[-1]
        return step.logits[step.selected] > 0

    # ------------------------------------------------------------------------------ objects

    @_atomic
    def accept(self, name=None, label=None, overlap: str | None = None) -> LabelledObject:
        """Turn the current mask into a new object; `overlap` says who gets points of other objects."""
        mask = self.current_mask()
        if mask is None or not mask.any():
            raise InputError("the mask is empty: click on the object (and pick a candidate) first")
        if overlap is not None and overlap not in OVERLAP_POLICIES:
            raise InputError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {overlap!r}")
        oid = self.next_id
        if oid > MAX_OBJECT_ID:
            raise InputError(f"no object ids left (at most {MAX_OBJECT_ID}); export and start a new file")
        name = clean_text(name, "name", f"object {oid}")
        label = clean_text(label, "class", DEFAULT_CLASS)
        indices = np.flatnonzero(mask).astype(np.int64)
        owners = self.owner[indices]
        taken = owners != 0
        if taken.any():
            ids, counts = np.unique(owners[taken], return_counts=True)
            if overlap is None:
                raise OverlapError({int(i): int(c) for i, c in zip(ids, counts, strict=True)})
            if overlap == "keep":
                indices = indices[~taken]
                if indices.size == 0:
                    raise InputError("every point of the mask already belongs to an object")
            else:
                for other in ids.tolist():
                    obj = self.objects[other]
                    obj.indices = np.setdiff1d(obj.indices, indices, assume_unique=True)
                    self._encoded.pop(other, None)
                    if obj.indices.size == 0:
                        del self.objects[other]
        obj = LabelledObject(oid, name, label, indices)
        self.objects[oid] = obj
        self.owner[indices] = oid
        self.next_id = oid + 1
        if label not in self.classes:
            self.classes.append(label)
        self.steps.clear()
        self.redo_steps.clear()
        self._changed()
        return obj

    def _object(self, oid) -> LabelledObject:
        if isinstance(oid, bool) or not isinstance(oid, int | np.integer) or int(oid) not in self.objects:
            raise InputError(f"no object with id {oid!r}")
        return self.objects[int(oid)]

    @_atomic
    def update_object(self, oid, name=None, label=None) -> LabelledObject:
        """Rename an object and/or change its class."""
        obj = self._object(oid)
        if name is not None:
            obj.name = clean_text(name, "name", f"object {obj.id}")
        if label is not None:
            obj.label = clean_text(label, "class", DEFAULT_CLASS)
            if obj.label not in self.classes:
                self.classes.append(obj.label)
        self._changed()
        return obj

    @_atomic
    def delete_object(self, oid) -> None:
        """Delete an object; its points become unlabelled (its id is never reused)."""
        obj = self._object(oid)
        self.owner[obj.indices] = 0
        del self.objects[obj.id]
        self._encoded.pop(obj.id, None)
        self._changed()

    # ------------------------------------------------------------------------------- labels

    def instance_labels(self) -> np.ndarray:
        """(N,) int32 object id per point, -1 where unlabelled."""
        return np.where(self.owner > 0, self.owner, -1).astype(np.int32)

    def class_ids(self) -> dict[str, int]:
        """Class name -> id, numbered from 1 in order of first use (stable across deletions)."""
        return {name: i + 1 for i, name in enumerate(self.classes)}

    def class_labels(self) -> np.ndarray:
        """(N,) int32 class id per point (see `class_ids`), -1 where unlabelled."""
        ids = self.class_ids()
        out = np.full(self.num_points, -1, dtype=np.int32)
        for obj in self.objects.values():  # objects never share points
            out[obj.indices] = ids[obj.label]
        return out

    # -------------------------------------------------------------------------- persistence

    def _changed(self, save: bool = True) -> None:
        self.revision += 1
        if save:
            self.save()

    def _points_text(self, obj: LabelledObject) -> str:
        if obj.id not in self._encoded:
            self._encoded[obj.id] = encode_indices(obj.indices, self.num_points)
        return self._encoded[obj.id]

    def document(self) -> dict:
        """The sidecar document: input identity, classes, objects (point sets) and pending clicks."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "input": {"name": self.input_name, "num_points": self.num_points,
                      "fingerprint": self.fingerprint},
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "classes": list(self.classes),
            "next_id": self.next_id,
            "objects": [{"id": o.id, "name": o.name, "class": o.label, "num_points": int(o.indices.size),
                         "points": self._points_text(o)}
                        for o in self.objects.values()],
            "pending": [[s.click.index, int(s.click.positive), s.selected] for s in self.steps],
        }

    def save(self) -> None:
        """Write the sidecar atomically; `SaveError` (with the reason) when it cannot be written."""
        try:
            write_sidecar(self.path, self.document())
        except (OSError, PointSAMError) as exc:
            raise SaveError(
                f"could not save the annotations to {self.path} ({exc}): that change was "
                "undone; free some space or fix the folder's permissions, then try again"
            ) from exc

    def _snapshot(self) -> tuple:
        """What a change may touch, to put back if it fails (the owner map is rebuilt from the objects)."""
        steps = [(s, s.logits, s.scores, s.selected) for s in (*self.steps, *self.redo_steps)]
        objects = [(o, o.name, o.label, o.indices) for o in self.objects.values()]
        return (steps, len(self.steps), objects, list(self.classes), self.next_id, self.revision,
                dict(self._encoded))

    def _rollback(self, snapshot: tuple) -> None:
        steps, num_steps, objects, classes, next_id, revision, encoded = snapshot
        for step, logits, scores, selected in steps:
            step.logits, step.scores, step.selected = logits, scores, selected
        self.steps = [s for s, *_ in steps[:num_steps]]
        self.redo_steps = [s for s, *_ in steps[num_steps:]]
        for obj, name, label, indices in objects:
            obj.name, obj.label, obj.indices = name, label, indices
        self.objects = {o.id: o for o, *_ in objects}
        self.owner[:] = 0
        for obj in self.objects.values():
            self.owner[obj.indices] = obj.id
        self.classes, self.next_id, self.revision, self._encoded = classes, next_id, revision, encoded

    def state(self) -> dict:
        """A JSON-ready summary for the user interface."""
        step = self.steps[-1] if self.steps else None
        mask = self.current_mask()
        colors = label_colors(np.array(sorted(self.objects), dtype=np.int64))
        ids = self.class_ids()
        return {
            "revision": self.revision,
            "num_points": self.num_points,
            "sidecar": str(self.path),
            "clicks": [{"index": c.index, "positive": c.positive} for c in self.clicks],
            "can_undo": bool(self.steps),
            "can_redo": bool(self.redo_steps),
            "candidates": [] if step is None else [
                {"score": round(float(s), 4), "num_points": int((lg > 0).sum())}
                for s, lg in zip(step.scores, step.logits, strict=True)],
            "selected": None if step is None else step.selected,
            "mask_points": 0 if mask is None else int(mask.sum()),
            "classes": [{"id": ids[c], "name": c} for c in self.classes],
            "objects": [{"id": o.id, "name": o.name, "class": o.label, "class_id": ids[o.label],
                         "num_points": int(o.indices.size), "color": colors[k].tolist()}
                        for k, o in enumerate(sorted(self.objects.values(), key=lambda o: o.id))],
        }
