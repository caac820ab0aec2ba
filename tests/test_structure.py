"""Long-range music statistics: each figure separates the signals it is meant to separate."""

import numpy as np
import pytest

from vqaudio.eval import structure

RATE = 8000
NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
NOTES = {n: 261.63 * 2 ** (i / 12) for i, n in enumerate(NAMES)}


def chord(names, seconds, rate=RATE):
    """Equal sines of ``names``, e.g. "D F# A"."""
    names = names.split()
    t = np.arange(round(seconds * rate)) / rate
    return sum(np.sin(2 * np.pi * NOTES[n] * t) for n in names).astype(np.float32) / 6


def progression(chords, seconds_each):
    return np.concatenate([chord(c, seconds_each) for c in chords])


def test_a_held_chord_has_no_flux_and_changing_chords_have_much():
    held = chord("C E G", 12)
    changing = progression(["C E G", "D F# A", "E G B", "D F# A", "C E G", "E G B"] * 4, 0.5)
    assert structure.chroma_flux(held, RATE) < 0.05
    assert structure.chroma_flux(changing, RATE) > 0.3


def test_self_similarity_sees_a_piece_come_back_and_random_chords_do_not():
    rng = np.random.default_rng(0)
    piece = np.tile(progression(["C E G", "D F# A", "E G B", "C E G"], 1.0), 8)  # 32 s, repeating
    # chords of any 3 of the 12 pitch classes: no key to come back to
    random = progression([" ".join(rng.choice(NAMES, 3, replace=False)) for _ in range(64)], 0.5)
    assert structure.chroma_self_similarity(piece, RATE) > 0.3
    assert abs(structure.chroma_self_similarity(random, RATE)) < 0.1


def test_silent_holes_count_only_inside_the_piece():
    tone = chord("C E G", 2)
    hole = np.zeros(round(0.8 * RATE), np.float32)
    edges = np.zeros(RATE, np.float32)
    assert structure.silent_holes(np.concatenate([edges, tone, edges]), RATE) == 0.0
    inside = structure.silent_holes(np.concatenate([tone, hole, tone]), RATE)
    assert inside == pytest.approx(0.8, abs=0.1)


def test_continuation_margin_is_high_when_each_continues_its_own_prompt():
    keys = ["C E G", "D F# A", "E G B", "F# A"]
    prompts = [structure.mean_chroma(chord(k, 3), RATE) for k in keys]
    same = [structure.mean_chroma(chord(k, 3), RATE) for k in keys]
    shuffled = same[1:] + same[:1]
    assert structure.continuation_margin(prompts, same) > 0.5
    assert structure.continuation_margin(prompts, shuffled) < 0.0


def test_longest_shared_run_finds_a_copied_stretch():
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 1024, 500)
    fresh = rng.integers(0, 1024, 200)
    copied = fresh.copy()
    copied[50:90] = reference[300:340]
    assert structure.longest_shared_run(fresh, [reference]) <= 2
    assert structure.longest_shared_run(copied, [reference]) == 40
    assert structure.longest_shared_run(reference[10:30], [reference]) == 20


def test_chroma_peak_tells_notes_from_a_noise_texture():
    noise = np.random.default_rng(0).standard_normal(RATE * 6).astype(np.float32) * 0.1
    note, triad = chord("A", 6), chord("C E G", 6)
    assert structure.chroma_peak(note, RATE) > 5.0
    assert 1.5 < structure.chroma_peak(triad, RATE) < structure.chroma_peak(note, RATE)
    assert structure.chroma_peak(noise, RATE) < 1.6


def test_longest_hold_counts_the_longest_run_of_one_code():
    assert structure.longest_hold(np.array([3, 3, 1, 1, 1, 1, 2, 3, 3, 3])) == 4
    assert structure.longest_hold(np.array([5] * 7)) == 7
    assert structure.longest_hold(np.arange(6)) == 1
    assert structure.longest_hold(np.array([], dtype=int)) == 0
