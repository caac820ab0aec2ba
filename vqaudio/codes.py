"""Codes: per-level code indices, and the ONE flatten order shared by priors and bitstreams.

Order: tokens sorted by (start time, level). Because each level's stride divides the coarser one's,
this is a depth-first walk of each coarse frame's tree: a frame's token comes right before the
tokens of the finer frames it covers. Strides (4, 2, 1) give 1 + 2 + 4 = 7 tokens per coarse frame:
L0[0] L1[0] L2[0] L2[1] L1[1] L2[2] L2[3]. In a token sequence level k owns ids
``k * codebook_size ... (k + 1) * codebook_size - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=64)
def _block_order(strides: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(level, frame offset within the block) of each token of one coarse frame, in order."""
    block = strides[0]
    items = []
    for level, stride in enumerate(strides):
        for j in range(block // stride):
            items.append((j * stride, level, j))
    items.sort()
    return tuple(i[1] for i in items), tuple(i[2] for i in items)


def tokens_per_block(strides: tuple[int, ...]) -> int:
    """Tokens per coarse frame (one 'block') in the flatten order."""
    return sum(strides[0] // s for s in strides)


def token_levels(strides: tuple[int, ...]) -> Tensor:
    """Level of each position within a block, shape (tokens_per_block,)."""
    return torch.tensor(_block_order(tuple(strides))[0], dtype=torch.long)


def block_slots(strides: tuple[int, ...]) -> list[tuple[int, int]]:
    """(level, that level's frame index within the block) of each position within a block."""
    return list(zip(*_block_order(tuple(strides)), strict=True))


@dataclass
class Codes:
    """Code indices of one or more signals.

    ``levels[k]`` is a LongTensor (B, num_blocks * strides[0] // strides[k]) of level k's indices,
    coarse -> fine. ``strides`` are the level strides of the levels present (a prefix of the
    codec's). ``num_samples`` is the audio length the codes stand for (before block padding).
    """

    levels: list[Tensor]
    strides: tuple[int, ...]
    num_samples: int | None = None

    def __post_init__(self) -> None:
        self.strides = tuple(int(s) for s in self.strides)
        if not self.levels or len(self.levels) != len(self.strides):
            raise ValueError(
                f"Codes needs one tensor per level stride; got {len(self.levels)} tensors for "
                f"strides {list(self.strides)}"
            )
        for k, (level, stride) in enumerate(zip(self.levels, self.strides)):
            if level.dim() != 2:
                raise ValueError(f"Codes level {k} has shape {tuple(level.shape)}; expected (B, T)")
            frames = self.num_blocks * (self.strides[0] // stride)
            if level.shape[1] != frames:
                raise ValueError(
                    f"Codes level {k} (stride {stride}) has {level.shape[1]} frames; expected "
                    f"{frames}: {self.num_blocks} coarse frames × {self.strides[0] // stride}"
                )

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def batch_size(self) -> int:
        return self.levels[0].shape[0]

    @property
    def num_blocks(self) -> int:
        """Coarse frames."""
        return self.levels[0].shape[1]

    def keep(self, num_levels: int) -> Codes:
        """The first ``num_levels`` levels (lower bitrate)."""
        return Codes(self.levels[:num_levels], self.strides[:num_levels], self.num_samples)

    def to(self, device: torch.device | str) -> Codes:
        return Codes([c.to(device) for c in self.levels], self.strides, self.num_samples)

    def slice_blocks(self, start: int, stop: int) -> Codes:
        """Coarse frames ``start:stop`` of every level (num_samples is dropped)."""
        block = self.strides[0]
        return Codes(
            [
                c[:, start * (block // s) : stop * (block // s)]
                for c, s in zip(self.levels, self.strides)
            ],
            self.strides,
        )

    def to_tokens(self, codebook_size: int) -> Tensor:
        """Flatten to (B, num_blocks * tokens_per_block) token ids, each level in its own range."""
        level_of, offset_of = _block_order(self.strides)
        block = self.strides[0]
        columns = []
        for level, offset in zip(level_of, offset_of):
            per_block = block // self.strides[level]
            codes = self.levels[level].view(self.batch_size, self.num_blocks, per_block)[
                :, :, offset
            ]
            columns.append(codes + level * codebook_size)
        return torch.stack(columns, dim=2).reshape(self.batch_size, -1)

    @classmethod
    def from_tokens(
        cls,
        tokens: Tensor,
        strides: tuple[int, ...],
        codebook_size: int,
        num_samples: int | None = None,
    ) -> Codes:
        """Inverse of :meth:`to_tokens`; ``tokens`` (B, N) with N a multiple of the block size."""
        strides = tuple(strides)
        level_of, offset_of = _block_order(strides)
        per_block_tokens = len(level_of)
        batch, length = tokens.shape
        if length % per_block_tokens:
            raise ValueError(
                f"{length} tokens do not fill whole coarse frames of {per_block_tokens} tokens "
                f"(strides {list(strides)})"
            )
        blocks = tokens.view(batch, length // per_block_tokens, per_block_tokens)
        block = strides[0]
        levels = [tokens.new_empty(batch, blocks.shape[1], block // s) for s in strides]
        for position, (level, offset) in enumerate(zip(level_of, offset_of)):
            levels[level][:, :, offset] = blocks[:, :, position] - level * codebook_size
        return cls([lv.reshape(batch, -1) for lv in levels], strides, num_samples)

    @staticmethod
    def cat(parts: list[Codes]) -> Codes:
        """Concatenate along time (all parts must have the same levels)."""
        first = parts[0]
        levels = [torch.cat([p.levels[k] for p in parts], dim=1) for k in range(first.num_levels)]
        return Codes(levels, first.strides)
