"""Reconstruction losses: waveform L1, multi-resolution STFT and log-mel.

Spectra come from torch.stft with librosa mel filters (no torchaudio).
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import torch
import torch.nn.functional as F
from torch import Tensor, nn


@lru_cache(maxsize=32)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    mel = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2
    )
    return torch.from_numpy(mel).float()


def stft_magnitude(wav: Tensor, window_length: int, hop_length: int | None = None) -> Tensor:
    """wav (..., T) -> |STFT| (..., window_length // 2 + 1, frames), Hann window, centred."""
    hop_length = hop_length or window_length // 4
    flat = wav.reshape(-1, wav.shape[-1])
    if flat.shape[-1] < window_length:  # very short clips: pad so one frame exists
        flat = F.pad(flat, (0, window_length - flat.shape[-1]))
    window = torch.hann_window(window_length, device=wav.device, dtype=flat.dtype)
    spec = torch.stft(
        flat, window_length, hop_length, window=window, center=True, return_complex=True
    )
    return spec.abs().reshape(*wav.shape[:-1], *spec.shape[-2:])


def mel_spectrogram(wav: Tensor, sample_rate: int, window_length: int, n_mels: int) -> Tensor:
    """wav (..., T) -> mel magnitude (..., n_mels, frames)."""
    mag = stft_magnitude(wav, window_length)
    basis = _mel_basis(sample_rate, window_length, n_mels).to(mag.device, mag.dtype)
    return torch.matmul(basis, mag)


class MultiScaleMelLoss(nn.Module):
    """Mean over scales of L1 between log10 mel spectrograms (DAC's mel distance).

    The defaults (7 windows 32..2048, mels 5..320) are the quality metric the benchmarks report.
    """

    def __init__(
        self,
        sample_rate: int,
        window_lengths: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048),
        n_mels: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320),
        clamp_eps: float = 1e-5,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.window_lengths = window_lengths
        self.n_mels = n_mels
        self.clamp_eps = clamp_eps

    def forward(self, wav_hat: Tensor, wav: Tensor) -> Tensor:
        loss = wav.new_zeros(())
        for window, mels in zip(self.window_lengths, self.n_mels):
            x = mel_spectrogram(wav_hat, self.sample_rate, window, mels)
            y = mel_spectrogram(wav, self.sample_rate, window, mels)
            loss = loss + F.l1_loss(
                x.clamp(min=self.clamp_eps).log10(), y.clamp(min=self.clamp_eps).log10()
            )
        return loss / len(self.window_lengths)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions."""

    def __init__(self, window_lengths: tuple[int, ...] = (512, 1024, 2048)):
        super().__init__()
        self.window_lengths = window_lengths

    def forward(self, wav_hat: Tensor, wav: Tensor) -> Tensor:
        loss = wav.new_zeros(())
        for window in self.window_lengths:
            x, y = stft_magnitude(wav_hat, window), stft_magnitude(wav, window)
            convergence = torch.linalg.norm(y - x) / torch.linalg.norm(y).clamp(min=1e-7)
            log_mag = F.l1_loss(x.clamp(min=1e-5).log(), y.clamp(min=1e-5).log())
            loss = loss + convergence + log_mag
        return loss / len(self.window_lengths)


class ReconstructionLoss(nn.Module):
    """Weighted sum of waveform L1, multi-scale mel and multi-resolution STFT losses."""

    def __init__(
        self,
        sample_rate: int,
        l1_weight: float = 1.0,
        mel_weight: float = 15.0,
        stft_weight: float = 1.0,
    ):
        super().__init__()
        self.weights = {"l1": l1_weight, "mel": mel_weight, "stft": stft_weight}
        self.mel = MultiScaleMelLoss(sample_rate)
        self.stft = MultiResolutionSTFTLoss()

    def forward(self, wav_hat: Tensor, wav: Tensor) -> dict[str, Tensor]:
        """Returns each term and their weighted 'total'."""
        terms = {"l1": F.l1_loss(wav_hat, wav), "mel": self.mel(wav_hat, wav)}
        if self.weights["stft"] > 0:
            terms["stft"] = self.stft(wav_hat, wav)
        terms["total"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms
