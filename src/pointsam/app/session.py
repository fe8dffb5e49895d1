"""The annotation session model: clicks with undo/redo, candidate masks, accepted objects, persistence.

Pure Python + numpy; the model is reached only through a predictor's `predict` (see
`pointsam.predictor.PointCloudPredictor`), so the whole model is unit-testable without a browser.
Every change is saved to the sidecar at once, pending clicks included: a crash loses nothing but a click
whose decode had not finished. A change whose save fails is undone (`SaveError`), so what the user sees is
always what is on disk. A mask takes at most `MAX_CLICKS` clicks, which bounds the replay of pending clicks
when a session is resumed.

Hand tools share the clicks' history: `edit` adds or removes exact point indices (a lasso, box or brush
selection computed by the page, or `grow`/`shrink` by neighbours) to or from the current mask or an
accepted object. The current mask is the chosen candidate of the latest click with every mask edit of
the history applied on top, in order (a later click re-decodes the model's part, the hand edits stay).
Mask edits are saved with the pending clicks; edits of accepted objects change their saved point sets
at once. Accepting a mask and deleting an object are in the same history: undoing an accept gives the
objects back as they were and the accepted mask back as the current mask (one exact edit), and edits of
objects stay undoable across later accepts. The object history lasts for the session (the newest
`MAX_OBJECT_HISTORY` entries); it is not saved, so a restarted session begins a new one.
"""

from __future__ import annotations

import functools
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pointsam.app.candidates import CandidateLogits
from pointsam.app.classes import ClassMap
from pointsam.app.selection import checked_selection, near, neighbour_spacing
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
MAX_EDITS = 1000  # hand edits per mask: bounds the history kept in memory and in the sidecar
EDIT_TOOLS = ("lasso", "box", "brush", "grow", "shrink", "select")
MAX_OBJECT_HISTORY = 200  # undoable object edits, accepts and deletions kept in memory (oldest dropped)


class Predictor(Protocol):
    """What the session needs from `PointCloudPredictor`."""

    def predict_region(self, point_coords=None, point_labels=None, mask_input=None,
                       multimask_output=True, *, point_indices=None
                       ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
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
    """The state after one click: candidate logits (C, N) sorted by score (kept on the points that
    answered), and the chosen candidate."""

    click: Click
    logits: CandidateLogits
    scores: np.ndarray
    selected: int = 0


@dataclass
class Edit:
    """A hand edit of the current mask: these points are in (`add`) or out of it, whatever the model says."""

    indices: np.ndarray
    add: bool
    tool: str = "select"
    saved: str = field(default="", repr=False, compare=False)  # the encoded point set, made once


@dataclass(frozen=True)
class ObjectEdit:
    """A hand edit of accepted objects: the owners of `indices` before and after (exact undo/redo)."""

    indices: np.ndarray
    before: np.ndarray
    after: np.ndarray
    add: bool
    target: int
    tool: str = "select"


@dataclass(frozen=True)
class ObjectsChange:
    """Accepting the mask or deleting an object, exactly undoable: the owners of `indices` before and
    after, every touched object's (name, class) before and after (absent: no such object), `next_id`
    before and after, and (an accept) the accepted mask, given back as the current mask by undo."""

    kind: str  # "accept" or "delete"
    target: int
    indices: np.ndarray
    before: np.ndarray
    after: np.ndarray
    objects_before: dict[int, tuple[str, str]]
    objects_after: dict[int, tuple[str, str]]
    next_id: tuple[int, int]
    mask: Edit | None = None


HistoryEntry = Step | Edit | ObjectEdit | ObjectsChange
OBJECT_ENTRIES = (ObjectEdit, ObjectsChange)  # history entries of accepted objects (not of the mask)


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
                 input_name: str = "", class_map: ClassMap | None = None, semantic: bool = False) -> None:
        self.predictor = predictor
        self.num_points = int(len(xyz))
        self._prompt_buffer: np.ndarray | None = None  # the mask prompt of local-mode clicks, reused
        self.path = Path(path)
        self.input_name = input_name
        self.fingerprint = fingerprint(xyz)
        self.xyz = xyz
        self.steps: list[HistoryEntry] = []  # clicks and hand edits, oldest first: one undo history
        self.redo_steps: list[HistoryEntry] = []
        self.objects: dict[int, LabelledObject] = {}
        self.classes: list[str] = []
        self.class_map = class_map  # None: class ids in order of first use
        self.semantic = bool(semantic)  # every class is stuff: one object per class, no instances
        self.unknown_classes: list[str] = []  # classes of the file that the given class map lacked
        self.next_id = 1
        self.owner = np.zeros(self.num_points, dtype=np.int32)  # object id per point, 0 = none
        self.revision = 0
        self._encoded: dict[int, str] = {}  # object id -> its saved point set, reused until it changes
        self._spacing: float | None = None

    # ------------------------------------------------------------------------------ opening

    @classmethod
    def open(cls, predictor: Predictor | None, xyz: np.ndarray, path: str | Path, *, input_name: str = "",
             class_map: ClassMap | None = None, semantic: bool = False,
             replay: bool = True) -> AnnotationSession:
        """A session on `xyz`, resumed from the sidecar at `path` when it exists. A given `class_map` wins
        over the one saved in the sidecar; classes of the sidecar it lacks are added to it with new ids
        (listed in `unknown_classes`), so no object loses its class. With `replay=False` (no predictor
        needed) the pending clicks are not decoded: a session to read objects from, e.g. to export."""
        session = cls(predictor, xyz, path, input_name=input_name, class_map=class_map, semantic=semantic)
        if session.path.exists():
            session._restore(read_sidecar(session.path), replay=replay)
        if session.class_map is not None:
            session.unknown_classes = [e.name for e in session.class_map.extend(session.classes)]
        return session

    def _restore(self, doc: dict, replay: bool = True) -> None:
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
            if self.class_map is None and doc.get("class_map") is not None:
                self.class_map = ClassMap.from_list(doc["class_map"], f"{where}: class_map")
            self.semantic = self.semantic or doc.get("mode") == "semantic"
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
            num_clicks = sum(not isinstance(entry, dict) for entry in pending)
            for count, limit, what in ((num_clicks, MAX_CLICKS, "clicks"),
                                       (len(pending) - num_clicks, MAX_EDITS, "hand edits")):
                if count > limit:
                    raise ValueError(
                        f"{count} pending {what}, but a mask takes at most {limit}; delete the "
                        "\"pending\" list from the file to open its accepted objects")
            pending = [self._pending_entry(entry) for entry in pending]
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, InputError) as exc:
            raise FileFormatError(f"{where}: damaged annotation file: {exc}") from exc
        for entry in pending if replay else []:  # replay the unaccepted clicks and hand edits
            try:
                if isinstance(entry, Edit):
                    self.steps.append(entry)
                    continue
                index, positive, selected = entry
                self.click(index, positive, save=False)
                if selected:
                    self.select_candidate(selected, save=False)
            except InputError as exc:
                raise FileFormatError(f"{where}: cannot replay a pending click: {exc}") from exc
        self.revision += 1

    def _pending_entry(self, entry) -> tuple[int, bool, int] | Edit:
        """A saved history entry: a click [index, positive, candidate] or a mask edit {edit, tool, points}."""
        if isinstance(entry, dict):
            if entry.get("edit") not in ("add", "remove") or entry.get("tool", "select") not in EDIT_TOOLS:
                raise ValueError(f"a pending edit must be add or remove by one of {', '.join(EDIT_TOOLS)}")
            return Edit(decode_indices(entry["points"], self.num_points), entry["edit"] == "add",
                        entry.get("tool", "select"))
        index, positive, selected = entry
        return int(index), bool(positive), int(selected)

    # ----------------------------------------------------------------------------- clicking

    @property
    def clicks(self) -> list[Click]:
        """The clicks of the mask being built, in order."""
        return [s.click for s in self._click_steps()]

    def _click_steps(self) -> list[Step]:
        return [s for s in self.steps if isinstance(s, Step)]

    def _decode(self, clicks: list[Click], mask_input: np.ndarray | None,
                multimask: bool) -> tuple[CandidateLogits, np.ndarray]:
        indices, scores, logits = self.predictor.predict_region(
            point_labels=np.array([int(c.positive) for c in clicks], np.int64),
            mask_input=mask_input, multimask_output=multimask,
            point_indices=np.array([c.index for c in clicks], np.int64),
        )
        order = np.argsort(-scores, kind="stable")
        values = np.asarray(logits[order], np.float32)
        return CandidateLogits(values, indices, self.num_points), np.asarray(scores[order], np.float32)

    def _mask_prompt(self, upto: int) -> np.ndarray | None:
        """The chosen logits of click `upto - 1`, the mask prompt for click `upto` (None for the first).
        Hand edits are not part of the prompt: they are applied on top of the model's mask."""
        if upto == 0:
            return None
        prev = self._click_steps()[upto - 1]
        if prev.logits.indices is None:
            return prev.logits.row(prev.selected)
        if self._prompt_buffer is None:
            self._prompt_buffer = np.empty(self.num_points, np.float32)  # reused by every later click
        return prev.logits.row(prev.selected, out=self._prompt_buffer)

    @_atomic
    def click(self, index, positive: bool = True, *, save: bool = True) -> Step:
        """Add a click on point `index` and decode: 3 candidates for the first click, then a refinement."""
        if len(self.clicks) >= MAX_CLICKS:
            raise InputError(f"a mask takes at most {MAX_CLICKS} clicks: accept it, undo or clear")
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise InputError(f"point index must be an integer, got {index!r}")
        if not 0 <= int(index) < self.num_points:
            raise InputError(f"point index {index} is outside the cloud (0..{self.num_points - 1})")
        if not isinstance(positive, bool | np.bool_):
            raise InputError(f"positive must be true or false, got {positive!r}")
        clicks = [*self.clicks, Click(int(index), bool(positive))]
        first = len(clicks) == 1
        logits, scores = self._decode(clicks, self._mask_prompt(len(clicks) - 1), multimask=first)
        step = Step(clicks[-1], logits, scores)
        self.steps.append(step)
        self.redo_steps.clear()
        self._changed(save)
        return step

    def _require_step(self) -> Step:
        steps = self._click_steps()
        if not steps:
            raise InputError("no model mask yet: click on the cloud first")
        return steps[-1]

    def _add_alternatives(self) -> None:
        """After a refinement click, also decode the 3 multimask candidates (on demand)."""
        step = self._require_step()
        if len(step.logits) == 1:
            clicks = self.clicks
            logits, scores = self._decode(clicks, self._mask_prompt(len(clicks) - 1), True)
            step.logits = step.logits.concat(logits)
            step.scores = np.concatenate([step.scores, scores])

    @_atomic
    def cycle(self, *, save: bool = True) -> int:
        """Show the next candidate mask (a refinement's 3 alternatives are decoded on first use)."""
        self._add_alternatives()
        step = self._require_step()
        step.selected = (step.selected + 1) % len(step.logits)
        self._changed(save)
        return step.selected

    @_atomic
    def select_candidate(self, k, *, save: bool = True) -> None:
        """Choose candidate `k` (0 = the most confident) of the latest click."""
        step = self._require_step()
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise InputError(f"candidate must be an integer, got {k!r}")
        if k >= len(step.logits):
            self._add_alternatives()
        if not 0 <= k < len(step.logits):
            raise InputError(f"candidate {k} does not exist (0..{len(step.logits) - 1})")
        step.selected = int(k)
        self._changed(save)

    @_atomic
    def undo(self) -> None:
        """Take back the latest click or hand edit."""
        if not self.steps:
            raise InputError("nothing to undo")
        entry = self.steps.pop()
        if isinstance(entry, ObjectEdit):
            self._set_owners(entry.indices, entry.before)
        elif isinstance(entry, ObjectsChange):
            self._apply_objects(entry, forward=False)
            if entry.mask is not None:  # the accepted mask is the current mask again
                self.steps.append(entry.mask)
        self.redo_steps.append(entry)
        self._changed()

    @_atomic
    def redo(self) -> None:
        """Put back the click or hand edit taken back last."""
        if not self.redo_steps:
            raise InputError("nothing to redo")
        entry = self.redo_steps.pop()
        if isinstance(entry, ObjectEdit):
            self._set_owners(entry.indices, entry.after)
        elif isinstance(entry, ObjectsChange):
            if entry.mask is not None:
                self.steps = [e for e in self.steps if e is not entry.mask]
            self._apply_objects(entry, forward=True)
        self.steps.append(entry)
        self._changed()

    @_atomic
    def clear(self) -> None:
        """Drop every click and hand edit of the mask being built (edits of accepted objects stay)."""
        self.steps = [s for s in self.steps if isinstance(s, OBJECT_ENTRIES)]
        self.redo_steps.clear()
        self._changed()

    def current_mask(self) -> np.ndarray | None:
        """(N,) bool mask: the chosen candidate of the latest click with the hand edits applied in order;
        None before the first click or edit."""
        steps = self._click_steps()
        edits = [e for e in self.steps if isinstance(e, Edit)]
        if not steps and not edits:
            return None
        mask = steps[-1].logits.mask(steps[-1].selected) if steps else np.zeros(self.num_points, bool)
        for edit in edits:
            mask[edit.indices] = edit.add
        return mask

    # --------------------------------------------------------------------------- hand tools

    def _selection(self, indices) -> np.ndarray:
        return checked_selection(indices, self.num_points)

    def _set_owners(self, indices: np.ndarray, owners: np.ndarray) -> None:
        """Give `indices` these owners and rebuild the point sets of every object concerned."""
        affected = set(np.unique(self.owner[indices]).tolist()) | set(np.unique(owners).tolist())
        self.owner[indices] = owners
        for oid in affected - {0}:
            obj = self.objects[oid]
            obj.indices = np.flatnonzero(self.owner == oid).astype(np.int64)
            self._encoded.pop(oid, None)

    def _apply_objects(self, change: ObjectsChange, forward: bool) -> None:
        """Put the objects and owners of `change` as they are after it (`forward`) or before it."""
        meta = change.objects_after if forward else change.objects_before
        for oid, (name, label) in meta.items():  # objects that exist on this side: (re)create, rename
            if oid not in self.objects:
                self.objects[oid] = LabelledObject(oid, name, label, np.zeros(0, np.int64))
            self.objects[oid].name, self.objects[oid].label = name, label
            self._use_class(label)
        self._set_owners(change.indices, change.after if forward else change.before)
        for oid in (set(change.objects_before) | set(change.objects_after)) - set(meta):
            self.objects.pop(oid, None)
            self._encoded.pop(oid, None)
        self.next_id = change.next_id[1 if forward else 0]

    def _push_object_entry(self, entry: ObjectEdit | ObjectsChange) -> None:
        """Append an object-level entry; beyond MAX_OBJECT_HISTORY of them the oldest is forgotten."""
        self.steps.append(entry)
        kept = [e for e in self.steps if isinstance(e, OBJECT_ENTRIES)]
        if len(kept) > MAX_OBJECT_HISTORY:
            oldest = kept[0]
            self.steps = [e for e in self.steps if e is not oldest]

    def _record_edit(self, sel: np.ndarray, add: bool, target, tool: str, save: bool) -> int:
        if target is None:
            if sum(isinstance(e, Edit) for e in self.steps) >= MAX_EDITS:
                raise InputError(f"a mask takes at most {MAX_EDITS} hand edits: accept it, undo or clear")
            before = self.current_mask()
            changed = int((before[sel] != add).sum()) if before is not None else (sel.size if add else 0)
            self.steps.append(Edit(sel, add, tool))
        else:
            obj = self._object(target)
            owners = self.owner[sel]
            moving = owners != obj.id if add else owners == obj.id
            idx = sel[moving]
            entry = ObjectEdit(idx, owners[moving].copy(), np.full(idx.size, obj.id if add else 0, np.int32),
                               add, obj.id, tool)
            self._set_owners(entry.indices, entry.after)
            self._push_object_entry(entry)
            changed = int(idx.size)
        self.redo_steps.clear()
        self._changed(save)
        return changed

    @_atomic
    def edit(self, indices, add: bool = True, *, target=None, tool: str = "select",
             save: bool = True) -> int:
        """Add the points `indices` to (or remove them from) the current mask, or the accepted object
        `target` (adding takes them from other objects); one undoable step. Returns how many changed."""
        if tool not in EDIT_TOOLS:
            raise InputError(f"tool must be one of {', '.join(EDIT_TOOLS)}, got {tool!r}")
        if not isinstance(add, bool | np.bool_):
            raise InputError(f"add must be true or false, got {add!r}")
        return self._record_edit(self._selection(indices), bool(add), target, tool, save)

    def neighbour_radius(self) -> float:
        """The default grow/shrink radius: twice the median nearest-neighbour spacing."""
        if self._spacing is None:
            self._spacing = neighbour_spacing(self.xyz)
        return 2.0 * self._spacing

    @_atomic
    def grow(self, *, target=None, radius=None, shrink: bool = False, save: bool = True) -> int:
        """Grow the current mask (or object `target`) by every point within `radius` of it, or shrink it
        by its points within `radius` of the outside (default `neighbour_radius`). One undoable step."""
        what = "the mask" if target is None else f"object #{target}"
        if radius is None:
            radius = self.neighbour_radius()
        if isinstance(radius, bool) or not isinstance(radius, int | float) or not 0 < radius < float("inf"):
            raise InputError(f"radius must be a positive number, got {radius!r}")
        if target is None:
            mask = self.current_mask()
            inside = np.zeros(self.num_points, bool) if mask is None else mask
            free = ~inside
        else:
            obj = self._object(target)
            inside = self.owner == obj.id
            free = self.owner == 0  # an object grows over unlabelled points only
        if not inside.any():
            raise InputError(f"{what} is empty: nothing to {'shrink' if shrink else 'grow'}")
        if shrink:
            chosen = near(self.xyz, source=~inside, probe=inside, radius=float(radius))
        else:
            chosen = near(self.xyz, source=inside, probe=free, radius=float(radius))
        if chosen is None:
            raise InputError(f"{what} has no {'outside' if shrink else 'free'} points left to "
                             f"{'shrink from' if shrink else 'grow into'}")
        if chosen.size == 0:
            edge = "edge" if shrink else "points"
            raise InputError(f"no point lies within {radius:.4g} of {what}'s {edge}; try a larger radius")
        return self._record_edit(chosen, not shrink, target, "shrink" if shrink else "grow", save)

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
        label = clean_text(label, "class", DEFAULT_CLASS)
        stuff = self.stuff_object(label)  # a stuff class has one object: the mask joins it
        name = clean_text(name, "name", label if self.is_stuff(label) else f"object {oid}")
        indices = np.flatnonzero(mask).astype(np.int64)
        owners = self.owner[indices]
        taken = (owners != 0) & (owners != (stuff.id if stuff else 0))
        if taken.any():
            ids, counts = np.unique(owners[taken], return_counts=True)
            if overlap is None:
                raise OverlapError({int(i): int(c) for i, c in zip(ids, counts, strict=True)})
            if overlap == "keep":
                indices = indices[~taken]
                if indices.size == 0:
                    raise InputError("every point of the mask already belongs to an object")
        target = stuff.id if stuff is not None else oid
        before = self.owner[indices].copy()
        touched = (set(np.unique(before).tolist()) - {0}) | ({target} if stuff is not None else set())
        objects_before = {i: (self.objects[i].name, self.objects[i].label) for i in touched}
        objects_after = {i: v for i, v in objects_before.items()  # objects left without points go
                         if i == target or (self.owner == i).sum() > (before == i).sum()}
        objects_after[target] = (stuff.name, stuff.label) if stuff is not None else (name, label)
        change = ObjectsChange("accept", target, indices, before, np.full(indices.size, target, np.int32),
                               objects_before, objects_after,
                               (self.next_id, self.next_id + (stuff is None)),
                               mask=Edit(np.flatnonzero(mask).astype(np.int64), True, "select"))
        self._apply_objects(change, forward=True)
        # the mask is done: its clicks and edits leave the history (undo gives the mask back as one edit)
        self.steps = [e for e in self.steps if isinstance(e, OBJECT_ENTRIES)]
        self._push_object_entry(change)
        self.redo_steps.clear()
        self._changed()
        return self.objects[target]

    def is_stuff(self, label: str) -> bool:
        """Stuff (no instances): every class in semantic mode, else classes marked so in the class map."""
        entry = None if self.class_map is None else self.class_map.get(label)
        return self.semantic or (entry is not None and entry.stuff)

    def stuff_object(self, label: str) -> LabelledObject | None:
        """The one object of a stuff class, when it exists (None for thing classes)."""
        if not self.is_stuff(label):
            return None
        return next((o for o in self.objects.values() if o.label == label), None)

    def _class_color(self, name: str, cid: int) -> list[int]:
        entry = None if self.class_map is None else self.class_map.get(name)
        return list(entry.color) if entry is not None else label_colors(np.array([cid]))[0].tolist()

    def _use_class(self, label: str) -> None:
        if label not in self.classes:
            self.classes.append(label)
        if self.class_map is not None:
            self.class_map.extend([label])

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
            self._use_class(obj.label)
        self._changed()
        return obj

    @_atomic
    def delete_object(self, oid) -> None:
        """Delete an object; its points become unlabelled (its id is never reused). Undoable."""
        obj = self._object(oid)
        n = obj.indices.size
        change = ObjectsChange("delete", obj.id, obj.indices.copy(), np.full(n, obj.id, np.int32),
                               np.zeros(n, np.int32), {obj.id: (obj.name, obj.label)}, {},
                               (self.next_id, self.next_id))
        self._apply_objects(change, forward=True)
        self._push_object_entry(change)
        self.redo_steps.clear()
        self._changed()

    # ------------------------------------------------------------------------------- labels

    def instance_labels(self) -> np.ndarray:
        """(N,) int32 object id per point, -1 where unlabelled."""
        return np.where(self.owner > 0, self.owner, -1).astype(np.int32)

    def class_ids(self) -> dict[str, int]:
        """Class name -> id: the class map's, or numbered from 1 in order of first use (stable across
        deletions) when there is no class map."""
        if self.class_map is not None:
            return {name: self.class_map.get(name).id for name in self.classes}
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
            **({} if self.class_map is None else {"class_map": self.class_map.to_list()}),
            **({"mode": "semantic"} if self.semantic else {}),
            "next_id": self.next_id,
            "objects": [{"id": o.id, "name": o.name, "class": o.label, "num_points": int(o.indices.size),
                         "points": self._points_text(o)}
                        for o in self.objects.values()],
            "pending": [self._saved_entry(s) for s in self.steps if not isinstance(s, OBJECT_ENTRIES)],
        }

    def _saved_entry(self, entry: Step | Edit):
        if isinstance(entry, Edit):
            if not entry.saved:
                entry.saved = encode_indices(entry.indices, self.num_points)
            return {"edit": "add" if entry.add else "remove", "tool": entry.tool, "points": entry.saved}
        return [entry.click.index, int(entry.click.positive), entry.selected]

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
        steps = [(s, s.logits, s.scores, s.selected) if isinstance(s, Step) else (s, None, None, None)
                 for s in (*self.steps, *self.redo_steps)]
        objects = [(o, o.name, o.label, o.indices) for o in self.objects.values()]
        return (steps, len(self.steps), objects, list(self.classes), self.next_id, self.revision,
                dict(self._encoded), None if self.class_map is None else list(self.class_map.entries))

    def _rollback(self, snapshot: tuple) -> None:
        steps, num_steps, objects, classes, next_id, revision, encoded, class_entries = snapshot
        if self.class_map is not None:
            self.class_map.entries = class_entries
        for step, logits, scores, selected in steps:
            if isinstance(step, Step):
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
        steps = self._click_steps()
        step = steps[-1] if steps else None
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
            "history": [_describe(s) for s in self.steps],
            "mask_edits": sum(isinstance(s, Edit) for s in self.steps),
            "redo": [_describe(s) for s in self.redo_steps],
            "candidates": [] if step is None else [
                {"score": round(float(s), 4), "num_points": step.logits.positives(k)}
                for k, s in enumerate(step.scores)],
            "selected": None if step is None else step.selected,
            "mask_points": 0 if mask is None else int(mask.sum()),
            "classes": [{"id": ids[c], "name": c, "color": self._class_color(c, ids[c])}
                        for c in self.classes],
            "palette": None if self.class_map is None else self.class_map.to_list(),
            "mode": "semantic" if self.semantic else "instance",
            "unknown_classes": list(self.unknown_classes),
            "objects": [{"id": o.id, "name": o.name, "class": o.label, "class_id": ids[o.label],
                         "num_points": int(o.indices.size), "color": colors[k].tolist()}
                        for k, o in enumerate(sorted(self.objects.values(), key=lambda o: o.id))],
        }


def _describe(entry: HistoryEntry) -> str:
    """A history entry in a few words, for the page's undo list."""
    if isinstance(entry, Step):
        return f"{'positive' if entry.click.positive else 'negative'} click on point {entry.click.index}"
    if isinstance(entry, ObjectsChange):
        name, label = (entry.objects_after if entry.kind == "accept" else entry.objects_before)[entry.target]
        return f"{entry.kind} object #{entry.target} ({name}, {label}, {entry.indices.size} points)"
    verb = "add" if entry.add else "remove"
    where = "mask" if isinstance(entry, Edit) else f"object #{entry.target}"
    return f"{entry.tool}: {verb} {entry.indices.size} points ({where})"
