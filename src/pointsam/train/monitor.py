"""Where training metrics go: `metrics.jsonl`, TensorBoard event files and progress on stderr.

Only the main rank creates a `RunMonitor` that writes anything; TensorBoard is optional (a missing
package gives one warning and the JSON-lines log goes on). Progress is a tqdm bar on a terminal,
and otherwise (a log file, a batch job) one status line with the step time and ETA after the first
step, every `status_every_s` seconds and at the last step.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, TextIO

__all__ = ["METRICS_FILE", "STATUS_EVERY_S", "TENSORBOARD_DIR", "RunMonitor", "drop_steps_after",
           "format_duration", "open_tensorboard", "status_line"]

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
STATUS_EVERY_S = 60.0  # seconds between status lines when stderr is not a terminal
_warned = False


def format_duration(seconds: float) -> str:
    """A duration as "1h 02m", "3m 05s" or "12.3s"."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def status_line(metrics: dict[str, Any], end: int, steps_done: int, elapsed: float) -> str:
    """One progress line: step, loss, last-iteration IoU, time per step and ETA to `end`."""
    step = metrics["step"]
    per_step = elapsed / max(steps_done, 1)
    iou = metrics.get("iou") or [float("nan")]
    eta = format_duration(per_step * (end - step))
    return (f"step {step}/{end} ({100 * step / max(end, 1):.0f}%) loss {metrics['loss']:.4f} "
            f"iou {iou[-1]:.3f} | {format_duration(per_step)}/step, ETA {eta}")


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


def drop_steps_after(path: Path, step: int) -> None:
    """Remove the lines of a metrics log past `step` (logged by a run after the checkpoint it is
    resumed from), so that a resumed run logs every step once."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = []
    for line in lines:
        try:
            logged = json.loads(line).get("step")
        except (json.JSONDecodeError, AttributeError):
            logged = None
        if not isinstance(logged, int) or logged <= step:
            keep.append(line)
    if len(keep) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(keep), encoding="utf-8")
        tmp.replace(path)


class RunMonitor:
    """Appends metrics to out_dir/metrics.jsonl, mirrors them to TensorBoard and shows progress.

    progress: a tqdm bar when `stream` is a terminal, else status lines (see the module docstring).
    """

    def __init__(self, out_dir: Path, start: int, end: int, tensorboard: bool = True,
                 progress: bool = False, status_every_s: float = STATUS_EVERY_S,
                 stream: TextIO | None = None) -> None:
        from tqdm import tqdm

        out_dir.mkdir(parents=True, exist_ok=True)
        if start:
            drop_steps_after(out_dir / METRICS_FILE, start)
        self.log = open(out_dir / METRICS_FILE, "a", encoding="utf-8")
        # purge_step drops events a crashed run logged after the checkpoint it is resumed from.
        self.tb = open_tensorboard(out_dir / TENSORBOARD_DIR, start or None) if tensorboard else None
        self.stream = stream if stream is not None else sys.stderr
        terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = tqdm(total=end, initial=start, unit="step", dynamic_ncols=True, file=self.stream,
                        disable=not (progress and terminal))
        self.lines = progress and not terminal
        self.status_every_s = status_every_s
        self.start, self.end = start, end
        self.t0 = self.last_line = time.perf_counter()

    def update(self, metrics: dict[str, Any], write: bool) -> None:
        """Show progress; with `write`, log `metrics` (a dict with "step") to the file and TensorBoard."""
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", iou=f"{metrics['iou'][-1]:.3f}", refresh=False)
        if self.lines:
            now = time.perf_counter()
            done = metrics["step"] - self.start
            if done == 1 or metrics["step"] >= self.end or now - self.last_line >= self.status_every_s:
                print(status_line(metrics, self.end, done, now - self.t0), file=self.stream, flush=True)
                self.last_line = now
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
