"""torch.distributed glue: one process per device under ``torchrun``; rank 0 writes all files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when this module started the process group (and must end it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> World:
    """Join the process group torchrun describes (env WORLD_SIZE > 1); gloo on CPU, nccl on CUDA."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True)


def device_for(device: str, world: World) -> str:
    """Each rank drives its own GPU (cuda:LOCAL_RANK); CPU ranks share the CPU."""
    if device == "cuda" and world.size > 1:
        torch.cuda.set_device(world.local_rank)
        return f"cuda:{world.local_rank}"
    return device


def sync_quantizer_state(model: nn.Module) -> None:
    """Broadcast rank 0's codebooks, usage statistics and normalisation statistics.

    k-means init, EMA updates and dead-code restarts change codebooks in place from each rank's own
    batch, outside the gradient all-reduce, and BatchNorm running statistics follow each rank's own
    batches; without this the ranks drift apart.
    """
    quantizer = getattr(model, "quantizer", None)
    if quantizer is None or not (dist.is_available() and dist.is_initialized()):
        return
    tensors = list(quantizer.parameters()) + list(quantizer.buffers())
    encoder = getattr(model, "encoder", None)
    if encoder is not None:
        tensors += list(encoder.buffers())
    for tensor in tensors:
        if tensor.dtype == torch.bool:  # not every backend broadcasts bool
            as_int = tensor.data.to(torch.uint8)
            dist.broadcast(as_int, src=0)
            tensor.data.copy_(as_int.bool())
        else:
            dist.broadcast(tensor.data, src=0)


def teardown(world: World) -> None:
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()
