"""Tiny configs and synthetic signals so the suite runs in minutes on 2 CPU cores."""

import math

import pytest
import torch

from vqaudio.config import CodecConfig

torch.set_num_threads(1)


def tiny_codec_config(**overrides) -> CodecConfig:
    """8 encoder channels, 2 levels, 16 codes: a codec that builds and runs in milliseconds."""
    base = dict(
        sample_rate=8000,
        encoder_dim=8,
        decoder_dim=16,
        latent_dim=16,
        strides=(2, 4),
        level_strides=(2, 1),
        codebook_size=16,
        codebook_dim=4,
        dilations=(1,),
    )
    base.update(overrides)
    return CodecConfig(**base)


@pytest.fixture
def tiny_config() -> CodecConfig:
    return tiny_codec_config()


def harmonic(num_samples: int, sample_rate: int, f0: float = 220.0, seed: int = 0) -> torch.Tensor:
    """A decaying harmonic tone (B=1, C=1, T) with a little vibrato: music-like, deterministic."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / sample_rate
    wav = torch.zeros(num_samples)
    for k in range(1, 6):
        phase = float(torch.rand(1, generator=gen)) * 2 * math.pi
        wav += (0.5 / k) * torch.sin(
            2 * math.pi * f0 * k * t + phase + 0.3 * torch.sin(2 * math.pi * 5 * t)
        )
    return (0.5 * wav / wav.abs().max()).view(1, 1, -1)
