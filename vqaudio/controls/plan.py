"""Plans: a tempo and a chord progression, sampled from statistics of the training music when
the user gives none, and turned into a beat grid (``grid.Grid``).

The statistics live in the prior's file as two buffers (``plan_buffers``): a tempo histogram,
and bar-to-bar chord moves counted by quality and root interval (so they hold in every key).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .chords import NO_CHORD, progression_text
from .grid import BEATS_PER_BAR, Grid, regular

TEMPO_LOW, TEMPO_STEP, TEMPO_BINS = 40.0, 4.0, 45  # BPM histogram: 40-220 in 4-BPM bins
PHRASE_BARS = 4  # a sampled progression: 4 bars, repeated (music returns to its phrases)


def plan_buffers() -> dict[str, torch.Tensor]:
    """Empty statistics, filled from the training grids by ``fill_statistics``."""
    return {
        "plan_tempi": torch.zeros(TEMPO_BINS),
        "plan_moves": torch.zeros(2, 2, 12),  # [quality from, quality to, root interval]
    }


def tempo_bin(tempo: float) -> int:
    return int(np.clip((tempo - TEMPO_LOW) // TEMPO_STEP, 0, TEMPO_BINS - 1))


def bar_chords(grid: Grid) -> np.ndarray:
    """The chord at each downbeat of ``grid``."""
    return np.asarray(grid.chords)[grid.downbeat :: BEATS_PER_BAR]


def statistics(grids: list[Grid]) -> dict[str, torch.Tensor]:
    """Tempo histogram and bar-level chord moves of ``grids`` (chords "N" skipped)."""
    out = plan_buffers()
    for grid in grids:
        out["plan_tempi"][tempo_bin(grid.tempo)] += 1
        bars = bar_chords(grid)
        for a, b in zip(bars[:-1], bars[1:]):
            if a != NO_CHORD and b != NO_CHORD:
                out["plan_moves"][a // 12, b // 12, (b - a) % 12] += 1
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
    period = float(np.median(np.diff(beats[-9:])))
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
