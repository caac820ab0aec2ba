"""Are there notes and harmony? Tonal figures of a piece, for generated and real audio alike.

- :func:`spectral_contrast` the mean peak-to-valley depth (dB) of the spectrum in octave bands
  (librosa): partials stand out of a valley, a noise pad has none (real music 17-25 dB);
- :func:`chroma_std` the standard deviation over time of the piece's strongest pitch class
  (per-frame max-normalised chroma): 0 when one pitch class never lets go;
- :func:`pitch_hold` the longest time (s) one pitch class stays the strongest, over 0.5 s
  blocks. Two-sided: a drone holds one for the whole piece, noise flickers between blocks;
- :func:`chord_template` / :func:`estimate_chords` 12-bin chord templates from Harte labels
  (``mir_eval.chord``) and the best major or minor triad per segment (template matching).

Chroma is librosa's STFT chroma (n_fft 4096) of the mono mix, as in vqaudio's structure figures.
"""

from __future__ import annotations

import numpy as np

from .rhythm import mono

CHROMA_N_FFT = 4096
CHROMA_HOP = 1200  # 50 ms at 24 kHz
CONTRAST_BANDS = 5  # octaves above 200 Hz: the top edge (6.4 kHz) stays under 12 kHz Nyquist
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def frame_chroma(wav: np.ndarray, sample_rate: int, hop: int = CHROMA_HOP) -> np.ndarray:
    """(12, frames) chroma, each frame scaled to a maximum of 1 (librosa's default)."""
    import librosa

    power = np.abs(librosa.stft(mono(wav), n_fft=CHROMA_N_FFT, hop_length=hop)) ** 2
    return librosa.feature.chroma_stft(S=power, sr=sample_rate)


def spectral_contrast(wav: np.ndarray, sample_rate: int) -> float:
    """Mean over bands and frames of librosa's spectral contrast (dB, peak minus valley)."""
    import librosa

    bands = min(CONTRAST_BANDS, int(np.log2(sample_rate / 2 / 200.0)) - 1)
    contrast = librosa.feature.spectral_contrast(y=mono(wav), sr=sample_rate, n_bands=bands)
    return float(contrast[:-1].mean())  # the last row is the band above the top edge


def chroma_std(wav: np.ndarray, sample_rate: int, chroma: np.ndarray | None = None) -> float:
    """Std over frames of the chroma of the pitch class with the highest mean chroma."""
    chroma = frame_chroma(wav, sample_rate) if chroma is None else chroma
    return float(chroma[int(np.argmax(chroma.mean(axis=1)))].std())


def block_chroma(chroma: np.ndarray, frames_per_block: int) -> np.ndarray:
    """(12, blocks) mean of consecutive ``frames_per_block`` frames."""
    count = chroma.shape[1] // frames_per_block
    return chroma[:, : count * frames_per_block].reshape(12, count, frames_per_block).mean(axis=2)


def pitch_hold(wav: np.ndarray, sample_rate: int, block_seconds: float = 0.5) -> float:
    """Longest run (s) of ``block_seconds`` blocks whose strongest pitch class is the same."""
    per_block = max(1, round(block_seconds * sample_rate / CHROMA_HOP))
    strongest = block_chroma(frame_chroma(wav, sample_rate), per_block).argmax(axis=0)
    if len(strongest) == 0:
        return 0.0
    changes = np.flatnonzero(strongest[1:] != strongest[:-1])
    edges = np.concatenate([[-1], changes, [len(strongest) - 1]])
    return float(np.diff(edges).max() * per_block * CHROMA_HOP / sample_rate)


def tonal_figures(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every per-piece figure of this module."""
    return {
        "spectral_contrast": spectral_contrast(wav, sample_rate),
        "chroma_std": chroma_std(wav, sample_rate),
        "pitch_hold_s": pitch_hold(wav, sample_rate),
    }


def chord_template(label: str) -> np.ndarray | None:
    """(12,) 0/1 pitch classes of a Harte chord label ("A:min", "F:maj7", "C"), absolute (C
    first); None for no chord ("N", "X"). Raises mir_eval's error for a malformed label."""
    import mir_eval

    root, bitmap, _ = mir_eval.chord.encode(label)
    if root < 0:
        return None
    return np.roll(np.asarray(bitmap, dtype=float), root)


def triad_labels() -> list[str]:
    """The 24 major and minor triads, Harte labels ("C:maj" .. "B:min")."""
    return [f"{p}:{q}" for q in ("maj", "min") for p in PITCH_CLASSES]


def centred_correlation(chroma: np.ndarray, template: np.ndarray) -> float:
    """Pearson correlation of a (12,) chroma with a (12,) template (0 where either is flat)."""
    a, b = chroma - chroma.mean(), template - template.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 1e-12 else 0.0


def segment_chroma(
    wav: np.ndarray, sample_rate: int, intervals: np.ndarray, chroma: np.ndarray | None = None
) -> np.ndarray:
    """(segments, 12) mean chroma of each (start, end) interval in seconds (nan where the
    interval holds no chroma frame)."""
    chroma = frame_chroma(wav, sample_rate) if chroma is None else chroma
    times = (np.arange(chroma.shape[1]) + 0.5) * CHROMA_HOP / sample_rate
    out = np.full((len(intervals), 12), np.nan)
    for i, (start, end) in enumerate(np.asarray(intervals, dtype=float)):
        inside = (times >= start) & (times < end)
        if inside.any():
            out[i] = chroma[:, inside].mean(axis=1)
    return out


def estimate_chords(wav: np.ndarray, sample_rate: int, intervals: np.ndarray) -> list[str]:
    """The major or minor triad (Harte label) whose template correlates best with each
    interval's mean chroma; "N" where an interval holds no chroma frame."""
    templates = {label: chord_template(label) for label in triad_labels()}
    labels = []
    for chroma in segment_chroma(wav, sample_rate, intervals):
        if np.isnan(chroma).any():
            labels.append("N")
            continue
        labels.append(max(templates, key=lambda k: centred_correlation(chroma, templates[k])))
    return labels
