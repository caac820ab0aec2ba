"""What every prior shares: the start token, the next-slot embedding, level masks, the loss.

Inputs are token ids from ``Codes.to_tokens`` (level k owns ``k * codebook_size ...``). A prior
sees a *window* of tokens that begins at a block (coarse frame) boundary, preceded by a learned
start token (id ``vocab_size``, never produced). Position p of the window (p = 0 is the start
token) predicts window token p, whose slot in its block is ``p % tokens_per_block``; the slot is
therefore known in advance, and so is its level: every prior adds a learned embedding of that
slot to its input and sets the logits outside that level's id range to -inf, so a sample is
always a decodable code of the right level and likelihoods are over that level's codebook only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..codes import token_levels
from ..config import PriorConfig


class Prior(nn.Module):
    """Base class: ``forward(tokens (B, N)) -> logits (B, N, vocab_size)``, logits[:, t]
    predicting token t + 1; ``loss(tokens)`` = mean cross-entropy (nats) of all N tokens, the
    first one predicted from the start token."""

    config: PriorConfig

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        self.start_id = config.vocab_size
        # on the CPU even while a loader builds a skeleton on "meta": meta kernels of these ops
        # import torch's Python decompositions, seconds of start-up for a few small tensors
        with torch.device("cpu"):
            levels = token_levels(config.level_strides)  # (tokens_per_block,)
            ids = torch.arange(config.vocab_size) // config.codebook_size
            mask = torch.zeros(len(levels), config.vocab_size)
            mask.masked_fill_(ids[None, :] != levels[:, None], float("-inf"))
            slots = levels.tolist()
        self.register_buffer("level_mask", mask, persistent=False)  # (tokens_per_block, V)
        size = config.codebook_size
        self.slot_ranges = [(k * size, (k + 1) * size) for k in slots]  # valid ids

    @property
    def tokens_per_block(self) -> int:
        return self.config.tokens_per_block

    def with_start(self, tokens: Tensor) -> Tensor:
        """(B, N) -> (B, N + 1): the start token, then ``tokens``."""
        start = tokens.new_full((tokens.shape[0], 1), self.start_id)
        return torch.cat([start, tokens], dim=1)

    def masked(self, logits: Tensor, first_position: int = 0) -> Tensor:
        """Logits (B, L, V) at window positions first_position... with other levels' ids at -inf."""
        positions = torch.arange(
            first_position, first_position + logits.shape[1], device=logits.device
        )
        return logits + self.level_mask[positions % self.tokens_per_block]

    def window_start(self, num_tokens: int) -> int:
        """First token of the window that predicts token ``num_tokens`` (block-aligned sliding:
        a full window of ``context_blocks`` keeps its latest half and continues)."""
        retained = self.config.context_blocks // 2 * self.tokens_per_block  # by a slide
        slide = self.config.context_tokens - retained
        return slide * max(0, (num_tokens - retained) // slide)

    def window_logits(self, tokens: Tensor) -> Tensor:
        """Logits (B, N + 1, V) of the window start token + ``tokens`` (B, N)."""
        raise NotImplementedError

    def forward(self, tokens: Tensor) -> Tensor:
        return self.window_logits(tokens)[:, 1:]

    def token_nll(self, tokens: Tensor) -> Tensor:
        """-log p (nats) of each token of ``tokens`` (B, N), a window starting at a block
        boundary, the first one predicted from the start token -> (B, N)."""
        logits = self.window_logits(tokens)[:, :-1]
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), tokens.reshape(-1), reduction="none"
        )
        return nll.view(tokens.shape)

    def loss(self, tokens: Tensor) -> Tensor:
        """Mean cross-entropy (nats) of ``tokens`` (B, N), a window starting at a block boundary."""
        return self.token_nll(tokens).float().mean()

    def next_logits(self, tokens: Tensor) -> Tensor:
        """Logits (B, V) of token N given all ``tokens`` (B, N) so far, recomputed from scratch
        over the same window the incremental stream would use (the slow reference path)."""
        raise NotImplementedError

    def stream(self, tokens: Tensor) -> Stream:
        """Incremental decoder primed with ``tokens`` (B, N), N >= 0 (a prompt, or nothing)."""
        raise NotImplementedError


class Stream:
    """Incremental decoding state. ``logits`` (B, V) predicts the next token; ``push(token (B,))``
    appends a token and returns the new ``logits``. Equal to ``prior.next_logits`` of the whole
    sequence at every step."""

    logits: Tensor
    _filled: tuple[int, int] | None = None  # the id range of ``logits`` that is not -inf

    def push(self, token: Tensor) -> Tensor:
        raise NotImplementedError

    def slot_logits(self, ids: tuple[int, int]) -> Tensor:
        """``logits[:, lo:hi]`` of the next token's id range ``ids`` (lo, hi)."""
        return self.logits[:, ids[0] : ids[1]]

    def _set_logits(self, values: Tensor, ids: tuple[int, int]) -> Tensor:
        """logits = -inf except ``values`` (B, hi - lo) at ids lo..hi-1, in one reused buffer
        (the head computes only the next level's rows: a fifth of its weights per token)."""
        lo, hi = ids
        if self._filled is None:
            self.logits = values.new_full((values.shape[0], self.vocab_size), float("-inf"))
        else:
            self.logits[:, self._filled[0] : self._filled[1]] = float("-inf")
        self.logits[:, lo:hi] = values
        self._filled = ids
        return self.logits
