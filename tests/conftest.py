"""Tiny configs, models and synthetic signals so the suite runs in minutes on 2 CPU cores."""

import math

import pytest
import torch

from vqaudio.codec import Codec
from vqaudio.config import CodecConfig, PriorConfig
from vqaudio.prior import build_prior

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


def tiny_prior_config(kind: str = "transformer", **overrides) -> PriorConfig:
    """Models the tiny codec's 2 levels (strides 2, 1 -> 3 tokens per block, ids 0..31)."""
    base = dict(
        kind=kind,
        num_levels=2,
        codebook_size=16,
        level_strides=(2, 1),
        dim=32,
        num_layers=2,
        num_heads=2,
        context_blocks=4,
        residual_channels=16,
        dilation_cycle=3,
        num_cycles=1,
        depth_dim=16,
        depth_layers=2,
        depth_heads=2,
        frame_embedding_dim=8,
    )
    base.update(overrides)
    return PriorConfig(**base)


def tiny_prior(kind: str = "transformer", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    prior = build_prior(tiny_prior_config(kind, **overrides)).eval()
    # Random init is too gentle to expose bugs (near-uniform logits): make the weights count.
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return prior


def diverse_codec(seed: int = 0) -> Codec:
    """A random tiny codec whose codebooks are k-means fitted to music-like latents, so its codes
    vary like a trained codec's (a plain random init maps nearly everything to one code, and
    chunk-boundary tests would pass vacuously)."""
    torch.manual_seed(seed)
    codec = Codec(tiny_codec_config(kmeans_init=True))
    wav = harmonic(24000, 8000, seed=seed) + 0.02 * torch.randn(1, 1, 24000)
    with torch.no_grad():
        codec.train()(wav, num_levels=2)
    return codec.eval()


def assert_chunked_decode_is_one_pass(
    codec: Codec,
    wav: torch.Tensor,
    rate: int,
    tmp_path,
    chunk_blocks: int,
    min_chunks: int = 1,
    with_band_levels: bool = True,
) -> None:
    """Compress ``wav`` (1, 1, T) in small chunks; decoding chunk by chunk (each with its
    margins) must give the decode of all the file's codes in one pass."""
    import numpy as np

    from vqaudio import audio
    from vqaudio.codec import band_levels
    from vqaudio.codes import Codes
    from vqaudio.vqa.compress import compress, decode_chunks
    from vqaudio.vqa.container import VqaReader

    audio.write(tmp_path / "a.wav", wav[0].numpy(), rate)
    compress(
        codec,
        tmp_path / "a.wav",
        tmp_path / "a.vqa",
        bitrate=1e5,
        chunk_blocks=chunk_blocks,
        with_band_levels=with_band_levels,
    )
    with VqaReader(tmp_path / "a.vqa") as reader:
        assert reader.num_chunks >= min_chunks
        pieces = list(decode_chunks(reader, codec))
        read = [reader.read_chunk_levels(k) for k in range(reader.num_chunks)]
        header = reader.header
    chunks = [streams for streams, _ in read]
    strides = codec.config.level_strides
    levels = [
        torch.from_numpy(np.concatenate([c[i] for c in chunks]))[None] for i in range(len(strides))
    ]
    given = None
    if header.band_edges:  # the file's band levels, all at once
        values = np.concatenate([lv for _, lv in read], axis=-1)
        spans = band_levels.spans(0, header.num_blocks, header.band_span_blocks)
        given = band_levels.BandLevels(values, spans, header.band_edges, strides[0])
    one_pass = codec.decode(Codes(levels, strides, header.num_samples), given)[0].numpy()
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), one_pass, atol=1e-4)
