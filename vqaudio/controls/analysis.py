"""Beat grid and chords of a recording, by DSP (librosa's beat tracker and chroma, ISC)."""

from __future__ import annotations

import numpy as np

from .. import audio
from . import chords as chord_table
from .grid import BEATS_PER_BAR, ONSET_RATE, Grid, normalise_onsets

FRAMES_PER_SECOND = ONSET_RATE  # onset and chroma resolution: the codec's finest frames
ANALYSIS_RATE = 12000  # Hz: beats and chroma need nothing above 6 kHz, and it halves the cost


def analyse(wav: np.ndarray, sample_rate: int) -> Grid | None:
    """Mono ``wav`` (T,) -> its beat grid with a chord per beat and its onset envelope, or None
    where fewer than 4 beats are found (silence, or no pulse)."""
    import librosa

    wav, sample_rate = _at_analysis_rate(wav, sample_rate)
    hop = int(round(sample_rate / FRAMES_PER_SECOND))
    onset = onset_envelope(wav, sample_rate)
    _, frames = librosa.beat.beat_track(onset_envelope=onset, sr=sample_rate, hop_length=hop)
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) < 4:
        return None
    chroma = librosa.feature.chroma_stft(
        y=wav, sr=sample_rate, hop_length=hop, n_fft=2048, tuning=0.0
    )
    synced = librosa.util.sync(chroma, frames, aggregate=np.median)  # (12, beats + 1)
    per_beat = chord_table.estimate(synced)[1 : len(frames) + 1]
    per_beat = smooth(per_beat)
    beats = frames * hop / sample_rate
    return Grid(beats, downbeat_of(onset, frames, per_beat), per_beat, normalise_onsets(onset))


def _at_analysis_rate(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    if sample_rate != ANALYSIS_RATE:
        wav = audio.resample(wav[None], sample_rate, ANALYSIS_RATE)[0]
    return wav, ANALYSIS_RATE


def onset_envelope(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono ``wav`` -> librosa's onset strength at ``FRAMES_PER_SECOND`` frames/s from 0 s
    (unnormalised)."""
    import librosa

    wav, sample_rate = _at_analysis_rate(wav, sample_rate)
    hop = int(round(sample_rate / FRAMES_PER_SECOND))
    return librosa.onset.onset_strength(y=wav, sr=sample_rate, hop_length=hop)


def smooth(per_beat: np.ndarray, width: int = 2) -> np.ndarray:
    """Chords held for fewer than ``width`` beats take their predecessor's (chord estimates
    flicker where a passing note tips the template match)."""
    out = per_beat.copy()
    for i in range(1, len(out)):
        if out[i] != out[i - 1] and not np.all(per_beat[i : i + width] == per_beat[i]):
            out[i] = out[i - 1]
    return out


def downbeat_of(onset: np.ndarray, frames: np.ndarray, per_beat: np.ndarray) -> int:
    """Which of the first 4 beats starts a bar: the phase where chords change and onsets are
    strongest (chords change on downbeats far more often than between them)."""
    strength = onset[np.minimum(frames, len(onset) - 1)]
    strength = strength / (strength.mean() + 1e-8)
    change = np.r_[1.0, (np.diff(per_beat) != 0).astype(np.float64)]
    score = [
        strength[p::BEATS_PER_BAR].mean() + 2.0 * change[p::BEATS_PER_BAR].mean()
        for p in range(min(BEATS_PER_BAR, len(frames)))
    ]
    return int(np.argmax(score))
