"""How far is a set of pieces from real music? A set-level distance on hand-crafted features.

Each window (default 10 s) becomes a vector of :func:`window_features`: MFCC means and stds,
spectral contrast per octave band, key-invariant chroma statistics, rhythm figures
(vqaudio/eval/rhythm.py), spectral shape and loudness dynamics; no pretrained network.

Between two sets, :func:`kernel_distance` is the kernel inception distance (KID; Binkowski et al.
2018): the unbiased squared MMD with the polynomial kernel k(x, y) = (x.y / d + 1)^3, on features
standardised by the reference (real) set. It is chosen over the Fréchet distance because our sets
are small (tens of windows) beside ~90 dimensions: a Fréchet distance needs a covariance that
24 windows cannot estimate (rank <= 23, so its value depends on the set size and on the
shrinkage), while KID is unbiased at any size; its expectation is 0 for two sets of one
distribution (a small negative value is noise). :func:`frechet_distance` with a shrunk
covariance is kept for comparison with published FD figures.

Calibrate it on the data at hand: real against real (two halves of the real windows) is the
noise floor, real music through the codec against real music the best a prior of its codes
can reach.
"""

from __future__ import annotations

import numpy as np

from .rhythm import HOP, beat_confidence, mono, onset_envelope, pulse_clarity, tempo_stability
from .tonal import CHROMA_HOP, block_chroma, frame_chroma, pitch_hold

WINDOW_SECONDS = 10.0


def windows(wav: np.ndarray, sample_rate: int, seconds: float = WINDOW_SECONDS) -> list[np.ndarray]:
    """Consecutive non-overlapping ``seconds`` windows of the mono mix (a remainder dropped)."""
    y = mono(wav)
    size = round(seconds * sample_rate)
    return [y[i : i + size] for i in range(0, len(y) - size + 1, size)]


def _mean_std(prefix: str, rows: np.ndarray) -> dict[str, float]:
    rows = np.atleast_2d(rows)
    out = {f"{prefix}{i}_mean": float(v) for i, v in enumerate(rows.mean(axis=1))}
    out.update({f"{prefix}{i}_std": float(v) for i, v in enumerate(rows.std(axis=1))})
    return out


def _chroma_features(y: np.ndarray, sample_rate: int) -> dict[str, float]:
    chroma = frame_chroma(y, sample_rate)  # (12, frames), each frame's max 1
    profile = np.sort(chroma.mean(axis=1))[::-1]  # sorted: key-invariant
    blocks = block_chroma(chroma, max(1, round(0.5 * sample_rate / CHROMA_HOP))).T
    blocks = blocks - blocks.mean(axis=1, keepdims=True)
    norm = np.sqrt((blocks[:-1] ** 2).sum(1) * (blocks[1:] ** 2).sum(1))
    flux = 1 - (blocks[:-1] * blocks[1:]).sum(1) / np.maximum(norm, 1e-12)
    p = chroma / np.maximum(chroma.sum(axis=0, keepdims=True), 1e-12)
    out = {f"chroma_profile{i}": float(v) for i, v in enumerate(profile)}
    out.update(
        chroma_peak=float(np.mean(chroma.max(axis=0) / np.maximum(chroma.mean(axis=0), 1e-9))),
        chroma_std=float(chroma[int(np.argmax(chroma.mean(axis=1)))].std()),
        chroma_flux=float(flux.mean()) if len(flux) else 0.0,
        chroma_entropy=float(np.mean(-(p * np.log2(np.maximum(p, 1e-12))).sum(axis=0))),
        pitch_hold_s=pitch_hold(y, sample_rate),
    )
    return out


def _rhythm_features(y: np.ndarray, sample_rate: int) -> dict[str, float]:
    import librosa

    env = onset_envelope(y, sample_rate)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=HOP)
    tempo = librosa.feature.tempo(onset_envelope=env, sr=sample_rate, hop_length=HOP)[0]
    return {
        "pulse_clarity": pulse_clarity(y, sample_rate),
        "beat_confidence": beat_confidence(y, sample_rate),
        "tempo_stability": tempo_stability(y, sample_rate),
        "onset_rate": len(onsets) / (len(y) / sample_rate),
        "log2_tempo": float(np.log2(max(tempo, 1.0))),
        "onset_env_mean": float(env.mean()),
        "onset_env_std": float(env.std()),
    }


def _spectral_features(y: np.ndarray, sample_rate: int) -> dict[str, float]:
    import librosa

    spectrum = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    mfcc = librosa.feature.mfcc(
        S=librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum**2, sr=sample_rate)),
        n_mfcc=20,
    )
    bands = min(6, int(np.log2(sample_rate / 2 / 200.0)) - 1)
    contrast = librosa.feature.spectral_contrast(S=spectrum, sr=sample_rate, n_bands=bands)
    rms_db = 20 * np.log10(librosa.feature.rms(S=spectrum)[0] + 1e-6)
    shape = {
        "centroid": librosa.feature.spectral_centroid(S=spectrum, sr=sample_rate)[0],
        "bandwidth": librosa.feature.spectral_bandwidth(S=spectrum, sr=sample_rate)[0],
        "log_flatness": np.log10(librosa.feature.spectral_flatness(S=spectrum)[0] + 1e-10),
        "rolloff": librosa.feature.spectral_rolloff(S=spectrum, sr=sample_rate)[0],
        "zcr": librosa.feature.zero_crossing_rate(y, hop_length=512)[0],
    }
    out = {**_mean_std("mfcc", mfcc), **_mean_std("contrast", contrast)}
    for name, values in shape.items():
        out[f"{name}_mean"], out[f"{name}_std"] = float(values.mean()), float(values.std())
    out.update(
        rms_db_mean=float(rms_db.mean()),
        rms_db_std=float(rms_db.std()),
        rms_db_range=float(np.percentile(rms_db, 90) - np.percentile(rms_db, 10)),
    )
    return out


def window_features(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Named hand-crafted features (~90) of one window: spectral, tonal and rhythmic."""
    y = mono(wav)
    return {
        **_spectral_features(y, sample_rate),
        **_chroma_features(y, sample_rate),
        **_rhythm_features(y, sample_rate),
    }


def feature_matrix(wavs: list[np.ndarray], sample_rate: int) -> tuple[list[str], np.ndarray]:
    """(names, (windows, features)) of the :func:`windows` of every piece in ``wavs``."""
    rows = [window_features(w, sample_rate) for wav in wavs for w in windows(wav, sample_rate)]
    if not rows:
        raise ValueError(f"no piece is {WINDOW_SECONDS:g} s long: no window to measure")
    names = list(rows[0])
    return names, np.array([[r[k] for k in names] for r in rows], dtype=float)


def standardise(x: np.ndarray, reference: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """``x`` in units of the reference set's per-feature mean and std, clipped to +-``clip``
    (further than 10 real stds is far; unclipped, one feature of a drone, where real music's
    std is tiny, would outweigh all others by orders of magnitude)."""
    std = reference.std(axis=0)
    z = (x - reference.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
    return np.clip(z, -clip, clip)


def kernel_distance(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased squared MMD of two sets (rows), polynomial kernel (x.y / d + 1)^degree."""
    if len(x) < 2 or len(y) < 2:
        raise ValueError("the kernel distance needs at least 2 windows in each set")
    d = x.shape[1]

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / d + 1.0) ** degree

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


def frechet_distance(x: np.ndarray, y: np.ndarray, shrinkage: float = 0.1) -> float:
    """Fréchet distance of Gaussians fitted to two sets, each covariance shrunk toward its
    diagonal: (1 - shrinkage) * C + shrinkage * diag(C)."""
    from scipy import linalg

    def moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cov = np.cov(a, rowvar=False)
        return a.mean(axis=0), (1 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))

    (mx, cx), (my, cy) = moments(x), moments(y)
    root = linalg.sqrtm(cx @ cy)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * root))


def largest_departures(
    names: list[str], x: np.ndarray, reference: np.ndarray, count: int = 5
) -> list[tuple[str, float]]:
    """The ``count`` features whose median in ``x`` lies furthest from the reference's median,
    in reference standard deviations (signed: negative is lower than real)."""
    std = reference.std(axis=0)
    z = (np.median(x, axis=0) - np.median(reference, axis=0)) / np.where(std > 1e-12, std, 1.0)
    order = np.argsort(-np.abs(z))[:count]
    return [(names[i], float(z[i])) for i in order]
