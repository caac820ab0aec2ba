"""Codec: wav (B, C, T) -> Codes -> wav, and the training forward pass with its losses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..codes import Codes
from ..config import CodecConfig
from ..errors import ConfigError
from .band_levels import BandLevels
from .code_space import code_space_id
from .decoder import Decoder, ISTFTDecoder
from .encoder import Encoder
from .quantize import MultiScaleQuantizer
from .spectral import FourierEncoder, SpectralDecoder


@contextmanager
def exact_math() -> Iterator[None]:
    """Float32 math without TF32 and with deterministic cuDNN kernels, the caller's settings
    restored afterwards. TF32 (on by default for cuDNN convolutions on Ampere and later GPUs)
    moves the encoder's output by ~1e-3 relative, and the nearest code then flips on near-ties:
    a GPU would write other codes than a CPU. The flags are process-wide, not per thread."""
    cudnn = torch.backends.cudnn
    saved = (torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.deterministic)
    saved_benchmark = cudnn.benchmark
    torch.backends.cuda.matmul.allow_tf32 = False
    cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = False, True, False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])  # also restores matmul.allow_tf32
        cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = (*saved[1:], saved_benchmark)


def make_encoder(config: CodecConfig) -> nn.Module:
    """The encoder ``config.encoder`` names: ``conv`` (strided convs) or ``fourier``."""
    return FourierEncoder(config) if config.encoder == "fourier" else Encoder(config)


def make_decoder(config: CodecConfig) -> nn.Module:
    """The decoder ``config.decoder`` names: ``conv`` (mirror of the encoder), ``istft`` or
    ``spectral``."""
    if config.decoder == "spectral":
        return SpectralDecoder(config)
    return ISTFTDecoder(config) if config.decoder == "istft" else Decoder(config)


def check_griffin_lim_iters(config: CodecConfig, iters: int | None) -> int | None:
    """``iters`` if it is a count a decode can use (0 .. the config's ``griffin_lim_iters``:
    chunked decoding's margins cover that reach and no more), else a ConfigError."""
    if iters is not None and not 0 <= iters <= config.griffin_lim_iters:
        raise ConfigError(
            f"griffin_lim_iters {iters} must be in [0, {config.griffin_lim_iters}] "
            "(the codec's own count, which sets the decoding margins)"
        )
    return iters


@dataclass
class CodecOutput:
    wav: Tensor | None  # (B, C, T) reconstruction (None: spectral decoder in training)
    codes: Codes
    codebook_loss: Tensor
    commitment_loss: Tensor
    usage: list[Tensor] = field(default_factory=list)  # per level, 0-dim (QuantizerOutput)
    perplexity: list[Tensor] = field(default_factory=list)
    log_magnitude: Tensor | None = None  # spectral decoder: predicted log |STFT| (B, C, bins, n)

    @property
    def vq_loss(self) -> Tensor:
        """Codebook loss + beta * commitment loss (beta applied by the codec's config)."""
        return self.codebook_loss + self.commitment_loss


class Codec(nn.Module):
    """Neural audio codec. ``encode(wav, bitrate) -> Codes``, ``decode(codes) -> wav``.

    wav is float in [-1, 1] at ``config.sample_rate`` with ``config.channels`` channels; any length
    works (padded to whole coarse frames internally, cropped back on decode).
    """

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        self.encoder = make_encoder(config)
        self.quantizer = MultiScaleQuantizer(config)
        self.decoder = make_decoder(config)
        self.frozen: tuple[str, ...] = ()
        # code-space id -> checkpoint ids of codec files known to give this code space's codes
        # (the file it was loaded from, and the codecs whose decoder it replaced); see
        # code_space_codecs
        self.lineage: dict[str, tuple[str, ...]] = {}

    def freeze(self, *names: str) -> None:
        """Keep the named parts (``encoder``, ``quantizer``) fixed in training: no gradients, and
        always in eval mode (no BatchNorm updates, k-means init, EMA or dead-code restarts)."""
        self.frozen = tuple(names)
        for name in names:
            getattr(self, name).requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> Codec:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    @property
    def code_space_id(self) -> str:
        """16 hex digits naming what the codes mean (encoder + quantizer, ``code_space.py``);
        computed from the weights, so it follows training."""
        return code_space_id(self.state_dict(), self.config)

    @property
    def code_space_codecs(self) -> tuple[str, ...]:
        """Checkpoint ids of codec files known to share this codec's code space: files made
        with any of them (before .vqa files recorded the code space) decode with this one."""
        return self.lineage.get(self.code_space_id, ())

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def bitrates(self) -> tuple[float, ...]:
        """Bits per second (per channel) of each operating point: the first 1, 2, ... levels."""
        return self.config.bitrates

    def _pad(self, wav: Tensor) -> Tensor:
        block = self.config.block_samples
        return F.pad(wav, (0, (-wav.shape[-1]) % block))

    @torch.no_grad()
    def encode(self, wav: Tensor, bitrate: float | None = None) -> Codes:
        """wav (B, C, T) -> Codes of the levels that fit ``bitrate`` bits/s (None: all levels)."""
        num_levels = self.config.levels_for_bitrate(bitrate)
        # eval: encoding never changes the model (BatchNorm of old codecs); exact math: the
        # same codes on a GPU as on a CPU, up to float32 rounding
        with self._eval_mode(), exact_math():
            codes = self.quantizer.encode(self.encoder(self._pad(wav)), num_levels)
        codes.num_samples = wav.shape[-1]
        return codes

    @torch.no_grad()
    def decode(
        self,
        codes: Codes,
        band_levels: BandLevels | None = None,
        griffin_lim_iters: int | None = None,
        offset_blocks: int = 0,
    ) -> Tensor:
        """Codes (any prefix of the levels) -> wav (B, C, num_samples). A spectral decoder
        scales to ``band_levels`` (a file's, ``codec/band_levels.py``) when given, and renders
        with ``griffin_lim_iters`` iterations (None: the config's; at most the config's, whose
        reach sets the chunk margins); the other decoders ignore both. ``offset_blocks``: where
        these codes start in the whole signal, in coarse frames (a chunked decode's window;
        the locked phase start counts its runs from the signal's start)."""
        # the istft decoder is not bounded like the conv decoder's tanh: clip, as a DAC would
        z_q = self.quantizer.decode(codes)
        if isinstance(self.decoder, SpectralDecoder):  # with its gain for this many levels
            iters = check_griffin_lim_iters(self.config, griffin_lim_iters)
            offset = offset_blocks * (self.config.block_samples // self.decoder.hop)
            wav = self.decoder(z_q, codes.num_levels, band_levels, iters, offset)
            wav = wav.clamp(-1.0, 1.0)
        else:
            wav = self.decoder(z_q).clamp(-1.0, 1.0)
        if codes.num_samples is not None:
            wav = wav[..., : codes.num_samples]
        return wav

    def forward(self, wav: Tensor, num_levels: int | None = None) -> CodecOutput:
        """Training/eval pass: reconstruct ``wav`` through the quantizer with straight-through
        gradients. In training, quantizer dropout keeps a random prefix of levels per item."""
        length = wav.shape[-1]
        with torch.set_grad_enabled(torch.is_grad_enabled() and "encoder" not in self.frozen):
            z = self.encoder(self._pad(wav))
        keep = None
        batch = wav.shape[0]
        if self.training and num_levels is None and self.config.quantizer_dropout > 0:
            keep = torch.full((batch,), self.config.num_levels, device=wav.device)
            drop = torch.rand(batch, device=wav.device) < self.config.quantizer_dropout
            random_levels = torch.randint(
                1, self.config.num_levels + 1, (batch,), device=wav.device
            )
            keep = torch.where(drop, random_levels, keep)
        q = self.quantizer(z, num_levels, keep)
        z_q = q.z_q
        if self.training and self.config.quantizer_bypass > 0:
            # some items decode the unquantized latent (the encoder still gets the commitment)
            bypass = torch.rand(batch, device=wav.device) < self.config.quantizer_bypass
            z_q = torch.where(bypass.view(-1, 1, 1), z, z_q)
        log_mag = wav_hat = None
        if isinstance(self.decoder, SpectralDecoder):
            log_mag = self.decoder.log_magnitude(z_q)
            if not self.training:
                wav_hat = self.decoder.render(log_mag)[..., :length]
        else:
            wav_hat = self.decoder(z_q)[..., :length]
        q.codes.num_samples = length
        return CodecOutput(
            wav_hat,
            q.codes,
            self.config.codebook_weight * q.codebook_loss,
            self.config.commitment_weight * q.commitment_loss,
            q.usage,
            q.perplexity,
            log_mag,
        )

    @torch.no_grad()
    def decode_latent(self, z: Tensor, num_samples: int | None = None) -> Tensor:
        """The decoder on a latent (B, D, T') directly: the quantizer-bypassed reconstruction and
        the health checks (true latent vs zero or time-shuffled latent) use it."""
        wav = self.decoder(z).clamp(-1.0, 1.0)
        return wav if num_samples is None else wav[..., :num_samples]

    @torch.no_grad()
    def latent(self, wav: Tensor) -> Tensor:
        """wav (B, C, T) -> the encoder's unquantized latent z (B, D, frames), in eval mode."""
        with self._eval_mode():
            return self.encoder(self._pad(wav))

    @torch.no_grad()
    def stage_rms(self, wav: Tensor) -> list[float]:
        """RMS of each encoder stage's output, then of z, in eval mode: the health figure that
        training logs (a well-conditioned encoder keeps every stage of order one)."""
        record: list[Tensor] = []
        with self._eval_mode():
            z = self.encoder(self._pad(wav), record)
        return [float(x.float().pow(2).mean().sqrt()) for x in [*record, z]]

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    LINEAR_LR_SCALE = 0.1  # the PCA-initialised linear maps of the spectral pair move slowly

    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: the linear (principal-component) maps of a Fourier encoder and a
        spectral decoder learn at ``LINEAR_LR_SCALE`` x the rate (Adam's first steps at the full
        rate scramble them: measured chroma 0.87 -> 0.57 in 80 steps on synthetic chords)."""
        slow = [
            p
            for part in (self.encoder, self.decoder)
            if isinstance(part, (FourierEncoder, SpectralDecoder))
            for p in part.linear.parameters()
        ]
        rest = [p for p in self.parameters() if all(p is not q for q in slow)]
        groups = [{"params": rest, "lr_scale": 1.0}]
        if slow:
            groups.append({"params": slow, "lr_scale": self.LINEAR_LR_SCALE})
        return groups

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
