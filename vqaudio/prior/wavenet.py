"""WaveNet prior: gated dilated causal convolutions over flattened codes (van den Oord et al. 2016).

Each layer: dilated causal conv -> tanh(a) * sigmoid(b) -> 1x1 residual conv (added to the input)
and 1x1 skip conv (summed over layers) -> ReLU, 1x1, ReLU, 1x1 -> logits. Its receptive field is
``config.receptive_field`` tokens, so generation never slides a window: the incremental stream
keeps, per layer, a ring buffer of the last ``dilation * (kernel_size - 1)`` inputs, and every
token costs the same at any position. Keep the receptive field <= ``context_tokens`` (the
training crop) so the model never sees more history at generation than in training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PriorConfig
from ..layers import CausalConv1d
from .base import Prior, Stream


class GatedLayer(nn.Module):
    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, R, L) -> (next layer's input (B, R, L), skip (B, S, L))."""
        a, b = self.conv(x).chunk(2, dim=1)
        gated = torch.tanh(a) * torch.sigmoid(b)
        return (x + self.residual(gated)) * math.sqrt(0.5), self.skip(gated)


class WaveNetPrior(Prior):
    """Dilated causal conv prior. tokens (B, N) -> logits (B, N, vocab_size)."""

    def __init__(self, config: PriorConfig):
        super().__init__(config)
        channels = config.residual_channels
        self.token_embedding = nn.Embedding(config.vocab_size + 1, channels)  # + start token
        self.slot_embedding = nn.Embedding(config.tokens_per_block, channels)  # next token's slot
        self.layers = nn.ModuleList(
            GatedLayer(channels, config.dim, config.kernel_size, 2**i)
            for _ in range(config.num_cycles)
            for i in range(config.dilation_cycle)
        )
        self.out = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(config.dim, config.dim, 1),
            nn.ReLU(),
            nn.Conv1d(config.dim, config.vocab_size, 1),
        )

    def _embed(self, ids: Tensor, start: int) -> Tensor:
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.token_embedding(ids) + self.slot_embedding(positions % self.tokens_per_block)
        return x.transpose(1, 2)  # (B, R, L)

    def _run(self, ids: Tensor, start: int = 0, inputs: list | None = None) -> Tensor:
        """ids (B, L) at positions start... -> masked logits (B, L, V); ``inputs`` collects each
        layer's input (B, R, L) for priming a stream. Positions before ``start`` count as zeros."""
        x = self._embed(ids, start)
        skip = 0
        for layer in self.layers:
            if inputs is not None:
                inputs.append(x)
            x, s = layer(x)
            skip = skip + s
        return self.masked(self.out(skip).transpose(1, 2), start)

    def window_logits(self, tokens: Tensor) -> Tensor:
        return self._run(self.with_start(tokens))

    def next_logits(self, tokens: Tensor) -> Tensor:
        # Only the last receptive_field positions matter; anything before them may be zeros.
        num_tokens = tokens.shape[1]
        first = num_tokens + 1 - self.config.receptive_field  # window position of the oldest input
        if first <= 0:
            return self.window_logits(tokens)[:, -1]
        return self._run(tokens[:, first - 1 :], start=first)[:, -1]

    def stream(self, tokens: Tensor) -> WaveNetStream:
        return WaveNetStream(self, tokens)


class WaveNetStream(Stream):
    """Incremental decoding with one ring buffer of past inputs per layer."""

    def __init__(self, prior: WaveNetPrior, tokens: Tensor):
        self.prior = prior
        ids = prior.with_start(tokens)
        inputs: list[Tensor] = []
        self.vocab_size = prior.config.vocab_size
        self.logits = prior._run(ids, 0, inputs)[:, -1]
        self._filled = (0, self.vocab_size)
        self.position = ids.shape[1] - 1  # position of the latest input
        self.buffers, self.taps = [], []
        for layer, x in zip(prior.layers, inputs, strict=True):
            dilation, kernel = layer.conv.dilation[0], layer.conv.kernel_size[0]
            size = dilation * (kernel - 1)
            padded = F.pad(x, (size, 0))[
                :, :, -size:
            ]  # inputs at positions position-size+1..position
            slots = (
                torch.arange(self.position - size + 1, self.position + 1, device=x.device) % size
            )
            buffer = torch.empty_like(padded)
            buffer[:, :, slots] = padded
            self.buffers.append(buffer)
            self.taps.append((size, dilation, kernel))

    def push(self, token: Tensor) -> Tensor:
        prior = self.prior
        self.position += 1
        position = self.position
        slot = position % prior.tokens_per_block
        x = prior.token_embedding(token) + prior.slot_embedding.weight[slot]  # (B, R)
        skip = 0
        for layer, buffer, (size, dilation, kernel) in zip(
            prior.layers, self.buffers, self.taps, strict=True
        ):
            # the conv's taps see positions position - dilation * (kernel - 1 - j), j = 0..kernel-1
            past = [
                buffer[:, :, (position - dilation * m) % size] for m in range(kernel - 1, 0, -1)
            ]
            window = torch.stack([*past, x], dim=2)  # (B, R, kernel)
            conv = layer.conv
            h = F.linear(window.flatten(1), conv.weight.flatten(1), conv.bias)
            buffer[:, :, position % size] = x
            a, b = h.chunk(2, dim=1)
            gated = torch.tanh(a) * torch.sigmoid(b)
            x = (
                x + F.linear(gated, layer.residual.weight[:, :, 0], layer.residual.bias)
            ) * math.sqrt(0.5)
            skip = skip + F.linear(gated, layer.skip.weight[:, :, 0], layer.skip.bias)
        out = prior.out
        h = F.linear(torch.relu(skip), out[1].weight[:, :, 0], out[1].bias)
        lo, hi = prior.slot_ranges[slot]
        logits = F.linear(torch.relu(h), out[3].weight[lo:hi, :, 0], out[3].bias[lo:hi])
        return self._set_logits(logits, (lo, hi))
