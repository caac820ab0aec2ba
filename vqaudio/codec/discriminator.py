"""Spectrogram discriminators and the hinge + feature-matching losses.

An optional adversarial term for codec training (``adversarial.enabled`` in a recipe):

- ``MultiScaleSTFTDiscriminator`` (as in EnCodec), for waveform decoders: each scale looks at the
  complex STFT (real and imaginary parts as two channels) through 2-D convolutions.
- ``MultiBandSpectrogramDiscriminator``, for the spectral decoder, which renders no waveform in
  training: it looks at log-magnitudes at the codec's own STFT (the decoder's output, the input's
  ``spectral.log_magnitude``), split into frequency bands that each get their own convolutions
  (the band split of DAC's multi-band discriminator). An L1 loss on log-magnitudes predicts a
  median and smears what the decoder is unsure of (harmonics); a discriminator asks for
  spectrograms that look like real ones instead.

Both return one (logits, feature maps) pair per scale or band, which is what
``discriminator_loss`` and ``generator_losses`` take.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError
from .spectral import FEATURE_SCALE, FEATURE_SHIFT, LOG_FLOOR


def _judge(layers: nn.ModuleList, output: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """x through each conv + leaky ReLU (the feature maps), then the output conv (the logits)."""
    features = []
    for layer in layers:
        x = F.leaky_relu(layer(x), 0.2)
        features.append(x)
    return output(x), features


class STFTDiscriminator(nn.Module):
    """One scale: |complex STFT| of window ``window_length`` -> logits map and feature maps."""

    def __init__(
        self, window_length: int, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4)
    ):
        super().__init__()
        self.window_length = window_length
        self.register_buffer("window", torch.hann_window(window_length), persistent=False)
        layers = [weight_norm(nn.Conv2d(2, channels, (3, 9), padding=(1, 4)))]
        for d in dilations:
            layers.append(
                weight_norm(
                    nn.Conv2d(
                        channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)
                    )
                )
            )
        layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:
        """wav (B, 1, T) -> (logits (B, 1, time, freq), feature maps)."""
        spec = torch.stft(
            wav.flatten(0, 1).float(),
            self.window_length,
            self.window_length // 4,
            window=self.window,
            return_complex=True,
        )
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2, time, freq)
        return _judge(self.layers, self.output, x)


class MultiScaleSTFTDiscriminator(nn.Module):
    """One STFTDiscriminator per window length."""

    def __init__(self, window_lengths: tuple[int, ...] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.scales = nn.ModuleList(STFTDiscriminator(w, channels) for w in window_lengths)

    def forward(self, wav: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        return [scale(wav) for scale in self.scales]


class BandDiscriminator(nn.Module):
    """One band: log-magnitude (N, 1, bins, frames) -> (logits, feature maps). The first layer
    keeps the frequency resolution (harmonics of a low note are a few bins apart); the next
    halve it while dilations in time widen the context (frames are 20 ms at 24 kHz, hop 480)."""

    def __init__(self, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        layers = [weight_norm(nn.Conv2d(1, channels, (7, 3), padding=(3, 1)))]
        for d in dilations:
            layers.append(
                weight_norm(
                    nn.Conv2d(
                        channels, channels, (5, 3), stride=(2, 1), dilation=(1, d), padding=(2, d)
                    )
                )
            )
        layers.append(weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))))
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        return _judge(self.layers, self.output, x)


class MultiBandSpectrogramDiscriminator(nn.Module):
    """log(|STFT| + LOG_FLOOR) (B, C, n_fft // 2 + 1, frames) at the codec's STFT -> one (logits,
    feature maps) pair per band; ``bands_hz`` are the bands' lower edges, the last runs to
    Nyquist. Each channel is judged on its own."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        bands_hz: tuple[float, ...] = (0.0, 1000.0, 4000.0),
        channels: int = 32,
    ):
        super().__init__()
        bins, nyquist = n_fft // 2 + 1, sample_rate / 2
        if max(bands_hz) >= nyquist:
            raise ConfigError(
                f"adversarial.bands_hz {list(bands_hz)}: every band must start below the "
                f"codec's Nyquist frequency ({nyquist:g} Hz)"
            )
        edges = [round(f * n_fft / sample_rate) for f in bands_hz] + [bins]
        if any(hi - lo < 2 for lo, hi in zip(edges, edges[1:])):
            raise ConfigError(
                f"adversarial.bands_hz {list(bands_hz)}: a band narrower than two STFT bins "
                f"({sample_rate / n_fft:g} Hz each); spread the edges"
            )
        self.bands = [(lo, hi) for lo, hi in zip(edges, edges[1:])]
        self.discriminators = nn.ModuleList(BandDiscriminator(channels) for _ in self.bands)

    def forward(self, log_mag: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        # below log(LOG_FLOOR) the decoder renders silence and no input goes: clamp, so that a
        # prediction is not told apart by values no listener hears
        x = log_mag.float().clamp(min=math.log(LOG_FLOOR)).flatten(0, 1).unsqueeze(1)
        x = (x + FEATURE_SHIFT) / FEATURE_SCALE  # music around [-1, 1]
        return [d(x[:, :, lo:hi]) for d, (lo, hi) in zip(self.discriminators, self.bands)]


def discriminator_loss(real: list, fake: list) -> Tensor:
    """Hinge loss: push logits of real audio above +1 and of decoded audio below -1."""
    loss = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for (r, _), (f, _) in zip(real, fake))
    return loss / len(real)


def generator_losses(real: list, fake: list) -> tuple[Tensor, Tensor]:
    """(adversarial hinge loss, feature-matching loss) for the codec; ``real`` is detached."""
    adversarial = sum(F.relu(1 - f).mean() for f, _ in fake) / len(fake)
    matching, count = 0.0, 0
    for (_, real_features), (_, fake_features) in zip(real, fake):
        for r, f in zip(real_features, fake_features):
            matching = matching + F.l1_loss(f, r.detach()) / (r.detach().abs().mean() + 1e-8)
            count += 1
    return adversarial, matching / count
