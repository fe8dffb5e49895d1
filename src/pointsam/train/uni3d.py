"""Initialise the point-cloud encoder from a Uni3D checkpoint, as the official `train.py` does.

Uni3D's `point_encoder.visual.*` (its EVA ViT) maps onto `pc_encoder.transformer.*`,
`point_encoder.encoder2trans.*` onto `pc_encoder.patch_proj.*` and `point_encoder.pos_embed.*` onto
`pc_encoder.pos_embed.*`. The PointNet patch encoder stays random: Uni3D's uses BatchNorm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from pointsam.checkpoint import read_state_dict
from pointsam.errors import CheckpointError
from pointsam.modeling import PointSAM

__all__ = ["UNI3D_PREFIXES", "Uni3DReport", "load_uni3d", "map_uni3d_keys"]

UNI3D_PREFIXES = (
    ("point_encoder.encoder2trans.", "patch_proj."),
    ("point_encoder.pos_embed.", "pos_embed."),
    ("point_encoder.visual.", "transformer."),
)


@dataclass
class Uni3DReport:
    """What `load_uni3d` did: `pc_encoder` keys loaded, skipped for their shape, and left as they were."""

    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # Uni3D keys with no Point-SAM counterpart
    not_loaded: list[str] = field(default_factory=list)  # pc_encoder keys Uni3D did not provide

    def summary(self) -> str:
        """A few human-readable lines."""
        def some(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f", ... ({len(keys)} in all)" if len(keys) > 4 else "")

        lines = [f"Uni3D: loaded {len(self.loaded)} pc_encoder tensors"]
        if self.shape_mismatch:
            lines.append(f"  skipped (shape differs): {some(self.shape_mismatch)}")
        lines.append(f"  kept as initialised: {len(self.not_loaded)} tensors"
                     + (f" ({some(self.not_loaded)})" if self.not_loaded else ""))
        lines.append(f"  Uni3D tensors not used: {len(self.unused)}")
        return "\n".join(lines)


def map_uni3d_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Uni3D keys renamed to `pc_encoder` keys, and the Uni3D keys that map to nothing."""
    mapped: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for key, value in state.items():
        bare = key.removeprefix("module.")
        for src, dst in UNI3D_PREFIXES:
            if bare.startswith(src):
                mapped[dst + bare[len(src):]] = value
                break
        else:
            unused.append(key)
    return mapped, unused


def load_uni3d(model: PointSAM, source: str | Path | dict[str, torch.Tensor]) -> Uni3DReport:
    """Copy the matching Uni3D tensors into `model.pc_encoder` (non-strict); return what was loaded.

    source: a Uni3D `model.pt` (its "module" state dict, read with weights_only=True) or a state dict.
    """
    state = read_state_dict(source)[0] if isinstance(source, str | Path) else source
    mapped, unused = map_uni3d_keys(state)
    target = model.pc_encoder.state_dict()
    report = Uni3DReport(unused=unused)
    with torch.no_grad():
        for key, value in mapped.items():
            if key not in target:
                report.unused.append(key)
            elif tuple(value.shape) != tuple(target[key].shape):
                report.shape_mismatch.append(f"{key} {tuple(value.shape)} vs {tuple(target[key].shape)}")
            else:
                target[key].copy_(value.to(target[key].dtype))
                report.loaded.append(key)
    if not report.loaded:
        raise CheckpointError(
            f"{source if not isinstance(source, dict) else 'the state dict'}: no Uni3D tensor matched the "
            "Point-SAM encoder (expected keys point_encoder.visual.* / encoder2trans.* / pos_embed.*; "
            f"{len(report.shape_mismatch)} had another shape)"
        )
    done = set(report.loaded)
    report.not_loaded = [k for k in target if k not in done]
    return report
