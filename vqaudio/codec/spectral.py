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
  peak are locked to it (Laroche & Dolson 1999). On held-out music that start gives 16
  iterations the chroma, mel distance and ViSQOL of 32 from zero phase, or better (model card).
  Every iteration only couples frames whose windows overlap, and the locked start accumulates
  phase only within runs of ``PHASE_RESET_FRAMES`` frames counted from the signal's start, so a
  chunk decoded with the context ``margins.decoder_margin_blocks`` computes either side (and its
  offset in the signal) equals a one-pass decode.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import band_levels as bands
from ..config import PHASE_INITS, CodecConfig
from .decoder import ConvNeXtBlock

# log-magnitude features: log(|X| + 1e-4), shifted and scaled so music sits around [-1, 1]
# (measured on the training music: mean -2.1, std 2.6 with a 2048-sample Hann window)
LOG_FLOOR = 1e-4
FEATURE_SHIFT, FEATURE_SCALE = 2.0, 2.5
# the locked phase start accumulates each bin's phase within runs of this many frames (1.28 s at
# hop 480), from frame 0 of the signal: a chunk's start then depends on the frames since the last
# run start only, which the decoding margins cover
PHASE_RESET_FRAMES = 64


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


def locked_phase(
    magnitude: Tensor, n_fft: int, hop: int, offset: int = 0, reset: int = PHASE_RESET_FRAMES
) -> Tensor:
    """magnitude (N, bins, frames) -> unit phasors (complex64) of the same shape: a Griffin-Lim
    start in which each frame's spectral peaks (local maxima along frequency) keep the phase a
    steady sinusoid at the peak's frequency would have, and each bin takes its nearest peak's.

    A peak's frequency comes from a parabola through the log-magnitudes of its bin and its two
    neighbours. Its phase at the frame's centre advances by 2 pi f hop / n_fft from one frame to
    the next; the bins around it are locked to it with the alternating sign of a centred window
    (phase + pi k). The phase is summed over the frames since the last multiple of ``reset``
    frames counted from the signal's start, the first frame here being frame ``offset``."""
    log_mag = (magnitude.float() + 1e-7).log()
    bins, frames = log_mag.shape[-2:]
    below = F.pad(log_mag, (0, 0, 1, 0), value=-1e9)[..., :-1, :]
    above = F.pad(log_mag, (0, 0, 0, 1), value=-1e9)[..., 1:, :]
    peak = (log_mag >= below) & (log_mag > above)
    curve = below - 2 * log_mag + above
    shift = torch.where(
        peak & (curve < -1e-6), 0.5 * (below - above) / curve.clamp(max=-1e-6), 0.0
    ).clamp(-0.5, 0.5)
    k = torch.arange(bins, dtype=log_mag.dtype, device=log_mag.device)[:, None].expand_as(log_mag)
    # each bin's nearest peak (the lower one on a tie); a frame without peaks keeps bin 0
    lower = torch.cummax(torch.where(peak, k, -1e9), dim=-2).values
    upper = torch.where(peak, k, 1e9).flip(-2).cummin(dim=-2).values.flip(-2)
    owner = torch.where(k - lower <= upper - k, lower, upper).clamp(0, bins - 1).long()
    advance = torch.gather(k + shift, -2, owner) * (2 * math.pi * hop / n_fft)
    # sum along time within runs of ``reset`` frames, counted from frame -offset
    head = offset % reset
    padded = F.pad(advance, (head, (-(head + frames)) % reset))
    runs = padded.unflatten(-1, (-1, reset)).cumsum(dim=-1).flatten(-2)[..., head : head + frames]
    phase = torch.gather(runs, -2, owner) + math.pi * k
    return torch.polar(torch.ones_like(phase), phase)


def griffin_lim(
    magnitude: Tensor,
    n_fft: int,
    hop: int,
    iters: int,
    momentum: float = 0.99,
    init: str = "zero",
    offset: int = 0,
):
    """magnitude (N, bins, frames) -> wav (N, (frames - 1) * hop) by fast Griffin-Lim from zero
    phase (``init`` zero) or from ``locked_phase`` (``init`` locked; ``offset``: the index of the
    first frame in the whole signal): each iteration projects onto consistent spectrograms and
    keeps the given magnitude."""
    window = torch.hann_window(n_fft, device=magnitude.device, dtype=magnitude.dtype)
    wanted = (magnitude.shape[-1] - 1) * hop
    extra = max(0, n_fft // (2 * hop) + 2 - magnitude.shape[-1])
    if extra:  # too short for the STFT's reflect padding: render with silence after it
        magnitude = F.pad(magnitude, (0, extra))
    length = (magnitude.shape[-1] - 1) * hop
    if init == "locked":
        angles = locked_phase(magnitude.detach(), n_fft, hop, offset)
    elif init == "zero":
        angles = torch.ones_like(magnitude, dtype=torch.complex64)
    else:
        raise ValueError(f"init must be one of {PHASE_INITS}, not {init!r}")
    previous = torch.zeros_like(angles)
    differentiable = torch.is_grad_enabled() and magnitude.requires_grad
    for _ in range(iters):
        wav = torch.istft(magnitude * angles, n_fft, hop, window=window, length=length)
        rebuilt = torch.stft(wav, n_fft, hop, window=window, return_complex=True)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        previous = rebuilt
        if differentiable:  # |z| with a floor inside the root: finite gradients at a zero bin
            angles = angles / (angles.real.pow(2) + angles.imag.pow(2) + 1e-16).sqrt()
        else:  # one op instead of five: 25 % of a 30 s render at 1 thread (measured)
            angles = torch.sgn(angles)
    wav = torch.istft(magnitude * angles, n_fft, hop, window=window, length=length)
    return wav[..., :wanted]


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

    def forward(
        self,
        z_q: Tensor,
        num_levels: int | None = None,
        band_levels: bands.BandLevels | None = None,
        iters: int | None = None,
        offset: int = 0,
    ) -> Tensor:
        return self.render(self.log_magnitude(z_q), num_levels, band_levels, iters, offset)


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


def level_loss(log_mag_hat: Tensor, log_mag: Tensor) -> Tensor:
    """|log(mean power of the prediction) - log(mean power of the target)|, the mean over frames
    and bins taken per item and channel, then averaged: log-magnitudes (B, C, bins, frames) ->
    a scalar in nepers of power (1 dB of level error = ln(10) / 10 = 0.23).

    Why: L1 in the log domain predicts each bin's median, which sits below its mean power where
    the decoder is unsure, so the decoded audio comes out quiet (2-5 dB at low bitrates); this
    term asks for the right energy and leaves its distribution over bins to the other terms.
    Per clip, not per frame: a per-frame ratio weighs a near-silent frame (whose log power is
    noisy and sits at the floor) as much as a loud one, and the per-frame envelope is already
    held by the mel term; the clip's mean power is the RMS level that ``level_db`` reports."""
    # log of the mean of |X|^2 as a logsumexp of 2 log|X| (the mean count cancels in the ratio)
    level_hat = torch.logsumexp(2 * log_mag_hat.flatten(-2), dim=-1)  # (B, C)
    level = torch.logsumexp(2 * log_mag.flatten(-2), dim=-1)
    return (level_hat - level).abs().mean()


class SpectralLoss(nn.Module):
    """Loss of a predicted log-magnitude against the input's: log-magnitude L1 weighted towards
    the low bins (``pitch_weights``, normalised to mean 1), log10-mel L1 at two band counts,
    spectral convergence (puts the weight on the loud peaks that carry the notes) and, with
    ``level_weight``, the level term (``level_loss``)."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop: int,
        log_weight: float = 1.0,
        mel_weight: float = 15.0,
        convergence_weight: float = 1.0,
        n_mels: tuple[int, ...] = (64, 128),
        chroma_weight: float = 0.0,
        rendered_chroma_weight: float = 0.0,
        rendered_iters: int = 8,
        level_weight: float = 0.0,
        band_span_frames: int = 0,
        band_resolution: str = bands.DEFAULT_RESOLUTION,
        detach_gain: bool = False,
    ):
        super().__init__()
        from .losses import _mel_basis

        # > 0: the reconstruction terms see the prediction scaled to the target's band levels
        # (rounded to 1 dB, spans of this many frames), as a file's decode is: the decoder's
        # capacity goes to the shape within each band, not to a level that is sent anyway
        self.band_span_frames = band_span_frames
        self.band_edges = bands.band_edges(sample_rate, band_resolution)
        self.detach_gain = detach_gain
        self.n_fft, self.hop = n_fft, hop
        self.weights = {
            "logmag": log_weight,
            "mel": mel_weight,
            "sc": convergence_weight,
            "chroma": chroma_weight,
            "rchroma": rendered_chroma_weight,
            "level": level_weight,
        }
        self.rendered_iters = rendered_iters
        self.sample_rate = sample_rate
        import librosa

        chroma = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft)
        self.register_buffer("chroma_basis", torch.from_numpy(chroma).float(), persistent=False)
        bins = pitch_weights(sample_rate, n_fft)
        self.register_buffer("bin_weights", (bins / bins.mean()).view(-1, 1), persistent=False)
        for n in n_mels:
            self.register_buffer(f"mel_{n}", _mel_basis(sample_rate, n_fft, n), persistent=False)
        self.n_mels = n_mels

    def forward(self, log_mag_hat: Tensor, wav: Tensor) -> dict[str, Tensor]:
        target = log_magnitude(wav, self.n_fft, self.hop)
        frames = min(target.shape[-1], log_mag_hat.shape[-1])
        target, log_mag_hat = target[..., :frames], log_mag_hat[..., :frames]
        raw = log_mag_hat
        if self.band_span_frames:
            log_mag_hat = self.match_band_levels(log_mag_hat, target)
        mag_hat, mag = log_mag_hat.exp(), target.exp()
        terms = {"logmag": ((log_mag_hat - target).abs() * self.bin_weights).mean()}
        mel = 0.0
        for n in self.n_mels:
            basis = getattr(self, f"mel_{n}")
            x = torch.matmul(basis, mag_hat).clamp(min=1e-5).log10()
            y = torch.matmul(basis, mag).clamp(min=1e-5).log10()
            mel = mel + F.l1_loss(x, y)
        terms["mel"] = mel / len(self.n_mels)
        terms["sc"] = torch.linalg.norm(mag - mag_hat) / torch.linalg.norm(mag).clamp(min=1e-7)
        if self.weights["chroma"] > 0:
            terms["chroma"] = self._chroma_loss(mag_hat, mag)
        if self.weights["rchroma"] > 0:
            terms["rchroma"] = self._rendered_chroma_loss(mag_hat, wav)
        if self.weights["level"] > 0:
            terms["level"] = level_loss(raw, target)  # files without band levels
        terms["total"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms

    def match_band_levels(self, log_mag_hat: Tensor, target: Tensor) -> Tensor:
        """The prediction (B, C, bins, frames) scaled, band by band and span by span, to the
        target's band levels in integer dB (``band_levels.match``, what a decode applies).

        Measured (docs/MODEL_CARD.md): 200 steps from the shipped decoder with this on (16 bands
        every 0.4 s, lr 2e-4) moved held-out chroma at 1.5 / 3 / 6 kbps 0.738 / 0.816 / 0.915 ->
        0.734 / 0.804 / 0.890 and mel not at all (``benchmarks/quality.py``). With the gain a
        constant to the gradient (``detach_gain``) the raw levels drift: -10 dB after 100 steps,
        beyond what the sent levels correct (``MAX_GAIN_DB``)."""
        batch, channels, bins, frames = log_mag_hat.shape
        frame_spans = bands.spans(0, frames, self.band_span_frames)
        edges = self.band_edges
        mag_hat = (log_mag_hat.exp() - LOG_FLOOR).clamp(min=0.0).reshape(-1, bins, frames)
        with torch.no_grad():
            mag = (target.exp() - LOG_FLOOR).clamp(min=0.0).reshape(-1, bins, frames)
            sent = bands.span_power_db(mag.pow(2), edges, self.n_fft, self.sample_rate, frame_spans)
        matched = bands.match(
            mag_hat,
            sent.round(),
            frame_spans,
            edges,
            self.n_fft,
            self.sample_rate,
            self.detach_gain,
        )
        return (matched + LOG_FLOOR).log().view(batch, channels, bins, frames)

    def _rendered_chroma_loss(self, mag_hat: Tensor, wav: Tensor) -> Tensor:
        """The chroma loss of what the listener gets: the predicted magnitude rendered by a few
        (differentiable) Griffin-Lim iterations, analysed at the metric's 4096-sample window."""
        batch, channels, bins, frames = mag_hat.shape
        rendered = griffin_lim(
            (mag_hat - LOG_FLOOR).clamp(min=0).reshape(-1, bins, frames),
            self.n_fft,
            self.hop,
            self.rendered_iters,
        )
        length = min(rendered.shape[-1], wav.shape[-1])
        reference = wav.reshape(-1, wav.shape[-1])[:, :length]
        basis = self._chroma_4096()
        window = torch.hann_window(4096, device=wav.device)

        def magnitude(x: Tensor) -> Tensor:
            spec = torch.stft(x, 4096, 1024, window=window, return_complex=True)
            return (spec.real.pow(2) + spec.imag.pow(2) + 1e-12).sqrt().unsqueeze(1)

        return self._chroma_loss(
            magnitude(rendered[:, :length]), magnitude(reference.float()), basis
        )

    def _chroma_4096(self) -> Tensor:
        if not hasattr(self, "_basis_4096"):
            import librosa

            chroma = librosa.filters.chroma(sr=self.sample_rate, n_fft=4096)
            self._basis_4096 = torch.from_numpy(chroma).float()
        return self._basis_4096

    def _chroma_loss(self, mag_hat: Tensor, mag: Tensor, basis: Tensor | None = None) -> Tensor:
        """1 - the per-frame Pearson correlation of the two chroma vectors (librosa's chroma
        filters on the power spectrum), over the frames within 40 dB of each clip's loudest: the
        quantity ``metrics.chroma_correlation`` reports, at the codec's own window."""
        basis = self.chroma_basis if basis is None else basis.to(mag.device)
        c_hat = torch.matmul(basis, mag_hat.pow(2))  # (B, C, 12, T)
        c = torch.matmul(basis, mag.pow(2))
        c_hat = c_hat - c_hat.mean(dim=-2, keepdim=True)
        c = c - c.mean(dim=-2, keepdim=True)
        corr = (c_hat * c).sum(-2) / (c_hat.norm(dim=-2) * c.norm(dim=-2)).clamp(min=1e-8)
        energy = mag.pow(2).sum(-2)  # (B, C, T)
        loud = (energy >= energy.amax(-1, keepdim=True) * 1e-4).float()
        return ((1 - corr) * loud).sum() / loud.sum().clamp(min=1)
