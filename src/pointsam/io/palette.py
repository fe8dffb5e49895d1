"""A fixed, deterministic colour palette for visualising integer labels."""

from __future__ import annotations

import colorsys

import numpy as np

_BASE = np.array(
    [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
        [140, 86, 75], [227, 119, 194], [188, 189, 34], [23, 190, 207], [174, 199, 232],
        [255, 187, 120], [152, 223, 138], [255, 152, 150], [197, 176, 213], [196, 156, 148],
        [247, 182, 210], [219, 219, 141], [158, 218, 229], [57, 59, 121], [99, 121, 57],
    ],
    dtype=np.uint8,
)
#: Colour of negative labels (unlabelled / ignore).
UNLABELLED = np.array([128, 128, 128], dtype=np.uint8)


def _extended(k: int) -> np.ndarray:
    """Colour for label k >= 20: golden-ratio hue steps, deterministic."""
    hue = (k * 0.618033988749895) % 1.0
    sat = 0.55 + 0.35 * ((k // 7) % 2)
    val = 0.95 - 0.25 * ((k // 3) % 2)
    return np.array([round(c * 255) for c in colorsys.hsv_to_rgb(hue, sat, val)], dtype=np.uint8)


def label_colors(labels: np.ndarray) -> np.ndarray:
    """(N,3) uint8 colours for integer (or bool) labels; negative labels are grey."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    out = np.empty((len(labels), 3), dtype=np.uint8)
    out[:] = UNLABELLED
    for value in np.unique(labels[labels >= 0]):
        k = int(value)
        out[labels == value] = _BASE[k] if k < len(_BASE) else _extended(k)
    return out
