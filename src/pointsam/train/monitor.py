"""Where training metrics go: `metrics.jsonl`, TensorBoard event files and a tqdm progress bar.

Only the main rank creates a `RunMonitor` that writes anything; TensorBoard is optional (a missing
package gives one warning and the JSON-lines log goes on).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["METRICS_FILE", "TENSORBOARD_DIR", "RunMonitor", "open_tensorboard"]

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
_warned = False


def open_tensorboard(log_dir: Path, purge_step: int | None = None) -> Any | None:
    """A `SummaryWriter` on `log_dir`, or None (warning once) when TensorBoard cannot be imported."""
    global _warned
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # ImportError, or a protobuf/tensorboard version clash at import
        if not _warned:
            warnings.warn(f"TensorBoard logging is off ({exc}); install it with `pip install tensorboard`. "
                          "Metrics still go to metrics.jsonl.", stacklevel=2)
            _warned = True
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class RunMonitor:
    """Appends metrics to out_dir/metrics.jsonl, mirrors them to TensorBoard and drives a progress bar."""

    def __init__(self, out_dir: Path, start: int, end: int, tensorboard: bool = True,
                 progress: bool = False) -> None:
        from tqdm import tqdm

        out_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(out_dir / METRICS_FILE, "a", encoding="utf-8")
        # purge_step drops events a crashed run logged after the checkpoint it is resumed from.
        self.tb = open_tensorboard(out_dir / TENSORBOARD_DIR, start or None) if tensorboard else None
        self.bar = tqdm(total=end, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr,
                        disable=not progress)

    def update(self, metrics: dict[str, Any], write: bool) -> None:
        """Advance the bar; with `write`, log `metrics` (a dict with "step") to the file and TensorBoard."""
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", iou=f"{metrics['iou'][-1]:.3f}", refresh=False)
        if not write:
            return
        self.log.write(json.dumps(metrics) + "\n")
        self.log.flush()
        if self.tb is not None:
            step = metrics["step"]
            for key in ("loss", "loss_mask", "loss_iou", "lr", "time_s"):
                if key in metrics:
                    self.tb.add_scalar(f"train/{key}", metrics[key], step)
            for i, value in enumerate(metrics.get("iou", [])):
                self.tb.add_scalar(f"train/iou_iter_{i}", value, step)
            self.tb.flush()

    def close(self) -> None:
        """Close the bar, the log file and the TensorBoard writer."""
        self.bar.close()
        self.log.close()
        if self.tb is not None:
            self.tb.close()
