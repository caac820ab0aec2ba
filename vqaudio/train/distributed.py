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


def rank_device(device: str, local_rank: int, world_size: int) -> str:
    """The device of one rank: under torchrun (world_size > 1) a CUDA rank drives cuda:LOCAL_RANK
    whatever index ``device`` names (an explicit cuda:0 would put every rank on GPU 0); CPU
    ranks share the CPU; a single process keeps ``device`` as given."""
    if world_size > 1 and device.startswith("cuda"):
        return f"cuda:{local_rank}"
    return device


def setup(device: str) -> World:
    """Join the process group torchrun describes (env WORLD_SIZE > 1); gloo on CPU, nccl on CUDA.
    A CUDA rank selects its GPU before the group starts, so NCCL binds each rank to its own."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.startswith("cuda"):
        torch.cuda.set_device(rank_device(device, local_rank, size))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), local_rank, True)


def device_for(device: str, world: World) -> str:
    """This rank's device (``rank_device``), made the current CUDA device when it is one."""
    chosen = rank_device(device, world.local_rank, world.size)
    if world.size > 1 and chosen.startswith("cuda"):
        torch.cuda.set_device(chosen)
    return chosen


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


def average_gradients(module: nn.Module) -> None:
    """All-reduce and average ``module``'s gradients over the ranks, in one collective: for a
    module trained outside DDP (the adversarial discriminator), so every rank takes the same
    step from the same weights. A no-op outside a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:  # a parameter no loss reached gets a zero gradient, as DDP would average
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset : offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def broadcast_parameters(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (as DDP does when it wraps a module)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def teardown(world: World) -> None:
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()
