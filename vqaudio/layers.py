"""Shared network pieces: weight-normed convs, Snake activation, dilated residual units."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def _init(conv: nn.Module) -> nn.Module:
    # Zero biases and variance-preserving weights: with PyTorch's defaults (or DAC's std 0.02 in
    # these narrow layers) the signal shrinks ~3x per layer and biases/Snake offsets dominate z,
    # so every VQ level collapses onto one or two codes within 50 steps (measured).
    fan_in = conv.weight[0].numel() if isinstance(conv, nn.Conv1d) else conv.weight[:, 0].numel()
    nn.init.normal_(conv.weight, std=fan_in**-0.5)  # variance-preserving, so the signal reaches z
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def WNConv1d(*args, **kwargs) -> nn.Module:
    """Weight-normalised Conv1d (nothing normalises over time, so codes stay chunk-invariant)."""
    return weight_norm(_init(nn.Conv1d(*args, **kwargs)))


def WNConvTranspose1d(*args, **kwargs) -> nn.Module:
    return weight_norm(_init(nn.ConvTranspose1d(*args, **kwargs)))


class Snake1d(nn.Module):
    """x + sin^2(alpha x) / alpha per channel (Ziyin et al. 2020): a periodic bias for audio."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)


def activation(name: str, channels: int) -> nn.Module:
    return Snake1d(channels) if name == "snake" else nn.ELU()


class ResidualUnit(nn.Module):
    """act -> dilated conv(k=7) -> act -> conv(k=1), added to the input. Length-preserving."""

    def __init__(self, channels: int, dilation: int, act: str = "snake"):
        super().__init__()
        self.block = nn.Sequential(
            activation(act, channels),
            WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation),
            activation(act, channels),
            WNConv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class CausalConv1d(nn.Conv1d):
    """Conv1d that sees only the present and the past (left padding of dilation * (kernel - 1))."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.causal_padding = self.dilation[0] * (self.kernel_size[0] - 1)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(nn.functional.pad(x, (self.causal_padding, 0)))
