"""`TrainConfig`: hyper-parameters of a Point-SAM training run (defaults follow the official `large`)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pointsam.errors import InputError
from pointsam.modeling import PointSAMConfig
from pointsam.train.mixture import check_dataset_entries

__all__ = ["PRECISIONS", "TrainConfig"]

PRESETS = ("large", "giant", "base")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    """Training hyper-parameters; call `validate()` (done by `Trainer`) before use."""

    model: str = "large"  # PointSAMConfig preset name
    model_overrides: dict[str, Any] = field(default_factory=dict)
    num_points: int = 10000
    masks_per_cloud: int = 2
    prompt_iters: int = 5
    lr: float = 3e-4
    weight_decay: float = 0.1
    warmup_steps: int = 3000
    milestones: list[int] = field(default_factory=lambda: [400_000, 500_000])
    gamma: float = 0.1
    grad_accum: int = 1
    clip_value: float | None = 1.0
    batch_size: int = 2
    max_steps: int = 1000
    seed: int = 42
    log_every: int = 10
    ckpt_every: int = 1000
    out_dir: str = "runs/pointsam"
    augment: bool = True
    perturb: bool = True  # small x/z rotation; disable for scenes (ScanNet in the official code)
    precision: str = "auto"  # fp32, bf16 (autocast; losses in fp32) or auto: bf16 on CUDA, fp32 on CPU
    tensorboard: bool = True  # also log metrics to out_dir/tensorboard (needs the tensorboard package)
    # Mixture of datasets, each {"path", "split" (optional), "weight" (default 1), "perturb" (default
    # `perturb`)}, drawn proportionally to weight; `pointsam train --data DIR` replaces it.
    datasets: list[dict[str, Any]] = field(default_factory=list)
    # Click-2 fixes (tools/ISSUE10_ANALYSIS.md); the defaults keep the official recipe.
    iou_loss_all_candidates: bool = False  # regress all 3 first-click IoU predictions, not only the best's
    oracle_prompt_prob: float = 0.0  # per sample, feed the hindsight-best first-click mask forward instead

    def model_config(self) -> PointSAMConfig:
        """The `PointSAMConfig` of the model to train."""
        return PointSAMConfig.preset(self.model, **self.model_overrides)

    def validate(self) -> TrainConfig:
        """Check every field, raising `InputError` naming the bad one; return self."""
        errors: list[str] = []

        def need_int(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                errors.append(f"{name} must be an integer >= {low}, got {value!r}")

        for name, low in (("num_points", 1), ("masks_per_cloud", 1), ("prompt_iters", 1),
                          ("warmup_steps", 0), ("grad_accum", 1), ("batch_size", 1), ("max_steps", 0),
                          ("log_every", 1), ("ckpt_every", 1), ("seed", 0)):
            need_int(name, low)
        for name in ("lr", "weight_decay", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                errors.append(f"{name} must be a non-negative number, got {value!r}")
        if isinstance(self.lr, int | float) and not isinstance(self.lr, bool) and self.lr == 0:
            errors.append("lr must be positive, got 0")
        if self.clip_value is not None and (
            isinstance(self.clip_value, bool) or not isinstance(self.clip_value, int | float)
            or not self.clip_value > 0
        ):
            errors.append(f"clip_value must be a positive number or None, got {self.clip_value!r}")
        ms = self.milestones
        if not isinstance(ms, list | tuple) or not all(
            isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in ms
        ):
            errors.append(f"milestones must be a list of positive integers, got {ms!r}")
        elif list(ms) != sorted(set(ms)):
            errors.append(f"milestones must be strictly increasing, got {list(ms)}")
        if self.model not in PRESETS:
            errors.append(f"model must be one of {list(PRESETS)}, got {self.model!r}")
        elif not isinstance(self.model_overrides, dict):
            errors.append(f"model_overrides must be a dict, got {type(self.model_overrides).__name__}")
        else:
            try:
                self.model_config()
            except (TypeError, ValueError) as exc:
                errors.append(f"model_overrides: {exc}")
        if self.precision not in PRECISIONS:
            errors.append(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        p = self.oracle_prompt_prob
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            errors.append(f"oracle_prompt_prob must be a probability in [0, 1], got {p!r}")
        for name in ("augment", "perturb", "tensorboard", "iou_loss_all_candidates"):
            if not isinstance(getattr(self, name), bool):
                errors.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        errors += check_dataset_entries(self.datasets)
        if not isinstance(self.out_dir, str | Path) or not str(self.out_dir):
            errors.append(f"out_dir must be a non-empty path, got {self.out_dir!r}")
        if errors:
            raise InputError("invalid training config:\n  " + "\n  ".join(errors))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        data = dataclasses.asdict(self)
        data["out_dir"] = str(self.out_dir)
        data["milestones"] = list(self.milestones)
        data["datasets"] = [{k: str(v) if isinstance(v, Path) else v for k, v in d.items()}
                            for d in self.datasets]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys raise `InputError`."""
        if not isinstance(data, dict):
            raise InputError(f"training config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown TrainConfig fields: {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Load a `.json` or `.yaml`/`.yml` file (YAML needs the optional PyYAML, imported only here)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as exc:
                raise InputError(f"{path}: reading a YAML config needs PyYAML, which is not installed: "
                                 'pip install pyyaml (or pip install "pointsam[yaml]"), or write the '
                                 "config as .json") from exc
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InputError(f"{path}: invalid YAML: {exc}") from exc
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: invalid JSON: {exc}") from exc
        return cls.from_dict(data)
