"""Class maps: the id, name, colour (and ASPRS LAS code) of every class, shared by CLI, app and exports.

A class-map file is JSON (``.json``) or YAML (``.yaml``/``.yml``)::

    {"format": "pointsam-classmap", "name": "my-labels",
     "classes": [{"id": 0, "name": "ground", "color": [120, 80, 40], "las": 2},
                 {"id": 1, "name": "car", "color": [100, 150, 245]}]}

``classes`` may also be given on its own (a list), and a SemanticKITTI-style YAML
(``labels: {id: name}`` plus ``color_map: {id: [b, g, r]}``) is read as well. ``color`` is
optional (the pointsam palette colour of the id is used); ``las`` is optional (the ASPRS code
written to LAS ``classification``; classes without one get a user-definable code 64..255).
Label -1 always means unlabelled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.palette import UNLABELLED, label_colors

FORMAT = "pointsam-classmap"
#: First LAS 1.4 classification code that ASPRS leaves to users.
LAS_USER_CODES = 64

#: ASPRS LAS 1.4 standard classification codes (R15, table 17).
ASPRS_CODES = {
    0: "never classified", 1: "unclassified", 2: "ground", 3: "low vegetation", 4: "medium vegetation",
    5: "high vegetation", 6: "building", 7: "low point (noise)", 9: "water", 10: "rail",
    11: "road surface", 13: "wire - guard (shield)", 14: "wire - conductor (phase)",
    15: "transmission tower", 16: "wire-structure connector (insulator)", 17: "bridge deck",
    18: "high noise",
}


@dataclass(frozen=True)
class ClassEntry:
    """One class: integer id (>= 0), unique name, RGB colour and optional ASPRS LAS code."""

    id: int
    name: str
    color: tuple[int, int, int]
    las: int | None = None

    def to_dict(self) -> dict:
        """The entry as written in a class-map file."""
        out: dict = {"id": self.id, "name": self.name, "color": list(self.color)}
        if self.las is not None:
            out["las"] = self.las
        return out


class ClassMap(Sequence[ClassEntry]):
    """An ordered list of classes with unique ids and names; maps labels to colours and LAS codes."""

    def __init__(self, classes: Iterable[ClassEntry | Mapping], name: str = "") -> None:
        entries = [c if isinstance(c, ClassEntry) else _entry(c, i) for i, c in enumerate(classes)]
        _check_unique([e.id for e in entries], "id")
        _check_unique([e.name for e in entries], "name")
        _check_unique([e.las for e in entries if e.las is not None], "LAS code")
        self.name = str(name)
        self._entries = tuple(entries)
        self._by_id = {e.id: e for e in entries}
        self._by_name = {e.name: e for e in entries}

    @classmethod
    def from_names(cls, names: Iterable[str], name: str = "", start: int = 0) -> ClassMap:
        """Classes ``start, start+1, ...`` with the given names and pointsam palette colours."""
        names = list(names)
        ids = np.arange(start, start + len(names))
        colors = label_colors(ids)
        return cls([ClassEntry(int(i), str(n), tuple(int(v) for v in c))
                    for i, n, c in zip(ids, names, colors, strict=True)], name=name)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> ClassEntry:  # type: ignore[override]
        return self._entries[index]

    def __iter__(self) -> Iterator[ClassEntry]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassMap) and self._entries == other._entries

    def __repr__(self) -> str:
        return f"ClassMap({self.name!r}, {len(self)} classes)"

    @property
    def ids(self) -> list[int]:
        """Class ids in file order."""
        return [e.id for e in self._entries]

    @property
    def names(self) -> list[str]:
        """Class names in file order."""
        return [e.name for e in self._entries]

    def by_id(self, class_id: int) -> ClassEntry:
        """The class with this id (InputError naming the known ids when there is none)."""
        try:
            return self._by_id[int(class_id)]
        except KeyError:
            raise InputError(f"class id {class_id} is not in class map {self.name!r} "
                             f"(ids: {_short(self.ids)})") from None

    def by_name(self, name: str) -> ClassEntry:
        """The class with this name (InputError naming the known names when there is none)."""
        try:
            return self._by_name[str(name)]
        except KeyError:
            raise InputError(f"class {name!r} is not in class map {self.name!r} "
                             f"(names: {_short(self.names)})") from None

    def ids_of(self, names: Iterable[str]) -> np.ndarray:
        """Class ids of class names (int64)."""
        return np.array([self.by_name(n).id for n in names], dtype=np.int64)

    def check_labels(self, labels: np.ndarray) -> np.ndarray:
        """Labels as int64, refusing ids the map does not know (-1, unlabelled, is allowed)."""
        labels = np.asarray(labels)
        if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
            raise InputError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
        labels = labels.astype(np.int64)
        unknown = sorted(set(np.unique(labels).tolist()) - set(self._by_id) - {-1})
        if unknown:
            raise InputError(f"labels {_short(unknown)} are not in class map {self.name!r} "
                             f"(ids: {_short(self.ids)})")
        return labels

    def colors(self, labels: np.ndarray) -> np.ndarray:
        """(N, 3) uint8 colours of `labels`; -1 is grey."""
        labels = self.check_labels(labels)
        out = np.empty((len(labels), 3), dtype=np.uint8)
        out[:] = UNLABELLED
        for value in np.unique(labels[labels >= 0]):
            out[labels == value] = self._by_id[int(value)].color
        return out

    # ---------------------------------------------------------------------------------- LAS

    def las_codes(self) -> dict[int, int]:
        """Class id -> LAS classification code: its ASPRS code, else the next free user code >= 64."""
        codes = {e.id: e.las for e in self._entries if e.las is not None}
        used = set(codes.values())
        free = (c for c in range(LAS_USER_CODES, 256) if c not in used)
        for e in self._entries:
            if e.las is None:
                code = next(free, None)
                if code is None:
                    raise InputError(f"class map {self.name!r} has more classes without an ASPRS "
                                     f"code than LAS has user codes ({256 - LAS_USER_CODES})")
                codes[e.id] = code
        return codes

    def to_las(self, labels: np.ndarray) -> np.ndarray:
        """LAS classification (uint8) of class labels; -1 becomes 0 ('created, never classified')."""
        labels = self.check_labels(labels)
        codes = self.las_codes()
        out = np.zeros(len(labels), dtype=np.uint8)
        for class_id, code in codes.items():
            out[labels == class_id] = code
        return out

    def from_las(self, classification: np.ndarray) -> np.ndarray:
        """Class labels (int64) of LAS codes; codes no class has become -1."""
        classification = np.asarray(classification).astype(np.int64)
        out = np.full(len(classification), -1, dtype=np.int64)
        for class_id, code in self.las_codes().items():
            out[classification == code] = class_id
        return out

    # ---------------------------------------------------------------------------------- files

    def to_dict(self) -> dict:
        """The map as written in a class-map file."""
        return {"format": FORMAT, "name": self.name, "classes": [e.to_dict() for e in self._entries]}

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the map as ``.json`` or ``.yaml``/``.yml``, atomically, never replacing a file unasked."""
        from pointsam.io.writers import atomic_output

        path = Path(path)
        ext = path.suffix.lower()
        if ext == ".json":
            text = json.dumps(self.to_dict(), indent=1) + "\n"
        elif ext in (".yaml", ".yml"):
            text = _yaml().safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        else:
            raise InputError(f"{path}: a class map is written as .json, .yaml or .yml, "
                             f"not {ext or '(none)'!r}")
        with atomic_output(path, overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return path


def _yaml():
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is a dependency, kept optional here
        raise InputError("reading or writing a YAML class map needs PyYAML: pip install pyyaml; "
                         "or use a .json class map") from exc
    return yaml


def _short(values: Sequence) -> str:
    values = list(values)
    return ", ".join(map(str, values[:12])) + (f", ... ({len(values)} in all)" if len(values) > 12 else "")


def _check_unique(values: list, what: str) -> None:
    seen, dup = set(), []
    for v in values:
        if v in seen and v not in dup:
            dup.append(v)
        seen.add(v)
    if dup:
        raise InputError(f"class map has duplicate class {what}(s): {_short(dup)}")


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InputError(f"{what} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def _entry(raw: Mapping, index: int) -> ClassEntry:
    if not isinstance(raw, Mapping) or "id" not in raw or "name" not in raw:
        raise InputError(f"class {index} must be an object with at least 'id' and 'name', got {raw!r}")
    class_id = _int(raw["id"], f"class {index}: id", 0, 2**31 - 1)
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"class {index}: name must be a non-empty string, got {name!r}")
    color = raw.get("color", raw.get("colour"))
    if color is None:
        rgb = tuple(int(v) for v in label_colors(np.array([class_id]))[0])
    else:
        if not isinstance(color, Sequence) or isinstance(color, str) or len(color) != 3:
            raise InputError(f"class {index} ({name}): color must be [r, g, b], got {color!r}")
        rgb = tuple(_int(v, f"class {index} ({name}): color value", 0, 255) for v in color)
    las = raw.get("las")
    if las is not None:
        las = _int(las, f"class {index} ({name}): las code", 0, 255)
    return ClassEntry(class_id, name, rgb, las)  # type: ignore[arg-type]


def class_map_from_dict(doc: object, name: str = "") -> ClassMap:
    """A class map from a parsed file: our format, a bare class list, or SemanticKITTI's labels/color_map."""
    if isinstance(doc, list):
        return ClassMap(doc, name=name)
    if not isinstance(doc, Mapping):
        raise InputError(f"a class map must be an object or a list of classes, got {type(doc).__name__}")
    if "classes" in doc:
        if doc.get("format", FORMAT) != FORMAT:
            raise InputError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        if not isinstance(doc["classes"], list):
            raise InputError("'classes' must be a list")
        return ClassMap(doc["classes"], name=str(doc.get("name") or name))
    if "labels" in doc and isinstance(doc["labels"], Mapping):  # SemanticKITTI config (colours are BGR)
        bgr = doc.get("color_map") or {}
        classes = []
        for key, label in doc["labels"].items():
            entry = {"id": key, "name": label}
            if key in bgr:
                entry["color"] = list(bgr[key])[::-1]
            classes.append(entry)
        return ClassMap(classes, name=name)
    raise InputError("a class map needs a 'classes' list (or SemanticKITTI-style 'labels')")


def load_class_map(spec: str | Path) -> ClassMap:
    """A preset (``scannet20``, ``semantickitti``, ``asprs``) or a ``.json``/``.yaml`` class-map file."""
    key = str(spec).lower()
    if key in PRESETS and not Path(spec).is_file():
        return PRESETS[key]()
    path = Path(spec)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such class-map file, and not a preset "
                              f"({', '.join(sorted(PRESETS))})")
    text = path.read_text(encoding="utf-8")
    ext = path.suffix.lower()
    try:
        if ext in (".yaml", ".yml"):
            yaml = _yaml()
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise FileFormatError(f"{path}: not valid YAML: {exc}") from exc
        elif ext == ".json":
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{path}: not valid JSON: {exc}") from exc
        else:
            raise FileFormatError(f"{path}: a class map is .json, .yaml or .yml, not {ext or '(none)'!r}")
        return class_map_from_dict(doc, name=path.stem)
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc


# -------------------------------------------------------------------------------------- presets


def scannet20() -> ClassMap:
    """ScanNet20 (the benchmark's 20 classes, ids 0..19 as in Pointcept ``segment20``)."""
    from pointsam.data.converters.scannet_pointcept import SCANNET20

    return ClassMap.from_names(SCANNET20, name="scannet20")


#: SemanticKITTI colours, RGB (the dataset's semantic-kitti.yaml stores them as BGR).
_KITTI_RGB = {
    0: (0, 0, 0), 1: (255, 0, 0), 10: (100, 150, 245), 11: (100, 230, 245), 13: (100, 80, 250),
    15: (30, 60, 150), 16: (0, 0, 255), 18: (80, 30, 180), 20: (0, 0, 255), 30: (255, 30, 30),
    31: (255, 40, 200), 32: (150, 30, 90), 40: (255, 0, 255), 44: (255, 150, 255), 48: (75, 0, 75),
    49: (175, 0, 75), 50: (255, 200, 0), 51: (255, 120, 50), 52: (255, 150, 0), 60: (150, 255, 170),
    70: (0, 175, 0), 71: (135, 60, 0), 72: (150, 240, 80), 80: (255, 240, 150), 81: (255, 0, 0),
    99: (50, 255, 255), 252: (100, 150, 245), 253: (255, 40, 200), 254: (255, 30, 30),
    255: (150, 30, 90), 256: (0, 0, 255), 257: (100, 80, 250), 258: (80, 30, 180), 259: (0, 0, 255),
}
#: SemanticKITTI classes that have an ASPRS LAS equivalent.
_KITTI_LAS = {0: 0, 40: 11, 50: 6, 70: 5, 72: 3, 1: 7}


def semantickitti() -> ClassMap:
    """SemanticKITTI's raw label ids (lower 16 bits of a ``.label`` value), names and colours."""
    from pointsam.data.converters.semantickitti import CLASS_NAMES

    return ClassMap([ClassEntry(i, n, _KITTI_RGB[i], _KITTI_LAS.get(i)) for i, n in CLASS_NAMES.items()],
                    name="semantickitti")


def asprs() -> ClassMap:
    """The ASPRS LAS 1.4 standard classes: id = LAS code."""
    colors = label_colors(np.array(list(ASPRS_CODES)))
    return ClassMap([ClassEntry(code, name, tuple(int(v) for v in c), code)
                     for (code, name), c in zip(ASPRS_CODES.items(), colors, strict=True)], name="asprs")


PRESETS = {"scannet20": scannet20, "semantickitti": semantickitti, "asprs": asprs}
