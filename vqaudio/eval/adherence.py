"""Does a piece follow what was asked? Tempo, beat grid and chords, measured on the audio.

- :func:`tempo_adherence` the tempo detected in the output against the one asked. The error is
  reported raw: a piece detected at half or double the tempo asked has a 50 % or 100 % error
  there, and ``octave_error`` (the error after the nearest of x1/2, x1, x2) says whether it was
  an octave slip (a tracker's doubt) or another tempo (a failure);
- :func:`beat_f_measure` ``mir_eval.beat.f_measure`` (70 ms window) of the tracked beats against
  the requested grid, both after the first 5 s (mir_eval's convention: trackers need a few
  seconds to lock on);
- :func:`chord_correlation` the mean Pearson correlation of each requested chord's stretch of
  output chroma (mean chroma over the chord's interval: chord-synchronous, as beat-synchronous
  chroma is when chords fall on beats) with the chord's template (``mir_eval.chord.encode`` of
  a Harte label), weighted by duration;
- :func:`own_ceiling` real music's own figures, the ceiling: its tracked beats against a steady
  grid fitted to them, its chroma against its own estimated chords (best major/minor triad per
  4 tracked beats), and the tempo of each half against the whole.

The beat tracker is librosa's (vqaudio/eval/rhythm.py), started at its default 120 BPM, never
at the tempo asked: a tracker told the answer would find it in noise.
"""

from __future__ import annotations

import numpy as np

from ..controls.grid import steady_period
from .rhythm import mono, onset_envelope, track_beats
from .tonal import centred_correlation, chord_template, estimate_chords, segment_chroma

SKIP_SECONDS = 5.0
OCTAVES = (0.5, 1.0, 2.0)


def beat_tempo(beats: np.ndarray) -> float:
    """Tempo (BPM) of beat times: 60 / ``grid.steady_period`` (the mean of the inter-beat
    intervals within 15 % of their median). nan for fewer than 3 beats."""
    return 60.0 / steady_period(beats)


def detected_tempo(wav: np.ndarray, sample_rate: int) -> float:
    """Tempo (BPM) of the beats librosa's tracker finds after the first 5 s."""
    beats = track_beats(wav, sample_rate)
    return beat_tempo(beats[beats >= min(SKIP_SECONDS, len(mono(wav)) / sample_rate / 4)])


def tempo_adherence(wav: np.ndarray, sample_rate: int, bpm: float) -> dict[str, float]:
    """{"detected_bpm", "relative_error" (raw, |detected - bpm| / bpm), "octave_error" (after
    the nearest of x1/2, x1, x2), "octave_factor" (that factor)}."""
    detected = detected_tempo(wav, sample_rate)
    errors = [abs(detected / (bpm * f) - 1) for f in OCTAVES]
    best = int(np.nanargmin(errors)) if not np.isnan(detected) else 1
    return {
        "detected_bpm": detected,
        "relative_error": abs(detected / bpm - 1),
        "octave_error": errors[best],
        "octave_factor": OCTAVES[best],
    }


def beat_grid(bpm: float, seconds: float, offset: float = 0.0) -> np.ndarray:
    """Beat times (s) of a steady grid: ``offset``, ``offset + 60 / bpm``, ... below ``seconds``."""
    return np.arange(offset, seconds, 60.0 / bpm)


def beat_f_measure(wav: np.ndarray, sample_rate: int, beat_times: np.ndarray) -> float:
    """F-measure (0-1, 70 ms window) of the tracked beats against ``beat_times``, both after
    the first 5 s."""
    import mir_eval

    reference = mir_eval.beat.trim_beats(np.asarray(beat_times, dtype=float), SKIP_SECONDS)
    estimated = mir_eval.beat.trim_beats(track_beats(wav, sample_rate), SKIP_SECONDS)
    if len(reference) == 0 or len(estimated) == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(reference, estimated))


def chord_intervals(times: np.ndarray, seconds: float) -> np.ndarray:
    """(n, 2) intervals from ``times``: (n, 2) kept, (n,) start times, each chord lasting to the
    next one and the last to ``seconds``."""
    times = np.asarray(times, dtype=float)
    if times.ndim == 2:
        return times
    return np.stack([times, np.append(times[1:], max(seconds, times[-1]))], axis=1)


def chord_correlation(
    wav: np.ndarray, sample_rate: int, chords: list[str], times: np.ndarray
) -> float:
    """Duration-weighted mean correlation (-1..1) of each chord interval's mean chroma with the
    chord's template. ``chords`` are Harte labels ("A:min", "F:maj"); ``times`` their start
    times (s) or (n, 2) intervals. No-chord labels ("N") and intervals past the end are left
    out; nan if none is left."""
    seconds = len(mono(wav)) / sample_rate
    intervals = chord_intervals(times, seconds)
    if len(intervals) != len(chords):
        raise ValueError(f"{len(chords)} chords but {len(intervals)} chord times")
    chroma = segment_chroma(wav, sample_rate, intervals)
    values, weights = [], []
    for label, (start, end), segment in zip(chords, intervals, chroma, strict=True):
        template = chord_template(label)
        if template is None or np.isnan(segment).any():
            continue
        values.append(centred_correlation(segment, template))
        weights.append(min(end, seconds) - start)
    return float(np.average(values, weights=weights)) if values else float("nan")


def fit_grid(beats: np.ndarray, seconds: float) -> np.ndarray:
    """A steady grid through tracked beats: their tempo (:func:`beat_tempo`) and the median
    phase of the beats on it."""
    tempo = beat_tempo(beats)
    if np.isnan(tempo):
        return np.asarray(beats, dtype=float)
    period = 60.0 / tempo
    phase = np.angle(np.mean(np.exp(2j * np.pi * np.asarray(beats) / period))) / (2 * np.pi)
    return beat_grid(tempo, seconds, (phase % 1.0) * period)


def own_ceiling(wav: np.ndarray, sample_rate: int, beats_per_chord: int = 4) -> dict[str, float]:
    """Real music's own figures: "beat_f_measure" of its tracked beats against a steady grid
    fitted to them; "chord_correlation" against its own estimated triads, one per
    ``beats_per_chord`` tracked beats; "tempo_error" of each half's tempo against the whole's
    (the larger; raw, as :func:`tempo_adherence`)."""
    seconds = len(mono(wav)) / sample_rate
    beats = track_beats(wav, sample_rate, onset_envelope(wav, sample_rate))
    starts = beats[::beats_per_chord]
    if len(starts) == 0:
        starts = np.array([0.0])
    intervals = chord_intervals(starts, seconds)
    chords = estimate_chords(wav, sample_rate, intervals)
    whole = beat_tempo(beats)
    half = len(mono(wav)) // 2
    halves = [detected_tempo(part, sample_rate) for part in (mono(wav)[:half], mono(wav)[half:])]
    return {
        "beat_f_measure": beat_f_measure(wav, sample_rate, fit_grid(beats, seconds)),
        "chord_correlation": chord_correlation(wav, sample_rate, chords, intervals),
        "tempo_error": float(max(abs(t / whole - 1) for t in halves)),
    }
