"""Beats and chords -> one control vector per frame.

A frame is 80 ms (the frame prior's frame); its 4 sub-slots of 20 ms are the finest levels' frames,
so the vector says in which of them a beat falls, and how strong the onsets in each are. Layout
(``NUM_CONTROLS`` = 41; a prior trained on fewer columns reads the first ones):

====== ==================================================================
0-3    a beat in sub-slot 0..3 of the frame (0 or 1)
4-5    sin, cos of the beat phase at the frame's start
6-7    sin, cos of the bar phase (4 beats a bar) at the frame's start
8      log2(tempo / 120 BPM)
9      1 where the rhythm part is given, 0 where it is dropped
10-34  the chord (one-hot over ``chords.NUM_CHORDS``)
35     1 where the harmony part is given, 0 where it is dropped
36-39  onset strength in sub-slot 0..3 (the file's envelope over its 95th percentile, at most 2)
40     1 where the onset part is given, 0 where it is dropped
====== ==================================================================

A dropped part is all zeros, flag included: the same model runs with any of the three parts or
none (classifier-free guidance compares the prediction with and without them). Onsets are what
the audio does at 20 ms resolution, so a prior follows them far more readily than a tracked beat;
plans and continuations supply them as a bar's rhythm pattern laid on the beat grid
(``plan.pattern_onsets``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chords import NO_CHORD, NUM_CHORDS

SUB_SLOTS = 4
BEATS_PER_BAR = 4
RHYTHM = slice(0, 10)
HARMONY = slice(10, 36)
ONSETS = slice(36, 41)
NUM_CONTROLS = 41
TEMPO_COLUMN, RHYTHM_FLAG, HARMONY_FLAG, ONSET_FLAG = 8, 9, 35, 40
ONSET_RATE = 50  # onset envelope frames per second: one per 20 ms sub-slot of an 80 ms frame
ONSET_CLIP = 2.0


def steady_period(beats: np.ndarray, tolerance: float = 0.15) -> float:
    """The beat period (s) of beat times: the mean of the intervals within ``tolerance`` of
    their median (skipped or doubled beats left out). A tracker's beats fall on its frames (20
    ms here); their median interval keeps that step (160 BPM reads as 157.9), their mean undoes
    it. nan for fewer than 3 beats."""
    intervals = np.diff(np.asarray(beats, dtype=float))
    if len(intervals) < 2:
        return float("nan")
    median = np.median(intervals)
    return float(intervals[np.abs(intervals / median - 1) <= tolerance].mean())


@dataclass(frozen=True)
class Grid:
    """A beat grid with a chord per beat. ``beats``: beat times in seconds, increasing, at
    least 2; ``downbeat``: index of a beat that starts a bar; ``chords``: chord id per beat (the
    chord sounding from that beat to the next); ``onsets``: normalised onset strength at
    ``ONSET_RATE`` frames/s from 0 s (``normalise_onsets``), or None where not known."""

    beats: np.ndarray
    downbeat: int
    chords: np.ndarray
    onsets: np.ndarray | None = None

    @property
    def tempo(self) -> float:
        """Median tempo in BPM."""
        return float(60.0 / np.median(np.diff(self.beats)))


def regular(
    tempo: float,
    chords_per_bar: list[int],
    seconds: float,
    start: float = 0.0,
    beats_per_chord: int = BEATS_PER_BAR,
    downbeat_phase: int = 0,
) -> Grid:
    """A steady grid at ``tempo`` BPM from ``start`` s, cycling ``chords_per_bar`` (one chord
    per ``beats_per_chord`` beats) for at least ``seconds``."""
    period = 60.0 / tempo
    count = int(np.ceil((seconds - start) / period)) + 2
    beats = start + period * np.arange(count)
    index = (np.arange(count) + downbeat_phase) // beats_per_chord
    chords = np.asarray(chords_per_bar, dtype=np.int64)[index % len(chords_per_bar)]
    return Grid(beats, (-downbeat_phase) % BEATS_PER_BAR, chords)


def normalise_onsets(envelope: np.ndarray) -> np.ndarray:
    """An onset envelope over its 95th percentile, clipped to [0, ONSET_CLIP], float32: the same
    scale for loud and quiet files."""
    envelope = np.maximum(np.asarray(envelope, np.float64), 0.0)
    scale = np.percentile(envelope, 95) if len(envelope) else 0.0
    return np.clip(envelope / max(scale, 1e-6), 0.0, ONSET_CLIP).astype(np.float32)


def _extend(beats: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, int]:
    """Beats extrapolated with the first and last periods to cover [lo, hi]; also how many were
    put before the first."""
    first, last = beats[1] - beats[0], beats[-1] - beats[-2]
    before = max(0, int(np.ceil((beats[0] - lo) / first)) + 1)
    after = max(0, int(np.ceil((hi - beats[-1]) / last)) + 1)
    head = beats[0] - first * np.arange(before, 0, -1)
    tail = beats[-1] + last * np.arange(1, after + 1)
    return np.concatenate([head, beats, tail]), before


def render(
    grid: Grid | None, chords_on: bool, num_frames: int, frame_seconds: float, start_frame: int = 0
) -> np.ndarray:
    """(num_frames, NUM_CONTROLS) float32 for frames ``start_frame ..``; ``grid`` None drops
    all parts, ``chords_on`` False the harmony part alone, ``grid.onsets`` None the onset part
    (beyond the envelope's end, onsets are 0)."""
    out = np.zeros((num_frames, NUM_CONTROLS), dtype=np.float32)
    if grid is None or len(grid.beats) < 2:
        return out
    t0 = start_frame * frame_seconds
    starts = t0 + frame_seconds * np.arange(num_frames)
    beats, before = _extend(np.asarray(grid.beats, np.float64), t0, starts[-1] + frame_seconds)
    k = np.clip(np.searchsorted(beats, starts, side="right") - 1, 0, len(beats) - 2)
    period = beats[k + 1] - beats[k]
    phase = np.clip((starts - beats[k]) / period, 0.0, 1.0)
    # a beat in sub-slot s: the first beat at or after each sub-slot's start, inside it
    sub = frame_seconds / SUB_SLOTS
    edges = starts[:, None] + sub * np.arange(SUB_SLOTS + 1)
    nxt = np.searchsorted(beats, edges[:, :-1], side="left")
    nxt_time = beats[np.minimum(nxt, len(beats) - 1)]
    out[:, 0:4] = (nxt < len(beats)) & (nxt_time < edges[:, 1:])
    out[:, 4], out[:, 5] = np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)
    bar = (((k - before - grid.downbeat) % BEATS_PER_BAR) + phase) / BEATS_PER_BAR
    out[:, 6], out[:, 7] = np.sin(2 * np.pi * bar), np.cos(2 * np.pi * bar)
    out[:, TEMPO_COLUMN] = np.log2(60.0 / period / 120.0)
    out[:, RHYTHM_FLAG] = 1.0
    if chords_on:
        index = np.clip(k - before, 0, len(grid.chords) - 1)
        chord = np.asarray(grid.chords, np.int64)[index]
        out[np.arange(num_frames), HARMONY.start + chord] = 1.0
        out[:, HARMONY_FLAG] = 1.0
    if grid.onsets is not None and len(grid.onsets):
        envelope = np.asarray(grid.onsets, np.float32)
        times = t0 + sub * np.arange(num_frames * SUB_SLOTS)
        index = np.rint(times * ONSET_RATE).astype(np.int64)
        inside = index < len(envelope)
        slots = np.where(inside, envelope[np.minimum(index, len(envelope) - 1)], 0.0)
        out[:, ONSETS.start : ONSET_FLAG] = slots.reshape(num_frames, SUB_SLOTS)
        out[:, ONSET_FLAG] = 1.0
    return out


def drop(controls: np.ndarray, rhythm: bool, harmony: bool, onsets: bool = False) -> np.ndarray:
    """A copy with the rhythm, harmony and/or onset part zeroed."""
    out = controls.copy()
    if rhythm:
        out[..., RHYTHM] = 0.0
    if harmony:
        out[..., HARMONY] = 0.0
    if onsets:
        out[..., ONSETS] = 0.0
    return out


__all__ = ["Grid", "NO_CHORD", "NUM_CHORDS", "NUM_CONTROLS", "drop", "regular", "render"]
