"""A frame prior of more levels from a trained one (scripts/warm_start_frame_prior.py --levels).

Each token of the old levels keeps its embedding, head row, slot embedding and frame-input
columns, moved to its slot in the new flatten order (vqaudio/codes.py). The new levels' frame-input
columns start at zero, so the temporal transformer computes what it did and the slots before a
frame's first new token give the same logits; the new levels' other weights take their usual
initial values. The depth's
positions within a frame move, so the old levels' later slots start a little worse and relearn.
"""

from __future__ import annotations

import dataclasses

import torch

from ..codes import block_slots
from ..errors import ConfigError
from .frames import FramePrior


def with_more_levels(
    prior: FramePrior, level_strides: tuple[int, ...], seed: int = 0
) -> FramePrior:
    """``prior`` grown to model ``level_strides`` (its own strides followed by finer ones); the new
    weights are drawn with ``seed`` (the global generator is left as it was)."""
    if not isinstance(prior, FramePrior):
        raise ConfigError(f"only a frame prior can grow levels, not prior.kind {prior.config.kind}")
    old = prior.config
    strides = tuple(int(s) for s in level_strides)
    if len(strides) < old.num_levels or strides[: old.num_levels] != tuple(old.level_strides):
        raise ConfigError(
            f"level strides {list(strides)} must start with the prior's own "
            f"{list(old.level_strides)}"
        )
    new = dataclasses.replace(old, num_levels=len(strides), level_strides=strides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grown = FramePrior(new).to(prior.frame_start.device)
    state, fresh = prior.state_dict(), grown.state_dict()
    width, size = new.frame_embedding_dim, new.codebook_size
    old_slots = {key: j for j, key in enumerate(block_slots(old.level_strides))}
    moved = [
        (slot, old_slots[key])
        for slot, key in enumerate(block_slots(new.level_strides))
        if key in old_slots
    ]
    out = dict(state)
    embedding = fresh["token_embedding.weight"].clone()
    embedding[: old.vocab_size] = state["token_embedding.weight"][: old.vocab_size]
    embedding[new.vocab_size] = state["token_embedding.weight"][old.vocab_size]  # the start row
    frame_in = torch.zeros_like(fresh["frame_in.weight"])  # new levels: no input at first
    slots = fresh["slot_embedding.weight"].clone()
    for slot, before in moved:
        frame_in[:, slot * width : (slot + 1) * width] = state["frame_in.weight"][
            :, before * width : (before + 1) * width
        ]
        slots[slot] = state["slot_embedding.weight"][before]
    head = fresh["head.weight"].clone()
    head[: old.num_levels * size] = state["head.weight"]
    out.update(
        {
            "token_embedding.weight": embedding,
            "frame_in.weight": frame_in,
            "slot_embedding.weight": slots,
            "head.weight": head,
        }
    )
    grown.load_state_dict(out)
    return grown.train(prior.training)
