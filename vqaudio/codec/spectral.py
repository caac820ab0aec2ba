"""The spectral codec pair: a Fourier front-end encoder, a magnitude decoder with phase retrieval.

Why (measured, docs/MODEL_CARD.md): the waveform and free-phase inverse-STFT decoders trained on a
CPU budget rendered each band's loudness but not the notes. Pitch needs (1) an analysis window
long enough to resolve it and (2) phase that is coherent from frame to frame. Exact STFT
magnitudes resynthesised with random phase keep chroma 0.48 at n_fft 480 but 0.83 at 2048, and
with 32 iterations of fast Griffin-Lim 0.92-0.95 (``runs/probe`` scripts in the model card).

- ``FourierEncoder``: wav (B, C, T) -> z (B, D, T // hop). Its first layer is a strided conv whose
  kernels are a Hann-windowed Fourier basis of ``n_fft`` samples at the codec's hop (computed with
  torch.stft when ``frontend: stft``, a learnable Conv1d initialised to the same basis when
  ``frontend: learned``), then log-magnitude, a 1x1 projection, ConvNeXt blocks at the frame rate
  whose residual branches start at 1/N of their size, and a 1x1 projection to the latent. No
  normalisation on the latent: the loss sees the encoder's scale.
- ``SpectralDecoder``: z_q (B, D, T') -> log-magnitude (B, C, n_fft // 2 + 1, T' + 1) at the same
  STFT, trained directly on spectral losses (no phase in the loss, so training needs no inverse
  STFT); at inference the waveform comes from fast Griffin-Lim (Perraudin et al. 2013), started
  from zero phase (``phase_init: zero``) or from ``locked_phase`` (``phase_init: locked``, the
  default): each spectral peak's frequency, by parabolic interpolation of the log-magnitude,
  advances its phase from frame to frame as a steady sinusoid's would, and the bins around the
  peak are locked to it (Laroche & Dolson 1999); both are ``griffin_lim.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import CodecConfig
from . import band_levels as bands
from .decoder import ConvNeXtBlock
from .griffin_lim import griffin_lim

# log-magnitude features: log(|X| + 1e-4), shifted and scaled so music sits around [-1, 1]
# (measured on the training music: mean -2.1, std 2.6 with a 2048-sample Hann window)
LOG_FLOOR = 1e-4
FEATURE_SHIFT, FEATURE_SCALE = 2.0, 2.5


def pitch_weights(sample_rate: int, n_fft: int) -> Tensor:
    """(n_fft // 2 + 1,) weights 1 / sqrt(f / 50 Hz), 1 below 50 Hz: the encoder's features and
    the log-magnitude loss put their capacity where the notes are. Measured on held-out music,
    128 principal components of log-magnitude keep chroma 0.66 unweighted and 0.98 weighted
    (control 0.45 / 0.68; runs/probe/pca2.py in the model card)."""
    # on the CPU even inside a loader's meta-device skeleton: arange on "meta" imports torch's
    # decompositions (3.6 s of the first load_codec, measured)
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device="cpu") * sample_rate / n_fft
    return (freqs.clamp(min=50.0) / 50.0).rsqrt().float()


def log_magnitude(wav: Tensor, n_fft: int, hop: int) -> Tensor:
    """wav (B, C, T) -> log(|STFT| + LOG_FLOOR) (B, C, n_fft // 2 + 1, T // hop + 1), centred,
    Hann window, reflect padding (the target the spectral decoder is trained on)."""
    batch, channels, length = wav.shape
    window = torch.hann_window(n_fft, device=wav.device, dtype=torch.float32)
    flat = wav.reshape(-1, length).float()
    if length <= n_fft // 2:  # reflect padding needs more samples than half a window
        flat = F.pad(flat, (0, n_fft // 2 + 1 - length))
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, return_complex=True)
    spec = spec[..., : length // hop + 1]
    return (spec.abs() + LOG_FLOOR).log().view(batch, channels, *spec.shape[-2:])


def fourier_basis(n_fft: int) -> Tensor:
    """(2 * bins, 1, n_fft): Hann-windowed cosines then sines, the kernels of torch.stft."""
    bins = n_fft // 2 + 1
    t = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(bins, dtype=torch.float64).unsqueeze(1)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    angle = 2 * math.pi * k * t / n_fft
    basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
    return basis.float().unsqueeze(1)


class FourierEncoder(nn.Module):
    """wav (B, C, T) -> z (B, latent_dim, T // hop_length); see the module docstring."""

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.n_fft, self.hop = config.n_fft, config.hop_length
        self.bins = self.n_fft // 2 + 1
        self.learned = config.frontend == "learned"
        if self.learned:
            self.frontend = nn.Conv1d(1, 2 * self.bins, self.n_fft, stride=self.hop, bias=False)
            with torch.no_grad():
                self.frontend.weight.copy_(fourier_basis(self.n_fft))
        dim, features = config.spectral_dim, config.channels * self.bins
        weights = pitch_weights(config.sample_rate, self.n_fft).repeat(config.channels)
        self.register_buffer("pitch_weights", weights.view(1, -1, 1), persistent=False)
        # z = linear(features) + a nonlinear branch that starts at zero: the linear map starts as
        # the features' principal components (initialize_from_data), which alone keep chroma
        # 0.66 of held-out music through 128 dims; training refines both
        self.linear = nn.Conv1d(features, config.latent_dim, kernel_size=1)
        nn.init.normal_(self.linear.weight, std=features**-0.5)
        nn.init.zeros_(self.linear.bias)
        self.proj_in = nn.Conv1d(features, dim, kernel_size=1)
        nn.init.normal_(self.proj_in.weight, std=(config.channels * self.bins) ** -0.5)
        nn.init.zeros_(self.proj_in.bias)
        scale = 1.0 / max(1, config.encoder_layers)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, scale) for _ in range(config.encoder_layers))
        self.proj_out = nn.Conv1d(dim, config.latent_dim, kernel_size=1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        self.register_buffer("initialized", torch.tensor(False))

    def features(self, wav: Tensor) -> Tensor:
        """wav (B, C, T) -> scaled log-magnitude (B, C * bins, T // hop)."""
        batch, channels, length = wav.shape
        frames = length // self.hop
        if self.learned:
            flat = wav.reshape(-1, 1, length)
            if length <= self.n_fft // 2:  # as log_magnitude: reflect needs half a window
                flat = F.pad(flat, (0, self.n_fft // 2 + 1 - length))
            flat = F.pad(flat, (self.n_fft // 2, self.n_fft // 2), "reflect")
            parts = self.frontend(flat)[..., :frames]
            mag = (parts[:, : self.bins].pow(2) + parts[:, self.bins :].pow(2) + 1e-12).sqrt()
            logmag = (mag + LOG_FLOOR).log().view(batch, channels, self.bins, frames)
        else:
            logmag = log_magnitude(wav, self.n_fft, self.hop)[..., :frames]
        features = ((logmag + FEATURE_SHIFT) / FEATURE_SCALE).reshape(batch, -1, frames)
        return features * self.pitch_weights

    def forward(self, wav: Tensor, record: list[Tensor] | None = None) -> Tensor:
        features = self.features(wav)
        x = self.proj_in(features)
        if record is not None:
            record.append(x)
        for block in self.blocks:
            x = block(x)
            if record is not None:
                record.append(x)
        return self.linear(features) + self.proj_out(x)


class SpectralDecoder(nn.Module):
    """z_q (B, D, T') -> wav (B, C, T' * hop) through a predicted magnitude and Griffin-Lim."""

    takes_band_levels = True  # render() scales its magnitude to a file's band levels

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.sample_rate = config.sample_rate
        self.n_fft, self.hop = config.n_fft, config.hop_length
        self.bins, self.channels = self.n_fft // 2 + 1, config.channels
        self.iters, self.phase_init = config.griffin_lim_iters, config.phase_init
        dim = config.spectral_dim
        self.conv_in = nn.Conv1d(config.latent_dim, dim, kernel_size=7, padding=3)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        scale = 1.0 / config.spectral_layers
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(dim, scale) for _ in range(config.spectral_layers)
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        # log-magnitude = linear(z_q) + a ConvNeXt branch whose head starts at zero; the linear
        # map starts as the inverse of the encoder's principal components
        self.linear = nn.Conv1d(config.latent_dim, config.channels * self.bins, kernel_size=1)
        nn.init.normal_(self.linear.weight, std=0.1 * config.latent_dim**-0.5)
        nn.init.constant_(self.linear.bias, math.log(0.01))  # a quiet flat spectrum
        self.head = nn.Linear(dim, config.channels * self.bins)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # a gain (log-magnitude, nepers) per number of levels decoded: a decoder trained by L1 on
        # log-magnitudes predicts each bin's median and renders fewer levels too quiet (shipped
        # codec: -2.7 / -1.9 / -1.2 dB at 5 / 8 / 14 levels); scripts/calibrate_level.py measures
        # it on training music. Zero: no change (files from before it load with zeros)
        self.register_buffer("level_gain", torch.zeros(config.num_levels))

    def log_magnitude(self, z_q: Tensor) -> Tensor:
        """z_q (B, D, T') -> predicted log(|STFT| + LOG_FLOOR) (B, C, bins, T' + 1)."""
        z_q = F.pad(z_q, (0, 1), mode="replicate")  # a centred STFT has T' + 1 frames
        x = self.norm_in(self.conv_in(z_q).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.norm_out(x.transpose(1, 2))) + self.linear(z_q).transpose(1, 2)
        x = x.float()  # (B, n, C * bins)
        batch, frames = x.shape[:2]
        x = x.clamp(max=8.0)  # e^8 ~ 3000: above any bin of a full-scale sine (~1024)
        return x.view(batch, frames, self.channels, self.bins).permute(0, 2, 3, 1)

    def render(
        self,
        log_mag: Tensor,
        num_levels: int | None = None,
        band_levels: bands.BandLevels | None = None,
        iters: int | None = None,
        offset: int = 0,
    ) -> Tensor:
        """Predicted log-magnitude (B, C, bins, n) -> wav (B, C, (n - 1) * hop). The magnitude is
        scaled to the sent ``band_levels`` (batch 1; values (C, bands, spans)) when given, else
        by the calibrated gain of ``num_levels`` decoded levels (None: no gain). ``iters``
        Griffin-Lim iterations (None: the config's ``griffin_lim_iters``), started as the
        config's ``phase_init`` says; ``offset``: the first frame's index in the whole signal."""
        batch, channels = log_mag.shape[:2]
        magnitude = self.magnitude(log_mag, num_levels, band_levels)
        iters = self.iters if iters is None else iters
        wav = griffin_lim(
            magnitude, self.n_fft, self.hop, iters, init=self.phase_init, offset=offset
        )
        return wav.view(batch, channels, -1)

    def magnitude(
        self,
        log_mag: Tensor,
        num_levels: int | None = None,
        band_levels: bands.BandLevels | None = None,
    ) -> Tensor:
        """Predicted log-magnitude (B, C, bins, n) -> the magnitude ``render`` renders
        (B * C, bins, n): scaled to ``band_levels`` when given, else by the gain of
        ``num_levels`` decoded levels (None: no gain)."""
        bins, frames = log_mag.shape[-2:]
        magnitude = (log_mag.exp() - LOG_FLOOR).clamp(min=0.0).reshape(-1, bins, frames)
        if band_levels is not None:
            return bands.apply(magnitude, band_levels, self.n_fft, self.sample_rate)
        if num_levels is not None:
            return magnitude * self.level_gain[num_levels - 1].exp()
        return magnitude

    def forward(self, z_q: Tensor, *args, **kwargs) -> Tensor:
        """z_q (B, D, T') -> wav: :meth:`render` (same further arguments) of the prediction."""
        return self.render(self.log_magnitude(z_q), *args, **kwargs)


@torch.no_grad()
def initialize_from_data(
    encoder: FourierEncoder, decoder: nn.Module, wav: Tensor, whiten: float = 0.5
) -> int:
    """Start the encoder's linear map as the top principal components of its (pitch-weighted)
    features on ``wav`` (B, C, T), scaled so z has unit RMS, and a spectral decoder's linear map
    as the least-squares map from those z back to log-magnitude, so a fresh codec is a PCA codec
    of log spectra. ``whiten``: component i is scaled by its variance^(-whiten / 2) before the
    quantizer sees it. Half-whitening spreads the quantizer's bits over the components that carry
    the notes; measured on held-out music at init, chroma at 1.5 / 3 / 6 kbps is 0.18 / 0.39 /
    0.49 unwhitened, 0.41 / 0.54 / 0.72 at 0.5, 0.30 / 0.35 / 0.47 fully whitened. Returns the
    number of frames used."""
    features = encoder.features(wav)  # (B, F, T)
    x = features.transpose(1, 2).reshape(-1, features.shape[1]).double()
    mean = x.mean(0)
    centred = x - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred / len(x))
    k = encoder.linear.out_channels
    top = eigenvectors[:, -k:].flip(1)  # (F, k), largest first
    variances = eigenvalues[-k:].flip(0).clamp(min=1e-12)
    # whiten in [0, 1]: component i scaled by variance^(-whiten / 2), then z at unit RMS
    gains = variances.pow(-whiten / 2)
    scale = (variances * gains.pow(2)).mean().sqrt().clamp(min=1e-6)
    weight = (top * gains).T / scale  # z = weight (x - mean)
    encoder.linear.weight.copy_(weight.unsqueeze(-1).float())
    encoder.linear.bias.copy_((-weight @ mean).float())
    if isinstance(decoder, SpectralDecoder):
        z = centred @ weight.T  # (N, k)
        frames = features.shape[-1]
        target = log_magnitude(wav, encoder.n_fft, encoder.hop)[..., :frames]  # (B, C, bins, T)
        target = target.permute(0, 3, 1, 2).reshape(len(x), -1).double()
        design = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)
        ridge = 1e-3 * torch.eye(design.shape[1], dtype=z.dtype)
        solution = torch.linalg.solve(design.T @ design + ridge, design.T @ target)  # (k+1, CF)
        if solution.shape[1] == decoder.linear.out_channels:
            decoder.linear.weight.copy_(solution[:-1].T.unsqueeze(-1).float())
            decoder.linear.bias.copy_(solution[-1].float())
    encoder.initialized.fill_(True)
    return len(x)
