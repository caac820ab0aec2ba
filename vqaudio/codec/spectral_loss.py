"""The spectral decoder's training loss: log-magnitude, mel, spectral convergence, level and
chroma terms on predicted log-magnitudes (``spectral.SpectralDecoder``), optionally scaled to the
input's band levels as a file's decode is."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import band_levels as bands
from .griffin_lim import griffin_lim
from .spectral import LOG_FLOOR, log_magnitude, pitch_weights


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
