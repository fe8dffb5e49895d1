"""Data-parallel training under `torchrun`: process group set-up, rank helpers, teardown.

`torchrun --nproc_per_node G -m pointsam train ...` sets RANK, LOCAL_RANK and WORLD_SIZE (read by
`pointsam.utils.distributed.launch_env`); with WORLD_SIZE > 1 `init_distributed` joins the group
(`nccl` on CUDA, `gloo` on CPU) and picks cuda:LOCAL_RANK. Otherwise everything here is a no-op
for a single process.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from pointsam.errors import InputError
from pointsam.utils.distributed import DistInfo, dist_info, launch_env

__all__ = ["DistInfo", "all_gather_objects", "all_reduce_mean", "barrier", "dist_info", "init_distributed",
           "shutdown_distributed"]


def init_distributed(device: str | None = None) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if its env vars are set; return (info, this rank's device).

    device: "cpu", "cuda" or None (CUDA when available). A process already in a group keeps it.
    """
    env = launch_env()
    if not env.distributed:
        dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return dist_info(), dev
    rank, local, world = env.rank, env.local_rank, env.world_size
    kind = torch.device(device).type if device else ("cuda" if torch.cuda.is_available() else "cpu")
    if device and torch.device(device).index is not None:
        raise InputError(f"--device {device}: under torchrun each rank uses cuda:LOCAL_RANK; "
                         "pass --device cuda")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda but CUDA is not available")
        if local >= torch.cuda.device_count():
            raise InputError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA device(s) "
                             "are visible")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    elif kind == "cpu":
        dev = torch.device("cpu")
    else:
        raise InputError(f"distributed training supports cpu and cuda devices, not {kind!r}")
    if not dist.is_initialized():
        backend = "nccl" if kind == "cuda" else "gloo"
        if kind == "cuda":
            dist.init_process_group(backend, rank=rank, world_size=world, device_id=dev)
        else:
            dist.init_process_group(backend, rank=rank, world_size=world)
    return DistInfo(rank, local, world), dev


def shutdown_distributed() -> None:
    """Tear the process group down (after a final barrier) if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if dist_info().distributed:
        dist.barrier()


def all_reduce_mean(values: list[float], device: torch.device) -> list[float]:
    """Mean of `values` over the ranks (float64), unchanged when not distributed."""
    if not dist_info().distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order ([obj] when not distributed)."""
    info = dist_info()
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
