"""Multi-process data-parallel training (DistributedDataParallel) started by ``torchrun``.

``torchrun --nproc_per_node N -m ei_tutorial.train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every process;
:func:`setup_distributed` reads them and joins the process group, with the NCCL
backend on CUDA and gloo on the CPU. Without them, training runs in one process.
Every process trains on its own shard of each epoch (DistributedSampler), gradients
are averaged across processes, and only rank 0 writes checkpoints and metrics.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from ei_tutorial.device import get_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: Global rank, 0 in a single process.
        world_size: Number of processes.
        local_rank: Rank on this machine; selects the CUDA device.
        device: Device this process computes on.
        owns_group: Whether :func:`setup_distributed` created the process group (and
            :func:`teardown_distributed` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, metrics and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer; check the torchrun command") from None


def choose_device(preference: str, local_rank: int = 0) -> torch.device:
    """Return the device named by a config's ``device`` key.

    Args:
        preference: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``.
        local_rank: With ``"auto"`` or ``"cuda"`` and several processes per machine,
            the CUDA device index of this process.

    Raises:
        ValueError: If CUDA or MPS is requested but not available.
    """
    if preference == "auto":
        device = get_device()
    else:
        device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={preference!r} but CUDA is not available; use device=cpu or device=auto")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    if device.type == "mps" and not (torch.backends.mps.is_available()):
        raise ValueError(f"device={preference!r} but MPS is not available; use device=cpu or device=auto")
    return device


def setup_distributed(device_preference: str = "auto") -> DistributedContext:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        device_preference: The config's ``device`` key.

    Returns:
        The context of this process. With ``WORLD_SIZE`` unset or 1, a single-process
        context and no process group.

    Raises:
        ValueError: If the environment variables are malformed or a requested device
            is missing.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = choose_device(device_preference, local_rank)
    if world_size <= 1:
        return DistributedContext(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        logger.info("joined process group: rank %d of %d, backend %s, device %s", rank, world_size, backend, device)
    return DistributedContext(rank, world_size, local_rank, device, owns_group)


def teardown_distributed(context: DistributedContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum ``tensor`` in place over all processes (no-op in a single process) and return it."""
    if context.distributed:
        dist.all_reduce(tensor)
    return tensor


def broadcast_object(value: object, context: DistributedContext, src: int = 0) -> Optional[object]:
    """Return rank ``src``'s ``value`` on every process (the value itself in a single process)."""
    if not context.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
