"""Segment-everything settings recommended by a checkpoint (its "pointsam_amg" metadata).

A model's predicted IoUs and stability scores are calibrated by its training: the paper's defaults
suit the official weights, while a small model may need lower ones. A checkpoint may therefore store
its recommended `AutomaticMaskGenerator` thresholds as JSON under the safetensors metadata key
`pointsam_amg`, e.g. ``{"pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}``, and the size it
works best at: ``max_points`` (the working cloud's size), ``num_patches`` / ``patch_size`` (its
grouping) and ``views`` (view ensembling, `pointsam.views`). `amg_defaults` reads them and fills the
missing thresholds with the paper's defaults; explicit user values always win (the caller applies
them on top).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pointsam.errors import CheckpointError, InputError

__all__ = ["AMG_INT_KEYS", "AMG_KEYS", "AMG_METADATA_KEY", "PAPER_AMG_DEFAULTS", "amg_defaults",
           "amg_metadata", "parse_amg_metadata", "write_amg_metadata"]

AMG_METADATA_KEY = "pointsam_amg"
#: The paper's / official segment-everything defaults, as `AutomaticMaskGenerator` keywords.
PAPER_AMG_DEFAULTS: dict[str, float] = {"pred_iou_thresh": 0.7, "stability_score_thresh": 0.85}
#: Keys a checkpoint may recommend: the thresholds in [0, 1] of `AutomaticMaskGenerator`...
AMG_KEYS = ("pred_iou_thresh", "stability_score_thresh", "nms_iou_thresh")
#: ... and its working-cloud size, grouping and number of views (positive integers).
AMG_INT_KEYS = ("max_points", "num_patches", "patch_size", "views")


def _check(values: Any, where: str, error: type[Exception]) -> dict[str, float]:
    """Validate a mapping of AMG_KEYS to numbers in [0, 1] (floats) and AMG_INT_KEYS to positive
    integers; return it."""
    if not isinstance(values, Mapping):
        raise error(f"{where}: expected a JSON object of thresholds, got {values!r}")
    unknown = sorted(set(values) - set(AMG_KEYS) - set(AMG_INT_KEYS))
    if unknown:
        raise error(f"{where}: unknown keys {unknown}; known: {list(AMG_KEYS + AMG_INT_KEYS)}")
    out = {}
    for key, value in values.items():
        if key in AMG_INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31:
                raise error(f"{where}: {key} must be a positive integer, got {value!r}")
            out[key] = int(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not 0.0 <= value <= 1.0:
            raise error(f"{where}: {key} must be a number in [0, 1], got {value!r}")
        out[key] = float(value)
    return out


def amg_metadata(thresholds: Mapping[str, float]) -> dict[str, str]:
    """The metadata entry {"pointsam_amg": JSON} recommending `thresholds` (validated)."""
    return {AMG_METADATA_KEY: json.dumps(_check(thresholds, "thresholds", InputError), sort_keys=True)}


def parse_amg_metadata(metadata: Mapping[str, str], source: str = "checkpoint") -> dict[str, float]:
    """The thresholds a checkpoint's metadata recommends ({} when it has none)."""
    text = metadata.get(AMG_METADATA_KEY)
    if text is None:
        return {}
    try:
        values = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{source}: metadata {AMG_METADATA_KEY!r} is not valid JSON ({exc})") from exc
    return _check(values, f"{source}: metadata {AMG_METADATA_KEY!r}", CheckpointError)


def _file_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of `path` without reading its tensors ({} for .pt files)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix.lower() != ".safetensors":
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc


def amg_defaults(source: Any = None) -> dict[str, float]:
    """Segment-everything thresholds for a model: the paper's defaults updated by its recommendation.

    source: a checkpoint path, a metadata mapping, a model carrying `metadata` (a mapping, as set
    by the loader), or None for the bundled default model.
    """
    if source is None:
        from pointsam.checkpoint import default_model_path

        source = default_model_path()
    if isinstance(source, str | Path):
        metadata, name = _file_metadata(Path(source)), str(source)
    elif isinstance(source, Mapping):
        metadata, name = source, "checkpoint"
    else:
        metadata, name = getattr(source, "metadata", None) or {}, type(source).__name__
    return {**PAPER_AMG_DEFAULTS, **parse_amg_metadata(metadata, name)}


def write_amg_metadata(path: str | Path, thresholds: Mapping[str, float]) -> Path:
    """Store `thresholds` in the metadata of the safetensors file `path` (rewritten atomically)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"{path}: thresholds can only be stored in a .safetensors file")
    metadata = _file_metadata(path)
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata.update(amg_metadata(thresholds))
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path
