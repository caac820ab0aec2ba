"""Likelihood of code tokens under a prior, in bits (training evaluation, benchmarks)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Prior


@torch.no_grad()
def bits_per_token(prior: Prior, tokens: Tensor, controls: Tensor | None = None) -> float:
    """Mean -log2 p(token) of ``tokens`` (B, N) (ids of ``Codes.to_tokens``, N whole blocks),
    given per-frame ``controls`` (B, N // P, C) for a prior trained with them.

    Sequences longer than the prior's context are scored in consecutive windows of
    ``context_tokens``, each starting with the start token (as in training).
    """
    context = prior.config.context_tokens
    total, count = 0.0, 0
    for first in range(0, tokens.shape[1], context):
        window = tokens[:, first : first + context]
        given = {}
        if controls is not None:
            frame = first // prior.tokens_per_block
            given["controls"] = controls[:, frame : frame + prior.config.context_blocks]
        nll = prior.token_nll(window, **given).double().sum()
        total, count = total + float(nll), count + window.numel()
    return total / max(count, 1) / math.log(2)


def bits_per_second(prior: Prior, tokens: Tensor, tokens_per_second: float) -> float:
    """bits_per_token * tokens_per_second (see :func:`tokens_per_second`)."""
    return bits_per_token(prior, tokens) * tokens_per_second


def tokens_per_second(sample_rate: int, hop_length: int, level_strides: tuple[int, ...]) -> float:
    """Tokens per second of audio in the flatten order (default codec, 5 levels: 150)."""
    block_rate = sample_rate / hop_length / level_strides[0]
    return block_rate * sum(level_strides[0] // s for s in level_strides)
