"""How many CPU threads pointsam computes with, chosen once per process.

torch's default (one thread per logical CPU) oversubscribes the machine when hyper-threads share
cores or other processes are busy: threads that wait on each other made a 4.6 s encode take 24-30 s.
`choose_threads` picks the physical cores this process may use, minus those other processes keep
busy; `POINTSAM_THREADS` or `--threads N` override it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

ENV_VAR = "POINTSAM_THREADS"


def usable_cpus() -> set[int]:
    """Logical CPUs this process may run on (its affinity mask)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS / Windows
        return set(range(os.cpu_count() or 1))


def _cgroup_cpu_limit() -> int | None:
    """The container's CPU quota rounded up (cgroup v2 `cpu.max`), or None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def physical_cores(cpus: set[int] | None = None) -> int:
    """Physical cores among `cpus` (default: the usable ones): hyper-thread siblings count once."""
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text()
                      .strip())
        except OSError:
            cores.add(str(cpu))  # no topology information: count logical CPUs
    limit = _cgroup_cpu_limit()
    return max(1, min(len(cores), limit) if limit else len(cores))


def busy_cpus(cpus: set[int] | None = None) -> float:
    """Estimated CPUs among `cpus` that other processes keep busy (1-minute load, spread evenly)."""
    cpus = usable_cpus() if cpus is None else cpus
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0
    return load * len(cpus) / max(os.cpu_count() or 1, len(cpus))


def choose_threads(requested: int | None = None) -> int:
    """Threads to compute with: `requested`, else $POINTSAM_THREADS, else $OMP_NUM_THREADS, else the
    free physical cores (at least 1), split between the ranks of a torchrun job on this machine."""
    from pointsam.errors import InputError

    if requested is not None:
        if requested < 1:
            raise InputError(f"--threads must be at least 1, got {requested}")
        return requested
    for var in (ENV_VAR, "OMP_NUM_THREADS"):
        text = os.environ.get(var, "").strip()
        if text:
            try:
                value = int(text)
            except ValueError:
                value = 0
            if value < 1:
                raise InputError(f"${var} must be a positive integer, got {text!r}")
            return value
    cpus = usable_cpus()
    free = physical_cores(cpus) - math.floor(busy_cpus(cpus))
    local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, free // max(1, local_ranks))


def set_threads(threads: int) -> int:
    """Make torch (and numba, when used) compute with `threads` threads; returns `threads`.

    Inter-op threads (parallel independent ops) are capped at the same number; torch allows setting
    that only before its first parallel work, so a later call leaves it as it was.
    """
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))  # read when numba is first imported
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # inter-op pool already started
    return threads
