"""Device selection and torchrun/DDP set-up (gloo on CPU, nccl on GPU).

Under ``torchrun`` the usual RANK / WORLD_SIZE / LOCAL_RANK variables are set; a plain process is
rank 0 of 1. Only rank 0 writes files.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from ..errors import GenasError


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_gather(self, obj):
        if not self.distributed:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def agreed_digests(self, state: dict) -> list[str]:
        """Every rank's SHA-256 of ``state``; raises if the ranks disagree (a DDP consistency check)."""
        from .checkpoint import state_digest

        digests = self.all_gather(state_digest(state))
        if len(set(digests)) != 1:
            raise RuntimeError(f"distributed ranks ended with different weights: {digests}")
        return digests

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Make every rank's BN running statistics equal to rank 0's."""
        if self.distributed:
            for buf in module.buffers():
                dist.broadcast(buf, 0)


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise GenasError("--device cuda requested but no CUDA GPU is available; use --device cpu or auto")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise GenasError(f"unknown device {name!r}; use auto, cpu or cuda")


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group if there is one; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, dev)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def training_session(device: str = "auto") -> Iterator[DistContext]:
    """Set up this rank (:func:`setup`) for a training run whose per-epoch reseeding of the global
    torch RNG must not leak to the caller; tear down the process group afterwards."""
    ctx = setup(device)
    try:
        forks = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=forks):
            yield ctx
    finally:
        teardown(ctx)
