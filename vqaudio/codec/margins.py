"""Context margins: how many coarse frames around a chunk the encoder and decoder need to see.

Encoding or decoding a long signal chunk by chunk gives the same result as one pass (up to float
rounding) when each chunk is processed with this many blocks of neighbours on either side, and
then cropped to its own part: the margins cover the networks' receptive fields, computed from the
config (kernel 7 convs, dilated residual units, the strided or iSTFT up/downsampling, the Fourier
front end's window and Griffin-Lim's reach). Chunked
compression (vqa/streaming.py) and chunked decoding of generated codes use them.
"""

from __future__ import annotations

from ..config import CodecConfig
from .griffin_lim import PHASE_RESET_FRAMES


def _span(kernel: int, dilation: int = 1) -> int:
    return dilation * (kernel - 1) // 2 + 1


def encoder_margin_blocks(config: CodecConfig) -> int:
    """Coarse frames of audio either side that cover the encoder's receptive field."""
    if config.encoder == "fourier":  # analysis window, then ConvNeXt blocks (k 7) per frame
        samples = config.n_fft // 2 + config.hop_length * (3 * config.encoder_layers + 1)
        return -(-samples // config.block_samples) + 1
    samples, scale = _span(7), 1
    for stride in config.strides:
        samples += scale * sum(_span(7, d) for d in config.dilations) + scale * 2 * stride
        scale *= stride
    samples += scale * _span(3)
    return -(-samples // config.block_samples) + 1


def decoder_margin_blocks(config: CodecConfig) -> int:
    """Coarse frames of codes either side that cover the decoder's receptive field."""
    if config.decoder == "spectral":  # convs, then Griffin-Lim's reach (codec/spectral.py)
        overlap = -(-config.n_fft // config.hop_length)
        convs = 3 * (1 + config.spectral_layers) + 1
        frames = convs + overlap * (config.griffin_lim_iters + 1)
        if config.phase_init == "locked":  # back to the start of the run of frames whose phase
            frames += PHASE_RESET_FRAMES + convs  # it sums, and its magnitudes' conv reach
        return -(-frames * config.hop_length // config.block_samples) + 1
    if config.decoder == "istft":  # conv_in (k 7), upsampler, ConvNeXt (k 7 each), iSTFT window
        hop = config.hop_length // config.istft_upsample
        samples = config.hop_length * (_span(7) + 1) + hop * (3 * config.istft_layers + 2)
        return -(-samples // config.block_samples) + 1
    scale = config.hop_length
    samples = scale * _span(7)
    for stride in reversed(config.strides):
        samples += scale * 2
        scale //= stride
        samples += scale * sum(_span(7, d) for d in config.dilations)
    samples += _span(7)
    return -(-samples // config.block_samples) + 1


def with_margin(first: int, end: int, margin: int, num_blocks: int) -> tuple[int, int]:
    """Blocks ``lo:hi`` to process for blocks ``first:end`` of ``num_blocks``: ``margin`` more on
    either side, clipped to the signal."""
    return max(0, first - margin), min(num_blocks, end + margin)


def band_level_margin_blocks(config: CodecConfig, span_blocks: int) -> int:
    """Coarse frames of codes either side when the decoder scales to band levels
    (``band_levels.apply``): the frames Griffin-Lim reaches need their gains exact, a gain comes
    from the spans whose centres bracket it, and a span's predicted power from the convs' reach
    around it."""
    convs = -(-(3 * (1 + config.spectral_layers) + 1) * config.hop_length // config.block_samples)
    return decoder_margin_blocks(config) + 2 * span_blocks + convs + 1
