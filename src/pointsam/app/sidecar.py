"""The annotation sidecar file: a versioned JSON document written atomically (and fsynced) on every change."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zlib
from pathlib import Path

import numpy as np

from pointsam.errors import FileFormatError
from pointsam.utils.files import atomic_output

FORMAT = "pointsam-annotation"
VERSION = 1
MAX_SIDECAR_BYTES = 256 * 1024 * 1024  # far above any real session (objects are compressed bitmasks)


def folder_is_writable(folder: Path) -> bool:
    """The folder may be written to and is not marked read-only (root may write anywhere, but a folder
    whose mode bits say read-only is meant to stay clean)."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def default_sidecar(input_path: Path) -> Path:
    """`INPUT.pointsam.json` beside the input, or in the current folder when that folder is read-only."""
    beside = input_path.with_name(input_path.name + ".pointsam.json")
    if folder_is_writable(input_path.resolve().parent):
        return beside
    return Path.cwd() / beside.name


def fingerprint(xyz: np.ndarray) -> str:
    """A content hash of the point coordinates, to tell whether a sidecar belongs to this cloud."""
    arr = np.ascontiguousarray(xyz)
    digest = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    digest.update(memoryview(arr).cast("B"))
    return "sha256:" + digest.hexdigest()


def encode_indices(indices: np.ndarray, num_points: int) -> str:
    """Point indices as base64 of a zlib-compressed bitmask over the cloud (compact for any mask size)."""
    bits = np.zeros(num_points, dtype=bool)
    bits[indices] = True
    return base64.b64encode(zlib.compress(np.packbits(bits).tobytes(), 6)).decode("ascii")


def decode_indices(text: str, num_points: int) -> np.ndarray:
    """Inverse of `encode_indices`: sorted int64 point indices. Inflates at most the expected size, so a
    zlib bomb is refused without being inflated."""
    expected = (num_points + 7) // 8
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.b64decode(text, validate=True), expected + 1)
        if len(data) <= expected:
            data += inflater.flush()
    except (ValueError, TypeError, zlib.error) as exc:
        raise ValueError(f"undecodable point set ({exc})") from exc
    if len(data) > expected:
        raise ValueError(f"point set holds more bits than expected ({num_points}, one per point)")
    if not inflater.eof:
        raise ValueError("undecodable point set (truncated data)")
    if len(data) != expected:
        raise ValueError(f"point set holds {len(data) * 8} bits, expected {num_points} (one per point)")
    packed = np.frombuffer(data, dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(packed)[:num_points]).astype(np.int64)


def write_sidecar(path: Path, document: dict) -> None:
    """Write the document atomically: a temporary file, fsync, then rename over the old one."""
    data = json.dumps(document, indent=1).encode("utf-8")
    with atomic_output(path, overwrite=True) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def read_sidecar(path: Path) -> dict:
    """Read and sanity-check a sidecar; a clear `FileFormatError` when it is not one (or is too big)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read the annotation file ({exc})") from exc
    if size > MAX_SIDECAR_BYTES:
        raise FileFormatError(
            f"{path}: {size:,} bytes is over the {MAX_SIDECAR_BYTES // 2**20} MB limit of an annotation "
            "file; it is damaged or not one: move it away or pass another --labels FILE")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise FileFormatError(
            f"{path}: not a readable pointsam annotation file ({exc}); move it away or pass another "
            "--labels FILE"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise FileFormatError(
            f"{path}: exists but is not a pointsam annotation file (no \"format\": \"{FORMAT}\"); "
            "refusing to overwrite it: pass another --labels FILE"
        )
    if document.get("version") != VERSION:
        raise FileFormatError(
            f"{path}: annotation file version {document.get('version')!r} is not supported "
            f"(this pointsam reads version {VERSION})"
        )
    return document
