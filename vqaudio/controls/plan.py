"""Plans: a tempo, a chord progression and a bar's rhythm, sampled from statistics of the
training music when the user gives none, and turned into a beat grid (``grid.Grid``) with an onset
envelope.

The statistics live in the prior's file as buffers (``plan_buffers``): a tempo histogram,
bar-to-bar chord moves counted by quality and root interval (so they hold in every key), and
rhythm patterns: the onset strength at each 16th note of bars of the training music.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .chords import NO_CHORD, progression_text
from .grid import BEATS_PER_BAR, ONSET_RATE, Grid, _extend, regular, steady_period

TEMPO_LOW, TEMPO_STEP, TEMPO_BINS = 40.0, 4.0, 45  # BPM histogram: 40-220 in 4-BPM bins
PHRASE_BARS = 4  # a sampled progression: 4 bars, repeated (music returns to its phrases)
STEPS_PER_BEAT = 4  # a rhythm pattern: onset strength at each 16th note of a 4/4 bar
PATTERN_STEPS = STEPS_PER_BEAT * BEATS_PER_BAR
NUM_PATTERNS = 64
PATTERN_PEAK = 1.0  # a bar joins the patterns where some 16th reaches the file's 95th percentile
# The envelope around an onset (librosa's, at 50 frames/s: its 2048-point window at 12 kHz
# spreads a strike over ~100 ms), frames -2..+3 of the peak: the median shape over 9229 peaks of
# the training music, over its peak. A pattern's strikes take this shape, as the envelopes the
# prior learned from have it.
ONSET_SHAPE = np.array([0.21, 0.71, 1.0, 0.81, 0.51, 0.26], np.float32)
ONSET_SHAPE_START = -2
PATTERN_CONTRAST = 3.0  # ... and stands this far above the bar's median 16th (a rhythm, not a wash)
PATTERN_PULSE = 2.0  # ... and each of its 4 beats is struck this far above its off-beat 16ths' mean


def plan_buffers(patterns: bool = True) -> dict[str, torch.Tensor]:
    """Empty statistics, filled from the training grids by ``statistics`` (``patterns``: the
    rhythm patterns too, for a prior that follows onsets)."""
    out = {
        "plan_tempi": torch.zeros(TEMPO_BINS),
        "plan_moves": torch.zeros(2, 2, 12),  # [quality from, quality to, root interval]
    }
    if patterns:
        out["plan_patterns"] = torch.zeros(NUM_PATTERNS, PATTERN_STEPS)
    return out


def tempo_bin(tempo: float) -> int:
    return int(np.clip((tempo - TEMPO_LOW) // TEMPO_STEP, 0, TEMPO_BINS - 1))


def bar_chords(grid: Grid) -> np.ndarray:
    """The chord at each downbeat of ``grid``."""
    return np.asarray(grid.chords)[grid.downbeat :: BEATS_PER_BAR]


def bar_patterns(grid: Grid) -> np.ndarray:
    """(bars, PATTERN_STEPS): the onset strength at each 16th note of each whole bar of
    ``grid`` (the strongest envelope frame within one frame of it; none without onsets)."""
    if grid.onsets is None or len(grid.onsets) == 0 or len(grid.beats) < BEATS_PER_BAR + 1:
        return np.zeros((0, PATTERN_STEPS), np.float32)
    beats = np.asarray(grid.beats, np.float64)
    first = np.arange(grid.downbeat % BEATS_PER_BAR, len(beats) - BEATS_PER_BAR, BEATS_PER_BAR)
    beat = first[:, None] + np.arange(BEATS_PER_BAR)  # (bars, 4) beat indices
    period = beats[beat + 1] - beats[beat]
    times = beats[beat][..., None] + period[..., None] * np.arange(STEPS_PER_BEAT) / STEPS_PER_BEAT
    index = np.rint(times.reshape(len(first), -1) * ONSET_RATE).astype(np.int64)
    envelope = np.asarray(grid.onsets, np.float32)
    near = np.clip(index[..., None] + np.arange(-1, 2), 0, len(envelope) - 1)
    return envelope[near].max(-1)


def statistics(grids: list[Grid], patterns: bool = True) -> dict[str, torch.Tensor]:
    """Tempo histogram and bar-level chord moves of ``grids`` (chords "N" skipped), and up to
    ``NUM_PATTERNS`` rhythm patterns, drawn evenly (a fixed seed) from the bars with a clear
    onset and a struck beat: a plan's rhythm keeps the pulse (bars that strike only the downbeat
    or only off-beats left a tracker without a beat to find)."""
    out = plan_buffers(patterns)
    bars_of = []
    for grid in grids:
        out["plan_tempi"][tempo_bin(grid.tempo)] += 1
        bars = bar_chords(grid)
        for a, b in zip(bars[:-1], bars[1:]):
            if a != NO_CHORD and b != NO_CHORD:
                out["plan_moves"][a // 12, b // 12, (b - a) % 12] += 1
        if patterns:
            bars_of.append(_rhythmic_bars(bar_patterns(grid)))
    if patterns:
        found = np.concatenate(bars_of) if bars_of else np.zeros((0, PATTERN_STEPS))
        if len(found):
            pick = np.random.default_rng(0).permutation(len(found))[:NUM_PATTERNS]
            out["plan_patterns"][: len(pick)] = torch.from_numpy(found[np.sort(pick)])
    return out


def _rhythmic_bars(found: np.ndarray) -> np.ndarray:
    """The bars of ``found`` (bars, PATTERN_STEPS) with a clear onset and a struck beat."""
    peak = found.max(1, initial=0.0)
    clear = (peak >= PATTERN_PEAK) & (peak >= PATTERN_CONTRAST * np.median(found, axis=1))
    off_beats = np.delete(found, np.s_[::STEPS_PER_BEAT], axis=1).mean(1)
    clear &= found[:, ::STEPS_PER_BEAT].min(1, initial=np.inf) >= PATTERN_PULSE * off_beats
    return found[clear]


def patterns_of(buffer: torch.Tensor) -> np.ndarray:
    """The filled rows of a prior's ``plan_patterns`` buffer."""
    rows = buffer.float().cpu().numpy()
    return rows[rows.max(1) > 0]


def pattern_onsets(
    grid: Grid, pattern: np.ndarray, seconds: float, start: float = 0.0
) -> np.ndarray:
    """An onset envelope (``ONSET_RATE`` frames/s, from 0 s to ``seconds``) that strikes each
    16th note of ``grid``'s bars from ``start`` on with ``pattern`` (PATTERN_STEPS,), each strike
    in ``ONSET_SHAPE``, and holds the pattern's weakest step between them (0 before ``start``)."""
    pattern = np.asarray(pattern, np.float32)
    length = int(np.ceil(seconds * ONSET_RATE))
    out = np.zeros(length, np.float32)
    first = int(np.ceil(start * ONSET_RATE))
    out[first:] = pattern.min()
    beats, before = _extend(np.asarray(grid.beats, np.float64), start, seconds)
    step = np.arange(STEPS_PER_BEAT) / STEPS_PER_BEAT
    times = (beats[:-1, None] + np.diff(beats)[:, None] * step).ravel()
    bar_beat = (np.arange(len(beats) - 1) - before - grid.downbeat) % BEATS_PER_BAR
    values = pattern.reshape(BEATS_PER_BAR, STEPS_PER_BEAT)[bar_beat].ravel()
    index = np.rint(times * ONSET_RATE).astype(np.int64)
    keep = times >= start
    index, values = index[keep], values[keep]
    for offset, weight in enumerate(ONSET_SHAPE, ONSET_SHAPE_START):
        at = index + offset
        inside = (at >= 0) & (at < length)
        np.maximum.at(out, at[inside], values[inside] * weight)
    out[:first] = 0.0
    return out


def tempo_range(tempi: torch.Tensor) -> tuple[float, float]:
    """(lowest, highest) tempo in BPM that the training music had, from the histogram."""
    seen = torch.nonzero(tempi > 0).flatten()
    if len(seen) == 0:
        return 60.0, 180.0
    return TEMPO_LOW + TEMPO_STEP * float(seen[0]), TEMPO_LOW + TEMPO_STEP * float(seen[-1] + 1)


@dataclass(frozen=True)
class Plan:
    """A tempo (BPM) and a chord per bar, cycled; ``beats_per_chord`` beats per chord."""

    tempo: float
    chords: tuple[int, ...]
    beats_per_chord: int = BEATS_PER_BAR

    def describe(self) -> str:
        """The plan as the options that ask for it again."""
        per = (
            ""
            if self.beats_per_chord == BEATS_PER_BAR
            else f" --beats-per-chord {self.beats_per_chord}"
        )
        return f'--tempo {self.tempo:g} --chords "{progression_text(list(self.chords))}"{per}'


def sample_tempo(tempi: torch.Tensor, rng: np.random.Generator) -> float:
    weights = tempi.double().numpy()
    weights = (
        weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1.0 / len(weights))
    )
    index = rng.choice(len(weights), p=weights)
    return float(round(TEMPO_LOW + TEMPO_STEP * (index + rng.random())))


def sample_chords(
    moves: torch.Tensor, rng: np.random.Generator, first: int | None = None, bars: int = PHRASE_BARS
) -> tuple[int, ...]:
    """A progression of ``bars`` chords by the bar-level moves, from ``first`` (or a random
    root and quality); at least two distinct chords, so the harmony moves."""
    counts = moves.double().numpy() + 1e-3
    for _ in range(100):
        if first is None or first == NO_CHORD:
            quality = rng.choice(2, p=counts.sum(axis=(1, 2)) / counts.sum())
            chord = int(rng.integers(12)) + 12 * int(quality)
        else:
            chord = int(first)
        out = [chord]
        for _ in range(bars - 1):
            row = counts[chord // 12].ravel()  # (quality to, interval)
            pick = int(rng.choice(row.size, p=row / row.sum()))
            quality, interval = divmod(pick, 12)
            chord = (chord % 12 + interval) % 12 + 12 * quality
            out.append(chord)
        if len(set(out)) > 1:
            return tuple(out)
    return tuple(out)


def sample_plan(tempi: torch.Tensor, moves: torch.Tensor, rng: np.random.Generator) -> Plan:
    return Plan(sample_tempo(tempi, rng), sample_chords(moves, rng))


def plan_grid(plan: Plan, seconds: float, start: float = 0.0, downbeat_phase: int = 0) -> Grid:
    return regular(
        plan.tempo, list(plan.chords), seconds, start, plan.beats_per_chord, downbeat_phase
    )


def continue_grid(
    prompt: Grid, moves: torch.Tensor, seconds: float, rng: np.random.Generator
) -> tuple[Grid, Plan]:
    """The prompt's beat grid carried on to ``seconds`` at its own tempo and bar phase, with a
    progression sampled from its last chord -> (the whole grid, the plan of the new part)."""
    beats = np.asarray(prompt.beats, np.float64)
    period = steady_period(beats[-17:])  # the last 16 beats' period, finer than a frame
    count = max(0, int(np.ceil((seconds - beats[-1]) / period)) + 2)
    new_beats = beats[-1] + period * np.arange(1, count + 1)
    known = [c for c in bar_chords(prompt) if c != NO_CHORD]
    chords = sample_chords(moves, rng, known[-1] if known else None)
    bar_of = (len(beats) + np.arange(count) - prompt.downbeat) // BEATS_PER_BAR
    new_chords = np.asarray(chords)[(bar_of - bar_of[0] + 1) % len(chords)] if count else []
    grid = Grid(
        np.concatenate([beats, new_beats]),
        prompt.downbeat,
        np.concatenate([np.asarray(prompt.chords, np.int64), np.asarray(new_chords, np.int64)]),
    )
    return grid, Plan(round(60.0 / period, 1), chords)
