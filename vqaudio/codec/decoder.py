"""Decoder: z_q (B, D, T') -> wav (B, C, T' * hop_length), the encoder's mirror image."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..config import CodecConfig
from ..layers import ResidualUnit, WNConv1d, WNConvTranspose1d, activation


class DecoderBlock(nn.Module):
    """A transposed conv that upsamples by ``stride`` and halves channels, then residual units."""

    def __init__(
        self, dim_in: int, dim_out: int, stride: int, dilations: tuple[int, ...], act: str
    ):
        super().__init__()
        self.block = nn.Sequential(
            activation(act, dim_in),
            WNConvTranspose1d(
                dim_in,
                dim_out,
                kernel_size=2 * stride,
                stride=stride,
                padding=(stride + 1) // 2,
                output_padding=stride % 2,
            ),
            *[ResidualUnit(dim_out, d, act) for d in dilations],
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class Decoder(nn.Module):
    """Upsamples by prod(config.strides), exactly inverting the encoder's frame count."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        dim = config.decoder_dim
        layers: list[nn.Module] = [WNConv1d(config.latent_dim, dim, kernel_size=7, padding=3)]
        for stride in reversed(config.strides):
            out = max(dim // 2, 8)
            layers.append(DecoderBlock(dim, out, stride, config.dilations, config.activation))
            dim = out
        out = nn.Conv1d(dim, config.channels, kernel_size=7, padding=3)
        nn.init.normal_(out.weight, std=0.1 * (7 * dim) ** -0.5)  # start quiet, below tanh's knee
        nn.init.zeros_(out.bias)
        layers += [activation(config.activation, dim), weight_norm(out)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z_q: Tensor) -> Tensor:
        return torch.tanh(self.layers(z_q))
