"""Is there a beat? Rhythm figures of a piece, for generated and real audio alike.

All figures start from one onset envelope (librosa's spectral flux on a mel spectrogram, hop
:data:`HOP` samples) of the mono mix:

- :func:`pulse_clarity` the peak of the envelope's normalised autocorrelation at lags 0.3-2 s
  (30-200 BPM): ~1 for a click track, near 0 for noise or a held pad;
- :func:`beat_confidence` the agreement of two beat trackers that share nothing but the envelope:
  librosa's dynamic-programming tracker (one global tempo, beats placed on onsets) and the peaks of
  its predominant local pulse (PLP, a tempogram-based pulse that may drift). Scored with the
  information gain of ``mir_eval.beat``, which mir_eval 0.8 normalises to 0-1 (a click track
  ~0.8, white noise ~0.2): the measure behind essentia's RhythmExtractor2013 confidence, there
  over five trackers and in bits (0-5.36 = this times log2(41); Zapata et al., "Multi-feature
  beat tracking", 2014). Agreement, rather than the onset strength at the beats:
  a tracker places beats on the strongest onsets even in noise, so on-beat strength is always
  high; two trackers agree only where a pulse exists;
- :func:`onset_rate` detected onsets per second;
- :func:`tempo_stability` the share of frames whose local tempo (8 s autocorrelation tempogram)
  lies within 4 % of the piece's median local tempo, or of its double or half (a local octave
  flip is a tracker's doubt, not a tempo change). Meaningful only where the pulse is clear: a
  flat envelope gets a steady tempo from librosa's tempo prior, so read it beside pulse clarity.
"""

from __future__ import annotations

import numpy as np

HOP = 256  # onset-envelope hop in samples: 11 ms at 24 kHz (at 21 ms, beat jitter costs bits)
# an onset envelope is a mean rise in dB over the mel bands; weaker than this is no onset (a pure
# sine's envelope is numerical noise under 0.06, white noise's averages 0.9, music's 1-3)
ONSET_FLOOR = 0.2
PULSE_LAGS = (0.3, 2.0)  # seconds: 200-30 BPM
TEMPO_TOLERANCE = 0.04


def mono(wav: np.ndarray) -> np.ndarray:
    """(T,) float32 mono mix of (T,) or (C, T) audio."""
    wav = np.asarray(wav, dtype=np.float32)
    return wav.mean(axis=0) if wav.ndim == 2 else wav


def onset_envelope(wav: np.ndarray, sample_rate: int, hop: int = HOP) -> np.ndarray:
    """(frames,) librosa onset strength of the mono mix, ``sample_rate / hop`` frames/s."""
    import librosa

    return librosa.onset.onset_strength(y=mono(wav), sr=sample_rate, hop_length=hop)


def pulse_clarity(
    wav: np.ndarray, sample_rate: int, lags: tuple[float, float] = PULSE_LAGS
) -> float:
    """Max over ``lags`` s of the mean-removed onset envelope's autocorrelation, divided by its
    value at lag 0 plus a floor (an envelope of std :data:`ONSET_FLOOR` / 2 counts as noise, so
    a held sine's numerical ripple does not pass for a pulse)."""
    env = onset_envelope(wav, sample_rate)
    env = env - env.mean()
    n = len(env)
    ac = np.fft.irfft(np.abs(np.fft.rfft(env, 2 * n)) ** 2)[:n]
    lo, hi = (max(1, round(s * sample_rate / HOP)) for s in lags)
    if lo >= n:
        return 0.0
    floor = n * (ONSET_FLOOR / 2) ** 2
    return float(np.clip(ac[lo : min(hi + 1, n)].max() / (ac[0] + floor), 0.0, 1.0))


def track_beats(wav: np.ndarray, sample_rate: int, env: np.ndarray | None = None) -> np.ndarray:
    """Beat times (s) of librosa's dynamic-programming tracker."""
    import librosa

    env = onset_envelope(wav, sample_rate) if env is None else env
    _, frames = librosa.beat.beat_track(onset_envelope=env, sr=sample_rate, hop_length=HOP)
    return librosa.frames_to_time(frames, sr=sample_rate, hop_length=HOP)


def plp_beats(wav: np.ndarray, sample_rate: int, env: np.ndarray | None = None) -> np.ndarray:
    """Beat times (s): the local maxima of librosa's predominant local pulse."""
    import librosa

    env = onset_envelope(wav, sample_rate) if env is None else env
    pulse = librosa.beat.plp(onset_envelope=env, sr=sample_rate, hop_length=HOP)
    peaks = np.flatnonzero(librosa.util.localmax(pulse) & (pulse > 0.1 * pulse.max()))
    return librosa.frames_to_time(peaks, sr=sample_rate, hop_length=HOP)


def information_gain(reference: np.ndarray, estimated: np.ndarray, skip: float = 5.0) -> float:
    """mir_eval's beat information gain (normalised, 0-1) after dropping beats before ``skip``
    s; 0 where either side has fewer than 2 beats left (mir_eval would warn and return 0)."""
    import mir_eval

    reference = mir_eval.beat.trim_beats(np.asarray(reference, float), skip)
    estimated = mir_eval.beat.trim_beats(np.asarray(estimated, float), skip)
    if len(reference) < 2 or len(estimated) < 2:
        return 0.0
    return float(mir_eval.beat.information_gain(reference, estimated))


def beat_confidence(wav: np.ndarray, sample_rate: int) -> float:
    """Agreement (0-1) of the DP tracker's and the PLP's beats: the larger information
    gain of the two directions, as Zapata et al.'s mutual agreement takes it."""
    env = onset_envelope(wav, sample_rate)
    if env.max() < ONSET_FLOOR:
        return 0.0
    dp, plp = track_beats(wav, sample_rate, env), plp_beats(wav, sample_rate, env)
    return max(information_gain(dp, plp), information_gain(plp, dp))


def onset_rate(wav: np.ndarray, sample_rate: int) -> float:
    """librosa's detected onsets per second, those weaker than :data:`ONSET_FLOOR` left out."""
    import librosa

    env = onset_envelope(wav, sample_rate)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sample_rate, hop_length=HOP)
    return int(np.sum(env[onsets] >= ONSET_FLOOR)) / (len(mono(wav)) / sample_rate)


def local_tempi(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames,) local tempo (BPM) per onset frame from an 8 s autocorrelation tempogram."""
    import librosa

    env = onset_envelope(wav, sample_rate)
    return librosa.feature.tempo(
        onset_envelope=env, sr=sample_rate, hop_length=HOP, aggregate=None
    ).ravel()


def tempo_stability(wav: np.ndarray, sample_rate: int, tolerance: float = TEMPO_TOLERANCE) -> float:
    """Share (0-1) of frames whose local tempo is within ``tolerance`` of the median local tempo
    or of its double or half."""
    tempi = local_tempi(wav, sample_rate)
    if len(tempi) == 0:
        return float("nan")
    median = np.median(tempi)
    error = np.min([np.abs(tempi / (median * f) - 1) for f in (0.5, 1.0, 2.0)], axis=0)
    return float(np.mean(error <= tolerance))


def rhythm_figures(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Every figure of this module for one piece."""
    return {
        "pulse_clarity": pulse_clarity(wav, sample_rate),
        "beat_confidence": beat_confidence(wav, sample_rate),
        "onset_rate": onset_rate(wav, sample_rate),
        "tempo_stability": tempo_stability(wav, sample_rate),
    }
