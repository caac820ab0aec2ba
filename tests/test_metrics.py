"""Metric properties: perfect scores for identical signals, delays found, SNR recovered, gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqaudio.errors import AudioError
from vqaudio.eval.metrics import (
    estimate_delay,
    level_difference,
    mel_distance,
    remove_delay,
    score,
    si_sdr,
    spectral_convergence,
)

RATE = 16000


def music_like(seconds: float = 1.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Harmonic tones with an amplitude envelope plus a little noise: broadband, not periodic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    out = []
    for _ in range(channels):
        wav = sum(
            rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
            for f in rng.uniform(80, 4000, size=6)
        )
        wav = wav * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)) + 0.01 * rng.standard_normal(len(t))
        out.append(wav)
    return np.stack(out).astype(np.float32)


def test_identical_signals_score_perfect():
    wav = music_like(channels=2)
    result = score(wav, wav.copy(), RATE)
    assert result["mel_distance"] == pytest.approx(0.0, abs=1e-6)
    assert result["spectral_convergence"] == pytest.approx(0.0, abs=1e-6)
    assert result["si_sdr_db"] > 100
    assert result["level_difference_db"] == pytest.approx(0.0, abs=1e-6)
    assert result["delay_samples"] == 0


def test_distortion_makes_every_metric_worse():
    wav = music_like()
    noisy = wav + 0.05 * np.random.default_rng(1).standard_normal(wav.shape).astype(np.float32)
    result = score(wav, noisy, RATE)
    assert result["mel_distance"] > 0.05
    assert result["spectral_convergence"] > 0.01
    assert result["si_sdr_db"] < 30


@pytest.mark.parametrize("delay", [312, -57, 1])
def test_known_delay_is_found_and_compensated(delay):
    wav = music_like(seconds=1.5)
    if delay > 0:
        shifted = np.concatenate([np.zeros((1, delay), np.float32), wav[:, :-delay]], axis=1)
    else:
        shifted = np.concatenate([wav[:, -delay:], np.zeros((1, -delay), np.float32)], axis=1)
    assert estimate_delay(wav, shifted, RATE) == delay
    compensated = score(wav, shifted, RATE)
    assert compensated["delay_samples"] == delay
    assert compensated["delay_ms"] == pytest.approx(1000 * delay / RATE)
    assert compensated["si_sdr_db"] > 60
    assert compensated["mel_distance"] < 1e-3
    if abs(delay) > 10:  # uncompensated, the same pair scores badly
        assert score(wav, shifted, RATE, compensate_delay=False)["si_sdr_db"] < 10


def notes_with_onsets(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Decaying harmonic notes starting at random times: an envelope with sharp onsets."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wav = np.zeros_like(t)
    for start in rng.uniform(0, seconds - 0.3, size=12):
        f, age = rng.uniform(150, 900), t - start
        note = sum(np.sin(2 * np.pi * k * f * t) / k for k in (1, 2, 3)) * np.exp(-age / 0.15)
        wav += np.where(age >= 0, note, 0.0) * rng.uniform(0.1, 0.3)
    return wav[None].astype(np.float32)


def rebuilt_phase(wav: np.ndarray, seed: int = 0) -> np.ndarray:
    """The same STFT magnitudes with random phases: what a phase-free decoder returns."""
    x = torch.from_numpy(wav[0]).double()
    window = torch.hann_window(512, dtype=torch.float64)
    spec = torch.stft(x, 512, 128, window=window, return_complex=True)
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(spec.shape, generator=g, dtype=torch.float64) * 2 * torch.pi
    out = torch.istft(spec.abs() * torch.exp(1j * phase), 512, 128, window=window, length=len(x))
    return out.numpy()[None].astype(np.float32)


@pytest.mark.parametrize("delay", [0, 240, -160])
def test_delay_of_a_phase_free_decode_comes_from_its_envelope(delay):
    # no waveform match to find: the waveform's cross-correlation peaks at a random lag, the
    # loudness envelope's at the real one (to within a few ms)
    wav = notes_with_onsets()
    decoded = np.roll(rebuilt_phase(wav), delay, axis=1)
    assert abs(estimate_delay(wav, decoded, RATE) - delay) <= 0.004 * RATE


def test_delay_search_is_bounded():
    wav = music_like(seconds=1.0)
    far = np.roll(wav, 4000, axis=1)  # 250 ms: beyond the 50 ms bound
    assert abs(estimate_delay(wav, far, RATE)) <= int(0.05 * RATE)
    assert estimate_delay(wav, far, RATE, max_delay_seconds=0.3) == 4000


def test_remove_delay_crops_to_common_length():
    ref, dec = np.ones((2, 100)), np.ones((2, 90))
    a, b = remove_delay(ref, dec, 5)
    assert a.shape == b.shape == (2, 85)
    a, b = remove_delay(ref, dec, -5)
    assert a.shape == b.shape == (2, 90)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_noise_at_known_snr_gives_that_si_sdr(snr_db):
    wav = music_like(seconds=2.0).astype(np.float64)
    wav -= wav.mean()
    noise = np.random.default_rng(2).standard_normal(wav.shape)
    noise -= noise.mean()
    noise -= (noise @ wav.T) / (wav @ wav.T) * wav  # orthogonal to the signal: exact SNR
    noise *= np.sqrt((wav**2).sum() / (noise**2).sum() / 10 ** (snr_db / 10))
    result = score(wav, wav + noise, RATE, compensate_delay=False)
    assert result["si_sdr_db"] == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize("gain_db", [-6.0, 3.0])
def test_scaling_changes_level_not_si_sdr(gain_db):
    wav = music_like()
    noisy = wav + 0.02 * np.random.default_rng(3).standard_normal(wav.shape).astype(np.float32)
    scaled = noisy * 10 ** (gain_db / 20)
    base, louder = score(wav, noisy, RATE), score(wav, scaled, RATE)
    assert louder["level_difference_db"] - base["level_difference_db"] == pytest.approx(
        gain_db, abs=1e-3
    )
    assert louder["si_sdr_db"] == pytest.approx(base["si_sdr_db"], abs=1e-3)
    assert level_difference(wav, wav * 0.5) == pytest.approx(-6.02, abs=0.01)


def test_accepts_tensors_and_mono_vectors():
    wav = music_like()
    assert si_sdr(torch.from_numpy(wav), wav[0]) > 100
    assert mel_distance(wav[0], torch.from_numpy(wav), RATE) == pytest.approx(0.0, abs=1e-6)
    assert spectral_convergence(wav, wav * 0) == pytest.approx(1.0)


def test_mismatched_sample_rate_is_resampled():
    t = np.arange(RATE) / RATE
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t))[None]
    t2 = np.arange(2 * RATE) / (2 * RATE)
    at_double_rate = (0.3 * np.sin(2 * np.pi * 440 * t2) + 0.2 * np.sin(2 * np.pi * 1234 * t2))[
        None
    ]
    result = score(wav, at_double_rate, RATE, decoded_sample_rate=2 * RATE)
    assert result["si_sdr_db"] > 30
    assert result["delay_samples"] == 0
    # unresampled, the same pair is nonsense
    assert score(wav, at_double_rate, RATE)["si_sdr_db"] < 0


def test_bad_input_is_refused_clearly():
    wav = music_like(channels=2)
    with pytest.raises(AudioError, match="channel"):
        score(wav, wav[:1], RATE)
    with pytest.raises(AudioError, match="NaN"):
        score(wav, np.full_like(wav, np.nan), RATE)
    with pytest.raises(AudioError, match="no samples"):
        score(wav, np.zeros((2, 0)), RATE)
