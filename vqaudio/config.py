"""Model configs: ``CodecConfig`` and ``PriorConfig``, the frozen dataclasses a model is built from.

Every number a later stage needs is derived here as a property (``hop_length``, ``frame_rates``,
``bitrates``), never stored twice. They are built from mappings by ``strict.build``; the training
recipe that holds them is ``recipe.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError
from .strict import require

# how a spectral decoder starts Griffin-Lim (codec/spectral.py): zero phase, or locked to the peaks
PHASE_INITS = ("zero", "locked")


@dataclass(frozen=True)
class CodecConfig:
    """Codec architecture and quantizer options.

    The encoder downsamples by ``prod(strides)`` = ``hop_length`` samples per latent frame;
    quantizer level k (coarse -> fine) runs at ``sample_rate / hop_length / level_strides[k]``
    frames/s.
    """

    sample_rate: int = 24000
    channels: int = 1  # channels the network sees; files with more are coded channel by channel
    encoder_dim: int = 16  # channels after the first conv; doubled at every downsampling stage
    strides: tuple[int, ...] = (2, 4, 6, 10)  # hop_length = 480 samples -> 50 frames/s at 24 kHz
    latent_dim: int = 128  # D of z
    latent_norm: str = "batch"  # batch: BatchNorm1d on z (running statistics at inference) | none
    decoder_dim: int = 256  # channels before the first upsampling; halved at every stage
    dilations: tuple[int, ...] = (1, 3, 9)  # residual units per stage
    activation: str = "snake"  # snake | elu
    # conv: strided convs on the waveform | fourier: a Fourier-basis strided conv of n_fft samples
    # at the hop, log-magnitude, ConvNeXt blocks at the frame rate (codec/spectral.py)
    encoder: str = "conv"
    frontend: str = "stft"  # fourier encoder: stft (fixed basis, fast) | learned (trainable conv)
    n_fft: int = 2048  # fourier encoder / spectral decoder: analysis window (85 ms at 24 kHz)
    spectral_dim: int = 384  # fourier encoder / spectral decoder: channels of their ConvNeXt blocks
    encoder_layers: int = 4  # fourier encoder: ConvNeXt blocks
    spectral_layers: int = 8  # spectral decoder: ConvNeXt blocks
    griffin_lim_iters: int = 16  # spectral decoder: phase-retrieval iterations at inference
    # spectral decoder: Griffin-Lim's start, zero phase or locked to the spectral peaks
    # (codec/spectral.py locked_phase: 16 iterations from it match 32 from zero)
    phase_init: str = "locked"
    # conv: transposed-conv mirror of the encoder; istft: ConvNeXt at a frame rate + inverse STFT;
    # spectral: ConvNeXt -> STFT magnitude at the latent frame rate, phase by Griffin-Lim
    decoder: str = "conv"
    istft_dim: int = 384  # istft decoder: channels of its ConvNeXt blocks
    istft_layers: int = 8  # istft decoder: ConvNeXt blocks
    istft_upsample: int = 4  # istft decoder: STFT hop = hop_length / istft_upsample
    level_strides: tuple[int, ...] = (4, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    codebook_size: int = 1024
    codebook_dim: int = 8  # factorized lookup dimension; 0 = look up in latent_dim directly
    l2_normalize: bool = True  # cosine-similarity lookup in the low-dim space (DAC / ViT-VQGAN)
    # quantize to the unit-norm code (vqaudio 0.1; breaks residual levels) instead of the raw one
    normalize_values: bool = False
    commitment_weight: float = 0.25  # beta of the VQ-VAE objective
    codebook_weight: float = 1.0
    ema_decay: float = 0.0  # > 0: EMA codebook updates instead of the codebook loss
    kmeans_init: bool = False  # initialise each codebook by k-means on the first training batch
    # restart codes whose EMA usage falls below this fraction of a uniform share of the batch
    dead_code_threshold: float = 0.0
    quantizer_dropout: float = 0.5  # probability a training batch keeps a random prefix of levels
    # fraction of training items decoded from the unquantized latent (Moshi's Mimi): the decoder
    # learns from the encoder's full signal while the codebooks catch up
    quantizer_bypass: float = 0.0

    def __post_init__(self) -> None:
        require(self.sample_rate >= 1000, "codec.sample_rate must be at least 1000 Hz")
        require(self.channels >= 1, "codec.channels must be >= 1")
        require(
            len(self.strides) >= 1 and all(s >= 1 for s in self.strides),
            "codec.strides must be a non-empty list of positive integers",
        )
        require(len(self.level_strides) >= 1, "codec.level_strides must name at least one level")
        for coarse, fine in zip(self.level_strides, self.level_strides[1:]):
            require(
                fine >= 1 and coarse % fine == 0,
                f"codec.level_strides {list(self.level_strides)} must be coarse -> fine, "
                "each stride a multiple of the next (e.g. [4, 2, 1, 1])",
            )
        require(self.codebook_size >= 2, "codec.codebook_size must be >= 2")
        require(
            self.decoder in ("conv", "istft", "spectral"),
            "codec.decoder must be 'conv', 'istft' or 'spectral'",
        )
        require(self.encoder in ("conv", "fourier"), "codec.encoder must be 'conv' or 'fourier'")
        require(self.frontend in ("stft", "learned"), "codec.frontend must be 'stft' or 'learned'")
        require(
            self.n_fft >= 16 and self.n_fft % 2 == 0 and self.n_fft >= self.hop_length,
            "codec.n_fft must be even and at least the hop length (prod(codec.strides))",
        )
        require(
            min(self.spectral_dim, self.encoder_layers, self.spectral_layers) >= 1
            and 0 <= self.griffin_lim_iters <= 1000
            and self.n_fft <= 65536,
            "codec.spectral_dim, encoder_layers and spectral_layers must be >= 1, "
            "griffin_lim_iters in [0, 1000], n_fft <= 65536",
        )
        require(
            self.phase_init in PHASE_INITS,
            f"codec.phase_init must be one of {', '.join(map(repr, PHASE_INITS))}",
        )
        require(0.0 <= self.quantizer_bypass < 1.0, "codec.quantizer_bypass must be in [0, 1)")
        require(
            self.latent_norm in ("batch", "none"), "codec.latent_norm must be 'batch' or 'none'"
        )
        require(
            self.decoder != "istft"
            or (self.istft_upsample >= 1 and self.hop_length % self.istft_upsample == 0),
            "codec.istft_upsample must divide the hop length (prod(codec.strides))",
        )
        require(
            self.istft_dim >= 1 and self.istft_layers >= 1,
            "codec.istft_dim and codec.istft_layers must be >= 1",
        )
        require(self.activation in ("snake", "elu"), "codec.activation must be 'snake' or 'elu'")
        require(0.0 <= self.quantizer_dropout <= 1.0, "codec.quantizer_dropout must be in [0, 1]")
        require(0.0 <= self.ema_decay < 1.0, "codec.ema_decay must be in [0, 1)")
        require(
            min(self.encoder_dim, self.latent_dim, self.decoder_dim) >= 1
            and self.codebook_dim >= 0,
            "codec.encoder_dim, latent_dim and decoder_dim must be >= 1, codebook_dim >= 0",
        )

    @property
    def hop_length(self) -> int:
        """Samples per latent frame."""
        return math.prod(self.strides)

    @property
    def num_levels(self) -> int:
        return len(self.level_strides)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (finest possible level)."""
        return self.sample_rate / self.hop_length

    @property
    def frame_rates(self) -> tuple[float, ...]:
        """Frames per second of each quantizer level, coarse -> fine."""
        return tuple(self.frame_rate / s for s in self.level_strides)

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    @property
    def block_samples(self) -> int:
        """Samples covered by one coarse frame: encodings are padded to a multiple of this."""
        return self.hop_length * self.level_strides[0]

    @property
    def bitrates(self) -> tuple[float, ...]:
        """Bits per second of one channel when keeping the first 1, 2, ... levels."""
        total, out = 0.0, []
        for rate in self.frame_rates:
            total += rate * self.bits_per_code
            out.append(total)
        return tuple(out)

    def levels_for_bitrate(self, bitrate: float | None) -> int:
        """Most levels whose bits/s stay at or under ``bitrate`` (None: all levels)."""
        if bitrate is None:
            return self.num_levels
        fits = [n for n, b in enumerate(self.bitrates, start=1) if b <= bitrate * (1 + 1e-9)]
        if not fits:
            raise ConfigError(
                f"bitrate {bitrate:g} bps is below this codec's lowest operating point "
                f"{self.bitrates[0]:g} bps; choose one of "
                + ", ".join(f"{b / 1000:g} kbps" for b in self.bitrates)
            )
        return fits[-1]


@dataclass(frozen=True)
class PriorConfig:
    """A prior over flattened codes (see codes.py for the token order).

    It models the first ``num_levels`` codec levels; level k's tokens are ids
    ``k * codebook_size ...``. ``codebook_size`` and ``level_strides`` are copied from the codec
    the prior is trained on, never set by hand.
    """

    kind: str = "transformer"  # transformer (flat) | frames (temporal + depth) | wavenet
    num_levels: int = 5  # codec levels modelled (5 = 1.5 kbps for the default codec)
    codebook_size: int = 1024
    level_strides: tuple[int, ...] = (4, 4, 2, 1, 1)  # of the modelled levels
    dim: int = 256
    num_layers: int = 6
    num_heads: int = 4
    context_blocks: int = 64  # context length in coarse frames (blocks of the flatten order)
    dropout: float = 0.0
    # frames only: a depth transformer of depth_layers x depth_dim predicts a frame's tokens one
    # after another from the temporal transformer's state (dim x num_layers, over frames)
    depth_dim: int = 128
    depth_layers: int = 2
    depth_heads: int = 4
    frame_embedding_dim: int = 64  # per token; a frame's tokens are concatenated, then projected
    # frames only, a unigram cache (Kuhn & De Mori 1990): 0 = off; N > 0 adds to each code's
    # logit a gated log(1 + its count) in the window's earlier frames and in its last N frames.
    # Music reuses a small set of codes per piece (held out: ~35 level-0 codes in 30 s), which
    # attention alone did not learn to retrieve (held-out bits flat past 1.3 s of context)
    code_counts: int = 0
    # frames only: per-frame control features (vqaudio.controls.grid: beat grid, tempo, chord),
    # 0 = none. Added to the temporal input and the depth bias, so the prior follows a beat and
    # chords it is given (MusicGen-melody, Music ControlNet)
    controls: int = 0
    # wavenet only: gated dilated causal convs, dilations 1, 2, ... 2**(dilation_cycle - 1),
    # repeated num_cycles times; receptive field 1 + num_cycles * (kernel_size - 1) * (2**cycle - 1)
    residual_channels: int = 128
    dilation_cycle: int = 8
    num_cycles: int = 3
    kernel_size: int = 2

    def __post_init__(self) -> None:
        require(
            self.kind in ("transformer", "frames", "wavenet"),
            "prior.kind must be 'transformer', 'frames' or 'wavenet'",
        )
        require(
            self.depth_dim % max(self.depth_heads, 1) == 0,
            "prior.depth_dim must be a multiple of prior.depth_heads",
        )
        require(
            len(self.level_strides) == self.num_levels,
            "prior.level_strides must have one stride per modelled level (prior.num_levels)",
        )
        require(
            self.dim % max(self.num_heads, 1) == 0,
            "prior.dim must be a multiple of prior.num_heads",
        )
        require(self.kernel_size >= 2, "prior.kernel_size must be >= 2")
        require(self.code_counts >= 0, "prior.code_counts must be >= 0 (0 = off)")
        require(
            self.controls == 0 or self.kind == "frames",
            "prior.controls needs prior.kind 'frames' (0 = no controls)",
        )
        require(
            self.dilation_cycle >= 1 and self.num_cycles >= 1,
            "prior.dilation_cycle and prior.num_cycles must be >= 1",
        )

    @property
    def vocab_size(self) -> int:
        return self.num_levels * self.codebook_size

    @property
    def tokens_per_block(self) -> int:
        return sum(self.level_strides[0] // s for s in self.level_strides)

    @property
    def context_tokens(self) -> int:
        return self.context_blocks * self.tokens_per_block

    @property
    def receptive_field(self) -> int:
        """Tokens a wavenet prior's prediction depends on (the start token included)."""
        return 1 + self.num_cycles * (self.kernel_size - 1) * (2**self.dilation_cycle - 1)


__all__ = ["CodecConfig", "PriorConfig"]
