"""Class maps: the id, name, colour, keyboard key, stuff flag (and ASPRS LAS code) of every class, shared
by the CLI, the annotation app (its palette) and the label exports. The one home of classes in pointsam.

A class-map file is JSON (``.json``) or YAML (``.yaml``/``.yml``)::

    {"format": "pointsam-classmap", "version": 1, "name": "my-labels",
     "classes": [{"id": 0, "name": "ground", "color": [120, 80, 40], "key": "1", "stuff": true, "las": 2},
                 {"id": 1, "name": "car", "color": [100, 150, 245]}]}

Only ``id`` and ``name`` are required: ``color`` defaults to the pointsam palette colour of the id,
``key`` (one keyboard character the app uses to pick the class) to none, ``stuff`` (a class without
instances, like road or floor: one object per file) to false, ``las`` (the ASPRS code written to LAS
``classification``) to the next user-definable code 64..255. ``classes`` may also be given on its own
(a list), files of the app's earlier ``pointsam-classes`` format are read, and a SemanticKITTI-style YAML
(``labels: {id: name}`` plus ``color_map: {id: [b, g, r]}``) is read as well. Label -1 always means
unlabelled.

Presets (``scannet20``, ``semantickitti``, ``asprs``) use each dataset's own ids: ScanNet20 is 0..19 in the
benchmark's class order (Pointcept's ``segment20``, as in the ScanNet scenes of the data), SemanticKITTI
the raw ids of its ``.label`` files, ASPRS the LAS 1.4 codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError, InputError
from pointsam.io.palette import UNLABELLED, label_colors

FORMAT = "pointsam-classmap"
#: Earlier format name of the annotation app's class-map files (still read).
OLD_FORMATS = ("pointsam-classes",)
#: First LAS 1.4 classification code that ASPRS leaves to users.
LAS_USER_CODES = 64
#: Largest class id: SemanticKITTI ``.label`` files keep the class in 16 bits.
MAX_CLASS_ID = 65535
MAX_CLASSES = 1000
#: Keys the annotation app's page uses itself, so a class cannot take them (see app/static/app.js).
RESERVED_KEYS = frozenset("zyxcnlbrvgkhitfsw?[] ")

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
    """One class: integer id (0..65535), unique name, RGB colour, optional ASPRS LAS code, keyboard key
    (one character or ""), and whether it is a stuff class (no instances)."""

    id: int
    name: str
    color: tuple[int, int, int]
    las: int | None = None
    key: str = field(default="", kw_only=True)
    stuff: bool = field(default=False, kw_only=True)

    def to_dict(self) -> dict:
        """The entry as written in a class-map file."""
        out: dict = {"id": self.id, "name": self.name, "color": list(self.color), "key": self.key,
                     "stuff": self.stuff}
        if self.las is not None:
            out["las"] = self.las
        return out


class ClassMap(Sequence[ClassEntry]):
    """An ordered list of classes with unique ids, names, keys and LAS codes; maps labels to colours and
    LAS codes. The app's palette grows it (`add`, `extend`); every change is checked."""

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, classes: Iterable[ClassEntry | Mapping] = (), name: str = "") -> None:
        self.name = str(name)
        self._entries: list[ClassEntry] = []
        self._by_id: dict[int, ClassEntry] = {}
        self._by_name: dict[str, ClassEntry] = {}
        for i, c in enumerate(classes):
            self.add(c, where=f"class {i + 1}")

    @classmethod
    def from_names(cls, names: Iterable[str], name: str = "", start: int = 0) -> ClassMap:
        """Classes ``start, start+1, ...`` with the given names and pointsam palette colours."""
        names = list(names)
        ids = np.arange(start, start + len(names))
        colors = label_colors(ids)
        return cls([ClassEntry(int(i), str(n), _rgb(c)) for i, n, c in zip(ids, names, colors, strict=True)],
                   name=name)

    @classmethod
    def from_list(cls, items: object, where: str = "class map") -> ClassMap:
        """Entries as in a file (a list of objects); `InputError` naming `where` and the bad entry."""
        if not isinstance(items, list):
            raise InputError(f"{where}: 'classes' must be a list of classes, got {type(items).__name__}")
        try:
            return cls(items)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None

    # ------------------------------------------------------------------------------ the list

    def add(self, entry: ClassEntry | Mapping, where: str = "class") -> ClassEntry:
        """Append a class (checked); `InputError` when it is malformed or its id, name, key or LAS code is
        already taken."""
        if len(self._entries) >= MAX_CLASSES:
            raise InputError(f"a class map holds at most {MAX_CLASSES} classes")
        raw = entry.to_dict() if isinstance(entry, ClassEntry) else entry
        entry = _entry(raw, where)
        for other in self._entries:
            if other.id == entry.id:
                raise InputError(f"class id {entry.id} is used twice ({other.name!r} and {entry.name!r})")
            if other.name == entry.name:
                raise InputError(f"class name {entry.name!r} is used twice (ids {other.id} and {entry.id})")
            if entry.key and other.key == entry.key:
                raise InputError(f"key {entry.key!r} is used twice ({other.name!r} and {entry.name!r})")
            if entry.las is not None and other.las == entry.las:
                raise InputError(f"LAS code {entry.las} is used twice ({other.name!r} and {entry.name!r})")
        self._entries.append(entry)
        self._by_id[entry.id] = entry
        self._by_name[entry.name] = entry
        return entry

    def extend(self, names: Iterable[str]) -> list[ClassEntry]:
        """Add every name not yet in the map with a fresh id (above the highest) and its palette colour;
        returns the added classes."""
        added = []
        for name in names:
            if self.get(name) is None:
                cid = max(self._by_id, default=0) + 1
                if cid > MAX_CLASS_ID:
                    raise InputError(f"no class ids left for {name!r} (at most {MAX_CLASS_ID})")
                added.append(self.add(ClassEntry(cid, name, _rgb(label_colors([cid])[0]))))
        return added

    @property
    def entries(self) -> list[ClassEntry]:
        """The classes in order (a copy); assigning a list replaces them, checked as in the constructor."""
        return list(self._entries)

    @entries.setter
    def entries(self, entries: Iterable[ClassEntry]) -> None:
        fresh = ClassMap(entries, name=self.name)
        self._entries, self._by_id, self._by_name = fresh._entries, fresh._by_id, fresh._by_name

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

    def get(self, name: str) -> ClassEntry | None:
        """The class called `name`, or None."""
        return self._by_name.get(name)

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

    def to_list(self) -> list[dict]:
        """The classes as written in a class-map file (JSON-ready)."""
        return [e.to_dict() for e in self._entries]

    def to_dict(self) -> dict:
        """The map as written in a class-map file."""
        return {"format": FORMAT, "version": 1, "name": self.name, "classes": self.to_list()}

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the map as ``.json`` or ``.yaml``/``.yml``, atomically, never replacing a file unasked."""
        from pointsam.utils.files import atomic_output

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


def _rgb(color) -> tuple[int, int, int]:
    return (int(color[0]), int(color[1]), int(color[2]))


def _int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InputError(f"{what} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


def _entry(raw: object, where: str) -> ClassEntry:
    """A checked class from its file form; `InputError` saying what is wrong with `where`."""
    if not isinstance(raw, Mapping) or "id" not in raw or "name" not in raw:
        raise InputError(f"{where} must be an object with at least 'id' and 'name', got {raw!r}")
    class_id = _int(raw["id"], f"{where}: id", 0, MAX_CLASS_ID)
    name = raw["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InputError(f"{where}: name must be text of 1..100 characters, got {name!r}")
    name = " ".join(name.split())
    where = f"{where} ({name})"
    color = raw.get("color", raw.get("colour"))
    if color is None:
        rgb = _rgb(label_colors(np.array([class_id]))[0])
    else:
        if (not isinstance(color, Sequence) or isinstance(color, str) or len(color) != 3
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255
                           for v in color)):
            raise InputError(f"{where}: color must be [r, g, b] with integers 0..255, got {color!r}")
        rgb = _rgb(color)
    las = raw.get("las")
    if las is not None:
        las = _int(las, f"{where}: las code", 0, 255)
    key = raw.get("key") or ""
    if not isinstance(key, str) or len(key) > 1 or (key and key.lower() in RESERVED_KEYS):
        raise InputError(f"{where}: key must be one character that is not one of the app's own "
                         f"shortcuts ({''.join(sorted(RESERVED_KEYS)).strip()}), got {key!r}")
    stuff = raw.get("stuff", False)
    if not isinstance(stuff, bool):
        raise InputError(f"{where}: stuff must be true or false, got {stuff!r}")
    return ClassEntry(class_id, name, rgb, las, key=key, stuff=stuff)


def class_map_from_dict(doc: object, name: str = "") -> ClassMap:
    """A class map from a parsed file: our format, a bare class list, or SemanticKITTI's labels/color_map."""
    if isinstance(doc, list):
        return ClassMap(doc, name=name)
    if not isinstance(doc, Mapping):
        raise InputError(f"a class map must be an object with a 'classes' list (or a list of classes), "
                         f"got {type(doc).__name__}")
    if "classes" in doc:
        if doc.get("format", FORMAT) not in (FORMAT, *OLD_FORMATS):
            raise InputError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        classes = doc["classes"]
        if not isinstance(classes, list):
            raise InputError(f"'classes' must be a list of classes, got {type(classes).__name__}")
        return ClassMap(classes, name=str(doc.get("name") or name))
    if "labels" in doc and isinstance(doc["labels"], Mapping):  # SemanticKITTI config (colours are BGR)
        bgr = doc.get("color_map") or {}
        if not isinstance(bgr, Mapping):
            raise InputError(f"'color_map' must map class ids to [b, g, r], got {type(bgr).__name__}")
        unknown = [k for k in bgr if k not in doc["labels"]]
        if unknown:
            raise InputError(f"color_map has class id(s) {_short(unknown)} that 'labels' does not list")
        classes = []
        for key, label in doc["labels"].items():
            entry = {"id": key, "name": label}
            if key in bgr:
                entry["color"] = list(bgr[key])[::-1]
            classes.append(entry)
        return ClassMap(classes, name=name)
    raise InputError("a class map needs a 'classes' list (or SemanticKITTI-style 'labels')")


def _preset_key(spec: str | Path) -> str:
    return str(spec).lower().replace("-", "").replace("_", "")


def load_class_map(spec: str | Path) -> ClassMap:
    """A preset (``scannet20``, ``semantickitti``, ``asprs``; case, ``-`` and ``_`` ignored) or a
    ``.json``/``.yaml`` class-map file; `FileFormatError` saying what is wrong and where."""
    path = Path(spec)
    if _preset_key(spec) in PRESETS and not path.is_file():
        return PRESETS[_preset_key(spec)]()
    if not path.is_file():
        raise FileFormatError(f"{spec}: no such file, and not a preset ({', '.join(PRESETS)})")
    ext = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not a readable class map ({exc})") from exc
    try:
        if ext in (".yaml", ".yml"):
            yaml = _yaml()
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise FileFormatError(f"{path}: not a readable class map: not valid YAML: {exc}") from exc
        elif ext == ".json":
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{path}: not a readable class map: not valid JSON: {exc}") from exc
        else:
            raise FileFormatError(f"{path}: a class map is .json, .yaml or .yml, not {ext or '(none)'!r}")
        return class_map_from_dict(doc, name=path.stem)
    except FileFormatError:
        raise
    except InputError as exc:
        raise FileFormatError(f"{path}: {exc}") from exc


# -------------------------------------------------------------------------------------- presets
#: Keyboard keys of the first ten classes of a preset.
_KEYS = "1234567890"


def scannet20() -> ClassMap:
    """ScanNet20: ids 0..19 in the benchmark's class order (Pointcept ``segment20``, as in the ScanNet
    scenes of the data and ``segment20.npy``), the benchmark's colours; wall and floor are stuff."""
    from pointsam.data.converters.scannet_pointcept import SCANNET20

    return ClassMap([ClassEntry(i, n, _SCANNET_RGB[n], key=_KEYS[i] if i < len(_KEYS) else "",
                                stuff=n in ("wall", "floor")) for i, n in enumerate(SCANNET20)],
                    name="scannet20")


#: The ScanNet benchmark's colours of its 20 classes.
_SCANNET_RGB = {
    "wall": (174, 199, 232), "floor": (152, 223, 138), "cabinet": (31, 119, 180), "bed": (255, 187, 120),
    "chair": (188, 189, 34), "sofa": (140, 86, 75), "table": (255, 152, 150), "door": (214, 39, 40),
    "window": (197, 176, 213), "bookshelf": (148, 103, 189), "picture": (196, 156, 148),
    "counter": (23, 190, 207), "desk": (247, 182, 210), "curtain": (219, 219, 141),
    "refrigerator": (255, 127, 14), "shower curtain": (158, 218, 229), "toilet": (44, 160, 44),
    "sink": (112, 128, 144), "bathtub": (227, 119, 194), "otherfurniture": (82, 84, 163),
}
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
_KITTI_KEYS = {"car": "1", "bicycle": "2", "motorcycle": "3", "truck": "4", "other-vehicle": "5",
               "person": "6", "bicyclist": "7", "motorcyclist": "8", "road": "9", "parking": "0"}
_KITTI_STUFF = {"unlabeled", "outlier", "road", "parking", "sidewalk", "other-ground", "building", "fence",
                "other-structure", "lane-marking", "vegetation", "trunk", "terrain", "pole", "traffic-sign"}


def semantickitti() -> ClassMap:
    """SemanticKITTI's raw label ids (lower 16 bits of a ``.label`` value), names and colours; 0 is its
    'unlabeled'. Ground, structures and vegetation are stuff."""
    from pointsam.data.converters.semantickitti import CLASS_NAMES

    return ClassMap([ClassEntry(i, n, _KITTI_RGB[i], _KITTI_LAS.get(i), key=_KITTI_KEYS.get(n, ""),
                                stuff=n in _KITTI_STUFF) for i, n in CLASS_NAMES.items()],
                    name="semantickitti")


#: Colours of the ASPRS classes (ground brown, vegetation greens, water blue, ...).
_ASPRS_RGB = {
    0: (120, 120, 120), 1: (170, 170, 170), 2: (166, 118, 61), 3: (148, 214, 91), 4: (61, 173, 59),
    5: (22, 110, 40), 6: (222, 76, 60), 7: (255, 0, 255), 9: (64, 136, 230), 10: (120, 90, 160),
    11: (90, 90, 90), 13: (250, 230, 90), 14: (255, 200, 40), 15: (240, 140, 30), 16: (200, 160, 60),
    17: (160, 120, 100), 18: (255, 60, 255),
}
_ASPRS_THINGS = {6, 13, 14, 15, 16, 17}  # buildings, wires, towers, bridges have instances


def asprs() -> ClassMap:
    """The ASPRS LAS 1.4 standard classes: id = LAS code, key = the code's digit (codes 1..9, 10 -> 0)."""
    return ClassMap([ClassEntry(code, name, _ASPRS_RGB[code], code,
                                key=str(code % 10) if 1 <= code <= 10 and code != 8 else "",
                                stuff=code not in _ASPRS_THINGS)
                     for code, name in ASPRS_CODES.items()], name="asprs")


PRESETS = {"scannet20": scannet20, "semantickitti": semantickitti, "asprs": asprs}
