"""The run folder of a training run: which files it owns, and the rule that keeps other runs safe.

A new run never writes into a folder that holds another run's files (`RUN_FILES`) unless told to
overwrite them; `--resume` continues the run whose checkpoint is there. Other files in the folder
are never touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pointsam.train.monitor import METRICS_FILE, TENSORBOARD_DIR

__all__ = ["CHECKPOINT_FILE", "MODEL_FILE", "RUN_FILES", "check_run_dir", "clear_run_files",
           "existing_run_files"]

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.safetensors"
RUN_FILES = (CHECKPOINT_FILE, MODEL_FILE, METRICS_FILE, TENSORBOARD_DIR)


def existing_run_files(out_dir: str | Path) -> list[Path]:
    """The files (or TensorBoard folder) of a run that already exist in `out_dir`."""
    out = Path(out_dir)
    return [out / name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]


def check_run_dir(out_dir: str | Path, resume: bool = False, overwrite: bool = False) -> None:
    """Raise unless a run may start in `out_dir`: FileExistsError for another run's files, or
    FileNotFoundError when resuming without a checkpoint. Nothing is deleted here."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out-dir {out} is a file, not a folder")
    if resume:
        if overwrite:
            raise FileExistsError("--resume continues the run in --out-dir; --overwrite would replace it: "
                                  "pass one of them")
        if not (out / CHECKPOINT_FILE).is_file():
            raise FileNotFoundError(f"--resume: no training checkpoint at {out / CHECKPOINT_FILE}")
        return
    existing = existing_run_files(out)
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing)
        raise FileExistsError(f"{out} holds another run's {names}: pass --resume to continue that run, "
                              "--overwrite to replace it, or choose another --out-dir (nothing was changed)")


def clear_run_files(out_dir: str | Path) -> list[Path]:
    """Delete the run files in `out_dir` (never anything else); return what was deleted."""
    removed = existing_run_files(out_dir)
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed
