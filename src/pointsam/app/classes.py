"""The annotation app's class palette: a class map (id, name, colour, keyboard key, stuff or thing) read from
and written to a JSON file, with built-in presets (ScanNet20, SemanticKITTI, ASPRS LAS).

File format: {"classes": [{"id": 5, "name": "chair", "color": [188, 189, 34], "key": "5", "stuff": false}]}
("key" and "stuff" are optional). A stuff class (road, floor, ...) has no instances: all of its points form
one object per file. TODO(lead): once pointsam.io.classmap (the shared class-map file of the exports)
lands, read and write through it here and keep only the presets and `extend`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pointsam.errors import FileFormatError, InputError
from pointsam.io.palette import label_colors

MAX_CLASS_ID = 65535  # SemanticKITTI .label keeps the class in 16 bits
MAX_CLASSES = 1000
RESERVED_KEYS = set("zyxcnlbrvgkhitfsw?[] ")  # the page's own shortcuts


@dataclass(frozen=True)
class ClassEntry:
    """One class: its id in exports, display name, RGB colour, keyboard key (or ""), stuff or thing."""

    id: int
    name: str
    color: tuple[int, int, int]
    key: str = ""
    stuff: bool = False


def _entry(raw, where: str) -> ClassEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object with id, name and color")
    cid, name, color = raw.get("id"), raw.get("name"), raw.get("color")
    if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= MAX_CLASS_ID:
        raise ValueError(f"{where}: id must be an integer in 0..{MAX_CLASS_ID}, got {cid!r}")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValueError(f"{where}: name must be text of 1..100 characters, got {name!r}")
    if color is None:
        color = label_colors([cid])[0].tolist()
    if (not isinstance(color, list) or len(color) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)):
        raise ValueError(f"{where} ({name}): color must be [r, g, b] with integers 0..255, got {color!r}")
    key = raw.get("key") or ""
    if not isinstance(key, str) or len(key) > 1 or (key and key.lower() in RESERVED_KEYS):
        raise ValueError(f"{where} ({name}): key must be one character that is not one of the page's own "
                         f"shortcuts ({''.join(sorted(RESERVED_KEYS)).strip()}), got {key!r}")
    stuff = raw.get("stuff", False)
    if not isinstance(stuff, bool):
        raise ValueError(f"{where} ({name}): stuff must be true or false, got {stuff!r}")
    return ClassEntry(cid, " ".join(name.split()), (color[0], color[1], color[2]), key, stuff)


class ClassMap:
    """An ordered list of classes with unique ids, names and keys."""

    def __init__(self, entries: list[ClassEntry] | tuple[ClassEntry, ...] = ()) -> None:
        self.entries: list[ClassEntry] = []
        for entry in entries:
            self.add(entry)

    def add(self, entry: ClassEntry) -> None:
        """Append a class; `InputError` when its id, name or key is already taken."""
        if len(self.entries) >= MAX_CLASSES:
            raise InputError(f"a class map holds at most {MAX_CLASSES} classes")
        for other in self.entries:
            if other.id == entry.id:
                raise InputError(f"class id {entry.id} is used twice ({other.name!r} and {entry.name!r})")
            if other.name == entry.name:
                raise InputError(f"class name {entry.name!r} is used twice (ids {other.id} and {entry.id})")
            if entry.key and other.key == entry.key:
                raise InputError(f"key {entry.key!r} is used twice ({other.name!r} and {entry.name!r})")
        self.entries.append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> ClassEntry | None:
        """The class called `name`, or None."""
        return next((e for e in self.entries if e.name == name), None)

    def extend(self, names) -> list[ClassEntry]:
        """Add every name not yet in the map with a fresh id (above the highest); returns the added ones."""
        added = []
        for name in names:
            if self.get(name) is None:
                cid = max((e.id for e in self.entries), default=0) + 1
                if cid > MAX_CLASS_ID:
                    raise InputError(f"no class ids left for {name!r} (at most {MAX_CLASS_ID})")
                entry = ClassEntry(cid, name, tuple(int(c) for c in label_colors([cid])[0]))
                self.add(entry)
                added.append(entry)
        return added

    def to_list(self) -> list[dict]:
        """JSON-ready entries."""
        return [{**asdict(e), "color": list(e.color)} for e in self.entries]

    @classmethod
    def from_list(cls, items, where: str = "class map") -> ClassMap:
        """Entries as in the file; `ValueError` naming the bad entry."""
        if not isinstance(items, list):
            raise ValueError(f"{where}: \"classes\" must be a list of classes")
        cmap = cls()
        for k, raw in enumerate(items):
            try:
                cmap.add(_entry(raw, f"{where}: class {k + 1}"))
            except InputError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return cmap


def load_class_map(path: Path) -> ClassMap:
    """Read a class-map JSON file; `FileFormatError` saying what is wrong and where."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FileFormatError(f"{path}: not a readable class map ({exc})") from exc
    if not isinstance(doc, dict) or "classes" not in doc:
        raise FileFormatError(f"{path}: a class map is a JSON object with a \"classes\" list")
    try:
        return ClassMap.from_list(doc["classes"], str(path))
    except ValueError as exc:
        raise FileFormatError(str(exc)) from None


def class_map_document(cmap: ClassMap) -> dict:
    """The JSON document of a class-map file."""
    return {"format": "pointsam-classes", "version": 1, "classes": cmap.to_list()}


def save_class_map(cmap: ClassMap, path: Path, overwrite: bool = True) -> None:
    """Write the class map as JSON (atomically)."""
    from pointsam.io.writers import atomic_output

    with atomic_output(Path(path), overwrite) as tmp:
        tmp.write_text(json.dumps(class_map_document(cmap), indent=1), encoding="utf-8")


def _preset(rows, stuff: set[str]) -> ClassMap:
    keys = "1234567890"
    return ClassMap([ClassEntry(cid, name, color, keys[k] if k < len(keys) else "", name in stuff)
                     for k, (cid, name, color) in enumerate(rows)])


SCANNET20 = [  # NYU40 ids as used by the ScanNet v2 benchmark, with its colours
    (1, "wall", (174, 199, 232)), (2, "floor", (152, 223, 138)), (3, "cabinet", (31, 119, 180)),
    (4, "bed", (255, 187, 120)), (5, "chair", (188, 189, 34)), (6, "sofa", (140, 86, 75)),
    (7, "table", (255, 152, 150)), (8, "door", (214, 39, 40)), (9, "window", (197, 176, 213)),
    (10, "bookshelf", (148, 103, 189)), (11, "picture", (196, 156, 148)), (12, "counter", (23, 190, 207)),
    (14, "desk", (247, 182, 210)), (16, "curtain", (219, 219, 141)), (24, "refrigerator", (255, 127, 14)),
    (28, "shower curtain", (158, 218, 229)), (33, "toilet", (44, 160, 44)), (34, "sink", (112, 128, 144)),
    (36, "bathtub", (227, 119, 194)), (39, "otherfurniture", (82, 84, 163)),
]
SEMANTIC_KITTI = [  # raw ids of .label files, colours of semantic-kitti.yaml (given there as BGR)
    (10, "car", (100, 150, 245)), (11, "bicycle", (100, 230, 245)), (15, "motorcycle", (30, 60, 150)),
    (18, "truck", (80, 30, 180)), (20, "other-vehicle", (0, 0, 255)), (30, "person", (255, 30, 30)),
    (31, "bicyclist", (255, 40, 200)), (32, "motorcyclist", (150, 30, 90)), (40, "road", (255, 0, 255)),
    (44, "parking", (255, 150, 255)), (48, "sidewalk", (75, 0, 75)), (49, "other-ground", (175, 0, 75)),
    (50, "building", (255, 200, 0)), (51, "fence", (255, 120, 50)), (70, "vegetation", (0, 175, 0)),
    (71, "trunk", (135, 60, 0)), (72, "terrain", (150, 240, 80)), (80, "pole", (255, 240, 150)),
    (81, "traffic-sign", (255, 0, 0)),
]
ASPRS_LAS = [  # LAS 1.4 standard point classes
    (1, "unclassified", (170, 170, 170)), (2, "ground", (166, 118, 61)),
    (3, "low vegetation", (148, 214, 91)),
    (4, "medium vegetation", (61, 173, 59)), (5, "high vegetation", (22, 110, 40)),
    (6, "building", (222, 76, 60)), (7, "low noise", (255, 0, 255)), (9, "water", (64, 136, 230)),
    (10, "rail", (120, 90, 160)), (11, "road surface", (90, 90, 90)), (13, "wire guard", (250, 230, 90)),
    (14, "wire conductor", (255, 200, 40)), (15, "transmission tower", (240, 140, 30)),
    (16, "wire connector", (200, 160, 60)), (17, "bridge deck", (160, 120, 100)),
    (18, "high noise", (255, 60, 255)),
]
PRESETS = {
    "scannet20": lambda: _preset(SCANNET20, {"wall", "floor"}),
    "semantickitti": lambda: _preset(SEMANTIC_KITTI, {
        "road", "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk",
        "terrain", "pole", "traffic-sign"}),
    "asprs": lambda: _preset(ASPRS_LAS, {
        "unclassified", "ground", "low vegetation", "medium vegetation", "high vegetation", "low noise",
        "water", "rail", "road surface", "high noise"}),
}


def resolve_class_map(value: str | Path) -> ClassMap:
    """`--classes VALUE`: a preset name (scannet20, semantickitti, asprs) or a class-map JSON file."""
    key = str(value).lower().replace("-", "").replace("_", "")
    if key in PRESETS and not Path(value).exists():
        return PRESETS[key]()
    if not Path(value).exists():
        raise InputError(f"--classes {value}: no such file, and not a preset ({', '.join(PRESETS)})")
    return load_class_map(Path(value))
