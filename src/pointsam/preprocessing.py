"""The one home of input preprocessing: point checks, the colour rule, unit-sphere normalisation.

Used by inference (`PointCloudPredictor`), training (`train.sampling`), and the readers/writers in
`pointsam.io`, so a cloud is checked, coloured and normalised the same way everywhere.

Colour rule (every array given to pointsam): integer colours (uint8 or any integer type) are 0..255,
float colours are 0..1; anything else (float values above 1, negative, NaN) is an `InputError`
that says how to fix it. File readers decode what a file stores into this form (see `pointsam.io`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointsam.errors import InputError

__all__ = [
    "MAX_COORDINATE",
    "Normalization",
    "as_numpy",
    "check_labels",
    "check_rgb",
    "check_xyz",
    "colors_to_unit",
    "fit_unit_sphere",
    "normalize_points",
    "rgb_to_uint8",
]

#: Largest |coordinate| accepted: squared distances of larger values overflow float64.
MAX_COORDINATE = 1e150
# Points sampled (strided, deterministic) to check that normalisation keeps points apart.
_RESOLUTION_SAMPLE = 4096
# A far point counts as an outlier when it lies this many times farther than the median distance;
# outliers are refused when they shrink the rest of the cloud below this fraction of the sphere.
_OUTLIER_FACTOR = 1e3
_SPECK = 1e-4


def as_numpy(x, name: str) -> np.ndarray:
    """Convert an array-like (numpy, torch, list) to numpy, with a clear error otherwise."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be an array, got {type(x).__name__}: {exc}") from exc


def check_xyz(xyz, name: str = "xyz", *, min_points: int = 1, finite: bool = True) -> np.ndarray:
    """Point coordinates as a numeric (N, 3) array with N >= `min_points`, returned unconverted.

    With `finite` (the default) NaN/Inf coordinates and values beyond `MAX_COORDINATE` are refused
    with a message that says which points and what to do; readers pass finite=False to accept files
    that store NaN points (organised depth-camera clouds) and leave the decision to the consumer.
    """
    arr = as_numpy(xyz, name)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must have shape (N, 3), got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.shape[0] < max(min_points, 1):
        if arr.shape[0] == 0:
            raise InputError(f"{name} is empty: the point cloud has no points")
        raise InputError(f"{name} has {arr.shape[0]} point(s); at least {min_points} needed")
    if finite and arr.dtype.kind == "f":
        ok = np.isfinite(arr).all(axis=1)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            raise InputError(
                f"{name} has {bad.size} point(s) with NaN or Inf coordinates (first at index "
                f"{bad[0]}); remove them first, e.g. xyz[np.isfinite(xyz).all(1)]"
            )
    if finite:
        big = max(float(arr.max()), -float(arr.min()))  # no |arr| temporary for big clouds
        if big > MAX_COORDINATE:
            raise InputError(
                f"{name} has coordinates up to {big:.3g} in magnitude: beyond {MAX_COORDINATE:g} "
                "their squared distances overflow float64; rescale the cloud (e.g. to metres)"
            )
    return arr


def check_prompt_points(point_coords) -> np.ndarray:
    """Prompt coordinates as a finite numeric (Q, 3) array (a single (3,) point becomes (1, 3))."""
    pts = as_numpy(point_coords, "point_coords")
    if not (np.issubdtype(pts.dtype, np.floating) or np.issubdtype(pts.dtype, np.integer)):
        raise InputError(f"point_coords must hold numbers, got dtype {pts.dtype}")
    if pts.ndim == 1 and pts.shape == (3,):
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"point_coords must have shape (Q, 3), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError("point_coords contains NaN or Inf")
    return pts


def colors_to_unit(rgb, num_points: int | None = None) -> np.ndarray:
    """Colours as (N, 3) float32 in [0, 1] under the one colour rule (see the module docstring)."""
    arr = as_numpy(rgb, "rgb")
    if arr.ndim != 2 or arr.shape[1] != 3 or (num_points is not None and arr.shape[0] != num_points):
        want = "(N, 3)" if num_points is None else f"({num_points}, 3) to match xyz"
        raise InputError(f"rgb must have shape {want}, got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype.kind not in "iuf":
        raise InputError(f"rgb must be uint8 (0..255) or float (0..1), got dtype {arr.dtype}")
    if arr.size == 0:
        return arr.astype(np.float32)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError("rgb contains NaN or Inf")
    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            raise InputError(f"integer rgb must lie in 0..255, found {lo:g}..{hi:g}")
        return arr.astype(np.float32) / 255.0
    if lo < 0 or hi > 1:
        hint = ("; these look like 0..255 values: pass rgb.astype(np.uint8) or rgb / 255"
                if lo >= 0 and hi <= 255 else "")
        raise InputError(f"float rgb must lie in [0, 1], found {lo:g}..{hi:g}{hint}")
    return arr.astype(np.float32)


def check_rgb(rgb, num_points: int) -> np.ndarray:
    """Colours for `num_points` points, checked (shape, dtype, range) but returned as given, not converted:
    an (N, 3) array to keep (a big uint8 cloud is not copied); `InputError` saying what is wrong."""
    arr = as_numpy(rgb, "rgb")
    if arr.ndim != 2 or arr.shape != (num_points, 3):
        raise InputError(f"rgb must have shape ({num_points}, 3) to match xyz, got {arr.shape}")
    if arr.dtype != np.uint8:
        colors_to_unit(arr, num_points)  # refuse bad colours now, not at the first click
    return arr


def rgb_to_uint8(rgb) -> np.ndarray:
    """(N, 3) uint8 colours from any input the colour rule accepts (uint8 returned as is)."""
    arr = as_numpy(rgb, "rgb")
    if arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape[1] == 3:
        return arr
    return np.clip(np.rint(colors_to_unit(arr) * 255.0), 0, 255).astype(np.uint8)


def check_labels(labels, count: int) -> np.ndarray:
    """Prompt labels as int64: `count` values, each 1 (positive) or 0 (negative), or bools."""
    arr = as_numpy(labels, "point_labels").reshape(-1)
    if arr.shape[0] != count:
        raise InputError(f"got {count} prompt point(s) but {arr.shape[0]} label(s)")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
        raise InputError(
            f"point_labels must be 1 (positive/foreground) or 0 (negative/background), got "
            f"{np.unique(arr).tolist()}"
        )
    return arr.astype(np.int64)


def check_mask_input(mask_input, num_points: int) -> np.ndarray:
    """A mask prompt as (N,) numbers (logits), not copied or converted: callers convert only what they use."""
    raw = as_numpy(mask_input, "mask_input")
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise InputError(f"mask_input must hold numbers (logits), got dtype {raw.dtype}")
    mask = raw.reshape(-1)
    if mask.shape[0] != num_points:
        raise InputError(f"mask_input must hold one logit per point ({num_points}), got {raw.shape}")
    return mask


# ------------------------------------------------------------------------------ normalisation


@dataclass(frozen=True)
class Normalization:
    """Affine map from the cloud's coordinates to the unit sphere: (x - center) / scale."""

    center: np.ndarray  # (3,) float64
    scale: float

    def apply(self, xyz, dtype: type = np.float32) -> np.ndarray:
        """Map coordinates into the unit-sphere frame (computed in float64, returned as `dtype`)."""
        return ((np.asarray(xyz, dtype=np.float64) - self.center) / self.scale).astype(dtype)

    def invert(self, coords) -> np.ndarray:
        """Map unit-sphere coordinates back to the cloud's frame (float64)."""
        return np.asarray(coords, dtype=np.float64) * self.scale + self.center


def fit_unit_sphere(xyz, *, check: bool = True) -> Normalization:
    """Centre on the mean and scale by the largest distance (float64), as the official model expects.

    With `check` (inference), refuses with the reason clouds whose points all coincide, whose
    distances overflow, or that a few far outliers squeeze into a speck of the sphere. Without it
    (training, which must not stop on one odd cloud) a cloud of one point gets scale 1.
    """
    xyz64 = np.asarray(xyz, dtype=np.float64)
    if xyz64.ndim != 2 or xyz64.shape[1] != 3 or xyz64.shape[0] == 0:
        raise InputError(f"xyz must be a non-empty (N, 3) array, got {xyz64.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, in words
        center = xyz64.mean(axis=0)
        scale = float(np.sqrt(((xyz64 - center) ** 2).sum(axis=1).max()))
    if not check:
        return Normalization(center, scale if scale > 0 else 1.0)
    if not np.isfinite(scale):
        raise InputError(
            f"the cloud's extent overflows float64 (coordinates up to {np.abs(xyz64).max():.3g}); "
            "rescale the cloud (e.g. to metres)"
        )
    if scale == 0.0:
        raise InputError("all points of the cloud coincide: nothing to segment")
    norm = Normalization(center, scale)
    _check_resolution(xyz64, norm)
    return norm


def normalize_points(xyz) -> np.ndarray:
    """Unit-sphere coordinates as float64, never refusing a cloud (training's view of
    `fit_unit_sphere`; a cloud of one repeated point becomes all zeros)."""
    return fit_unit_sphere(xyz, check=False).apply(xyz, np.float64)


def _check_resolution(xyz64: np.ndarray, norm: Normalization) -> None:
    """Refuse a cloud that a few far outliers squeeze into a speck of the unit sphere, or whose
    distinct points merge once normalised to float32, saying why."""
    step = max(1, xyz64.shape[0] // _RESOLUTION_SAMPLE)
    distinct = np.unique(xyz64[::step], axis=0)  # duplicates would hide the cloud's spread
    if distinct.shape[0] < 3:
        return  # too few distinct points anyway: the consumer says so in its own terms
    middle = np.median(distinct, axis=0)
    half = float(np.median(np.sqrt(((distinct - middle) ** 2).sum(axis=1))))
    dist = np.sqrt(((xyz64 - middle) ** 2).sum(axis=1))
    far = float(dist.max())
    outliers = int((dist > _OUTLIER_FACTOR * half).sum()) if half > 0 else 0
    merged = np.unique(norm.apply(distinct), axis=0).shape[0]
    if outliers and half < _SPECK * far:
        raise InputError(
            f"{outliers} point(s) lie far from the rest of the cloud (the farthest at {far:.3g} from "
            f"its median point, while half of the points lie within {half:.3g}); scaled into the "
            "unit sphere, the rest of the cloud would shrink to a speck. Remove the outliers, e.g. "
            f"points farther than {_OUTLIER_FACTOR * half:.3g} from the median point"
        )
    if merged < 3:
        raise InputError(
            f"the cloud's points are too close together for its extent ({distinct.shape[0]} distinct "
            f"positions become {merged} once scaled into the unit sphere); check the units"
        )
