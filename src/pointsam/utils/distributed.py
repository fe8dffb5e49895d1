"""Where this process stands among data-parallel ranks: the one reader of torchrun's environment.

`torchrun` sets RANK, LOCAL_RANK and WORLD_SIZE for every process it starts; nothing else in
pointsam reads them. `launch_env` reports them (a single process when they are absent),
`dist_info` reports the initialised `torch.distributed` process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pointsam.errors import InputError

__all__ = ["ENV_VARS", "DistInfo", "dist_info", "launch_env"]

ENV_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistInfo:
    """Rank, local rank and world size of this process (0, 0, 1 when not distributed)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes logs, checkpoints and model files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True for more than one process."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from exc


def launch_env() -> DistInfo:
    """RANK / LOCAL_RANK / WORLD_SIZE as set by torchrun; (0, 0, 1) for those that are not set."""
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise InputError(f"inconsistent torchrun environment: RANK={rank}, LOCAL_RANK={local}, "
                         f"WORLD_SIZE={world} (need 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0)")
    return DistInfo(rank, local, world)


def dist_info() -> DistInfo:
    """This process's place in the initialised process group (a single process if there is none)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    rank = dist.get_rank()
    local = _env_int("LOCAL_RANK", rank)
    return DistInfo(rank, local, dist.get_world_size())
