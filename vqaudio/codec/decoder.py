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


class ConvNeXtBlock(nn.Module):
    """Depthwise conv(k=7) -> LayerNorm -> pointwise MLP (x3, GELU), scaled and added (Vocos)."""

    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 3 * dim)
        self.pwconv2 = nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x).transpose(1, 2))
        y = self.pwconv2(torch.nn.functional.gelu(self.pwconv1(y)))
        return x + (self.gamma * y).transpose(1, 2)


class ISTFTDecoder(nn.Module):
    """z_q (B, D, T') -> wav (B, C, T' * hop_length) through a predicted spectrogram (Vocos-style).

    A conv lifts z_q to ``istft_dim`` channels, a transposed conv upsamples the frames by
    ``istft_upsample``, ConvNeXt blocks refine them, and a linear head predicts log-magnitude and
    phase of an STFT with hop ``hop_length // istft_upsample`` and a window 4 hops long; the
    inverse STFT makes the waveform. All the heavy work runs at a frame rate, which makes it much
    cheaper on a CPU than upsampling convolutions at the audio rate.
    """

    def __init__(self, config: CodecConfig):
        super().__init__()
        up, dim = config.istft_upsample, config.istft_dim
        self.channels, self.up = config.channels, up
        self.hop = config.hop_length // up
        self.n_fft = 4 * self.hop
        self.bins = self.n_fft // 2 + 1
        self.conv_in = nn.Conv1d(config.latent_dim, dim, kernel_size=7, padding=3)
        self.upsample = (
            nn.ConvTranspose1d(dim, dim, kernel_size=2 * up, stride=up, padding=up // 2)
            if up > 1
            else nn.Identity()
        )
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        scale = 1.0 / config.istft_layers
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, scale) for _ in range(config.istft_layers))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, config.channels * 2 * self.bins)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, z_q: Tensor) -> Tensor:
        frames = z_q.shape[-1] * self.up
        x = self.upsample(self.conv_in(z_q))[..., :frames]
        # one more frame than hops: a centred inverse STFT of n frames yields (n - 1) hops
        x = torch.nn.functional.pad(x, (0, 1), mode="replicate")
        x = self.norm_in(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.norm_out(x.transpose(1, 2)))  # (B, n, C * 2 * bins)
        batch, n = x.shape[:2]
        x = x.float().view(batch, n, self.channels, 2, self.bins).permute(0, 2, 3, 4, 1)
        magnitude = x[:, :, 0].clamp(max=6.0).exp()  # e^6 ~ 400: far above any real bin
        phase = x[:, :, 1]
        spec = torch.polar(magnitude, phase).reshape(batch * self.channels, self.bins, n)
        wav = torch.istft(
            spec, self.n_fft, self.hop, window=self.window, center=True, length=(n - 1) * self.hop
        )
        return wav.view(batch, self.channels, -1)
