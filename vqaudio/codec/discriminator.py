"""Multi-scale STFT discriminator (as in EnCodec) and the hinge + feature-matching losses.

An optional adversarial term for codec training (``adversarial.enabled`` in a recipe): each scale
looks at the complex STFT (real and imaginary parts as two channels) through 2-D convolutions.
Off in the CPU recipes: it doubles the cost of a step and pays off only over long GPU runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


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
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.output(x), features


class MultiScaleSTFTDiscriminator(nn.Module):
    """One STFTDiscriminator per window length."""

    def __init__(self, window_lengths: tuple[int, ...] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.scales = nn.ModuleList(STFTDiscriminator(w, channels) for w in window_lengths)

    def forward(self, wav: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        return [scale(wav) for scale in self.scales]


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
