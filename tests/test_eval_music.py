"""vqaudio/eval's music figures on synthetic signals: each test fails if its measure is broken."""

from __future__ import annotations

import mir_eval
import numpy as np
import pytest

from vqaudio.eval import adherence, feature_distance, rhythm, tonal

RATE = 24000


def click_track(bpm: float, seconds: float = 20.0, seed: int = 0, pitch: float = 0.0):
    """Decaying noise bursts (30 ms) on every beat over a faint noise floor; with ``pitch``, a
    short tone instead of noise."""
    rng = np.random.default_rng(seed)
    y = np.zeros(round(seconds * RATE))
    t = np.arange(round(0.03 * RATE)) / RATE
    source = np.sin(2 * np.pi * pitch * t) if pitch else rng.standard_normal(len(t))
    burst = 0.5 * source * np.exp(-t / 0.005)
    for beat in np.arange(0, seconds, 60 / bpm):
        i = round(beat * RATE)
        y[i : i + len(burst)] += burst[: len(y) - i]
    return (y + 0.003 * rng.standard_normal(len(y))).astype(np.float32)


def noise_pad(seconds: float = 20.0, seed: int = 0):
    return (0.1 * np.random.default_rng(seed).standard_normal(round(seconds * RATE))).astype(
        np.float32
    )


def drone(seconds: float = 20.0, frequency: float = 220.0):
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.2 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def triads(chords: list[str], seconds_each: float = 2.0):
    """Each Harte chord as three pitch classes (3 harmonics each) above middle C."""
    t = np.arange(round(seconds_each * RATE)) / RATE
    fade = np.minimum(1, np.minimum(t / 0.02, (seconds_each - t) / 0.05))
    out = []
    for label in chords:
        root, bitmap, _ = mir_eval.chord.encode(label)
        classes = np.flatnonzero(np.roll(bitmap, root))
        tone = sum(
            np.sin(2 * np.pi * 261.63 * 2 ** (c / 12) * h * t) / h
            for c in classes
            for h in (1, 2, 3)
        )
        out.append(0.1 * tone * fade)
    return np.concatenate(out).astype(np.float32)


@pytest.fixture(scope="module")
def figures():
    signals = {"click": click_track(120), "noise": noise_pad(), "drone": drone()}
    return {
        k: rhythm.rhythm_figures(v, RATE) | tonal.tonal_figures(v, RATE) for k, v in signals.items()
    }


def test_pulse_clarity_and_beat_confidence_tell_a_beat_from_a_pad(figures):
    assert figures["click"]["pulse_clarity"] > 0.8
    assert figures["click"]["beat_confidence"] > 0.6
    for pad in ("noise", "drone"):
        assert figures[pad]["pulse_clarity"] < 0.2, pad
        assert figures[pad]["beat_confidence"] < 0.35, pad


def test_onset_rate_counts_the_clicks(figures):
    assert figures["click"]["onset_rate"] == pytest.approx(2.0, abs=0.15)  # 120 BPM
    assert figures["drone"]["onset_rate"] < 0.2


def test_tempo_stability_of_a_steady_click_beats_noise(figures):
    assert figures["click"]["tempo_stability"] > 0.95
    assert figures["noise"]["tempo_stability"] < figures["click"]["tempo_stability"] - 0.1


def test_tonal_figures_are_two_sided(figures):
    # a sine holds one pitch class throughout: std 0, held for the whole piece
    assert figures["drone"]["chroma_std"] < 0.02
    assert figures["drone"]["pitch_hold_s"] > 19
    assert figures["noise"]["pitch_hold_s"] < 10
    # a sine's partial stands far out of its valley, white noise has none
    assert figures["drone"]["spectral_contrast"] > figures["noise"]["spectral_contrast"] + 5


def test_chord_correlation_follows_the_chords():
    chords = ["A:min", "F:maj", "C:maj", "G:maj"] * 2
    wav, times = triads(chords), np.arange(len(chords)) * 2.0
    own = adherence.chord_correlation(wav, RATE, chords, times)
    shifted = adherence.chord_correlation(wav, RATE, chords[1:] + chords[:1], times)
    assert own > 0.8
    assert own > shifted + 0.4
    # the best triad per chord is the chord itself
    intervals = adherence.chord_intervals(times, len(wav) / RATE)
    assert tonal.estimate_chords(wav, RATE, intervals) == chords


def test_tempo_adherence_and_beat_f_measure_of_a_click_track():
    wav = click_track(100)
    asked = adherence.tempo_adherence(wav, RATE, 100)
    assert asked["relative_error"] < 0.04
    assert adherence.tempo_adherence(wav, RATE, 120)["relative_error"] > 0.1
    on_grid = adherence.beat_f_measure(wav, RATE, adherence.beat_grid(100, 20.0))
    off_grid = adherence.beat_f_measure(wav, RATE, adherence.beat_grid(100, 20.0, offset=0.3))
    assert on_grid > 0.9
    assert off_grid < 0.3


def test_own_ceiling_of_a_steady_piece():
    chords = ["A:min", "F:maj", "C:maj", "G:maj"] * 4  # 32 s
    wav = triads(chords) + click_track(120, seconds=32.0)
    ceiling = adherence.own_ceiling(wav, RATE)
    assert ceiling["beat_f_measure"] > 0.9
    assert ceiling["chord_correlation"] > 0.8
    assert ceiling["tempo_error"] < 0.04


def test_kernel_distance_to_the_same_distribution_is_smaller_than_to_drones():
    def beats(seed: int):  # one synthetic distribution: pitched clicks at random tempi
        rng = np.random.default_rng(seed)
        return click_track(rng.uniform(90, 140), 10.0, seed, pitch=rng.uniform(300, 900))

    _, real = feature_distance.feature_matrix([beats(s) for s in range(6)], RATE)
    _, same = feature_distance.feature_matrix([beats(s) for s in range(10, 16)], RATE)
    _, drones = feature_distance.feature_matrix(
        [drone(10.0, f) for f in range(200, 800, 100)], RATE
    )
    ref = feature_distance.standardise(real, real)

    def distance(x):
        return feature_distance.kernel_distance(ref, feature_distance.standardise(x, real))

    assert distance(drones) > 5 * max(distance(same), 0.1)
