"""Encoder: wav (B, C, T) -> z (B, D, T // hop_length), strided convs + dilated residual units."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import CodecConfig
from ..layers import ResidualUnit, WNConv1d, activation


class EncoderBlock(nn.Module):
    """Residual units at the input rate, then a strided conv that doubles channels."""

    def __init__(
        self, dim_in: int, dim_out: int, stride: int, dilations: tuple[int, ...], act: str
    ):
        super().__init__()
        self.block = nn.Sequential(
            *[ResidualUnit(dim_in, d, act) for d in dilations],
            activation(act, dim_in),
            WNConv1d(
                dim_in, dim_out, kernel_size=2 * stride, stride=stride, padding=(stride + 1) // 2
            ),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class Encoder(nn.Module):
    """Downsamples by prod(config.strides); input length must be a multiple of hop_length."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        dim = config.encoder_dim
        layers: list[nn.Module] = [WNConv1d(config.channels, dim, kernel_size=7, padding=3)]
        for stride in config.strides:
            layers.append(EncoderBlock(dim, dim * 2, stride, config.dilations, config.activation))
            dim *= 2
        layers += [
            activation(config.activation, dim),
            WNConv1d(dim, config.latent_dim, kernel_size=3, padding=1),
            # Per-channel standardisation of z (batch statistics in training, frozen running
            # statistics at inference, so codes stay independent of batch and chunking). A
            # fresh conv stack's output is a near-constant offset with ~1% variation; without
            # this every VQ level collapses onto one code within a few dozen steps.
            nn.BatchNorm1d(config.latent_dim) if config.latent_norm == "batch" else nn.Identity(),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, wav: Tensor, record: list[Tensor] | None = None) -> Tensor:
        """wav -> z (B, D, T // hop_length); ``record`` collects each stage's output."""
        if record is None:
            return self.layers(wav)
        x = wav
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, (EncoderBlock, nn.BatchNorm1d)) or layer is self.layers[0]:
                record.append(x)
        return x
