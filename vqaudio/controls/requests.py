"""What a user asks for (--tempo, --chords, --like, a prompt, or nothing) -> per-frame controls.

With nothing asked, each piece gets a plan sampled from the training music's statistics (a tempo,
a 4-bar progression and a bar's rhythm); a prompt gives its own beat grid, carried on at its
tempo and bar phase with its own rhythm; a reference file (``like``) gives its beat grid, chords
and onsets, not its sound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, UsageError
from . import plan as plans
from .analysis import analyse
from .chords import parse_progression
from .grid import BEATS_PER_BAR, ONSET_RATE, Grid, render

LIKE_MIN_SECONDS = 4.0  # a reference needs a few beats for the tracker


@dataclass(frozen=True)
class Request:
    """The controls asked for. ``tempo`` BPM; ``chords`` e.g. 'Am F C G', one chord per
    ``beats_per_chord`` beats (4: a bar); ``like``: (mono wav, sample rate) of a reference."""

    tempo: float | None = None
    chords: str | None = None
    beats_per_chord: int = BEATS_PER_BAR
    like: tuple[np.ndarray, int] | None = None

    @property
    def asked(self) -> bool:
        return self.tempo is not None or self.chords is not None or self.like is not None


def read_reference(path, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of an audio file, mono at the analysis rate (read in blocks: a
    long reference costs no more memory than those seconds)."""
    from .. import audio
    from .analysis import ANALYSIS_RATE

    wanted, parts, have = int(seconds * ANALYSIS_RATE), [], 0
    for block in audio.stream(path, ANALYSIS_RATE * 10, ANALYSIS_RATE):
        parts.append(audio.mix_channels(block, 1, str(path))[0])
        have += parts[-1].shape[-1]
        if have >= wanted:
            break
    wav = np.concatenate(parts)[:wanted] if parts else np.zeros(0, dtype=np.float32)
    return wav, ANALYSIS_RATE


def check_request(prior, request: Request) -> list[int] | None:
    """Refuse what this prior cannot follow; -> the parsed chords (or None)."""
    if request.asked and not getattr(prior.config, "controls", 0):
        raise ConfigError(
            "this prior was trained without controls, so --tempo, --chords and --like do not "
            "apply; use a prior with controls (the shipped one has them) or leave them out"
        )
    if request.like is not None and (request.tempo is not None or request.chords is not None):
        raise UsageError("--like takes tempo and chords from the reference; drop --tempo/--chords")
    if request.beats_per_chord not in (1, 2, 3, 4, 6, 8):
        raise UsageError(
            f"--beats-per-chord {request.beats_per_chord}: expected 1, 2, 3, 4, 6 or 8"
        )
    if request.tempo is not None:
        low, high = plans.tempo_range(prior.plan_tempi.cpu())
        if not low <= request.tempo <= high:
            raise UsageError(
                f"--tempo {request.tempo:g}: outside {low:g}-{high:g} BPM, the tempi this prior "
                "was trained on"
            )
    if request.like is not None:
        wav, rate = request.like
        if len(wav) < LIKE_MIN_SECONDS * rate:
            raise ConfigError(
                f"--like: the reference is {len(wav) / rate:.1f} s long; it needs at least "
                f"{LIKE_MIN_SECONDS:g} s of music with a beat"
            )
    return None if request.chords is None else parse_progression(request.chords)


def piece_grid(
    prior,
    request: Request,
    chords: list[int] | None,
    seconds: float,
    rng: np.random.Generator,
    prompt: Grid | None = None,
    prompt_seconds: float = 0.0,
) -> tuple[Grid, str]:
    """One piece's beat grid over prompt + new audio (``seconds`` in all) -> (grid, the plan
    as the options that ask for it again)."""
    tempi, moves = prior.plan_tempi.cpu(), prior.plan_moves.cpu()
    patterns = (
        plans.patterns_of(prior.plan_patterns) if hasattr(prior, "plan_patterns") else np.zeros(0)
    )
    if request.like is not None:
        grid = analyse(*request.like)
        if grid is None:
            raise ConfigError("--like: no beat found in the reference; give music with a pulse")
        lead = np.zeros(int(round(prompt_seconds * ONSET_RATE)), np.float32)
        shifted = Grid(
            grid.beats + prompt_seconds, grid.downbeat, grid.chords, np.r_[lead, grid.onsets]
        )
        return _after(prompt, shifted, prompt_seconds), "the beat and chords of --like"
    if prompt is not None and request.tempo is None and chords is None:
        grid, plan = plans.continue_grid(prompt, moves, seconds, rng)
        own = plans.bar_patterns(prompt)
        pattern = np.median(own, axis=0) if len(own) else _draw(patterns, rng)
        grid = _with_rhythm(grid, pattern, seconds, prompt_seconds)
        return _after(prompt, grid, prompt_seconds), f"from the prompt: {plan.describe()}"
    tempo = request.tempo if request.tempo is not None else plans.sample_tempo(tempi, rng)
    chords = chords if chords is not None else list(plans.sample_chords(moves, rng))
    plan = plans.Plan(tempo, tuple(chords), request.beats_per_chord)
    grid = plans.plan_grid(plan, seconds, start=prompt_seconds)
    grid = _with_rhythm(grid, _draw(patterns, rng), seconds, prompt_seconds)
    return _after(prompt, grid, prompt_seconds), plan.describe()


def _draw(patterns: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One of a prior's rhythm patterns (None: it has none)."""
    return patterns[rng.integers(len(patterns))] if len(patterns) else None


def _with_rhythm(grid: Grid, pattern: np.ndarray | None, seconds: float, start: float) -> Grid:
    """``grid`` with the onset envelope of ``pattern`` laid on its bars from ``start`` on."""
    if pattern is None:
        return grid
    onsets = plans.pattern_onsets(grid, pattern, seconds, start)
    return Grid(grid.beats, grid.downbeat, grid.chords, onsets)


def _after(prompt: Grid | None, grid: Grid, prompt_seconds: float) -> Grid:
    """The prompt's beats and onsets up to its end, then ``grid``'s from there on."""
    if prompt is None:
        return grid
    keep = prompt.beats < prompt_seconds
    later = grid.beats >= prompt_seconds
    if keep.sum() < 1 or later.sum() < 1:
        return grid
    onsets = grid.onsets
    if onsets is not None and prompt.onsets is not None:
        cut = int(round(prompt_seconds * ONSET_RATE))
        onsets = np.r_[np.asarray(prompt.onsets[:cut], np.float32), onsets[cut:]]
    return Grid(
        np.concatenate([prompt.beats[keep], grid.beats[later]]),
        prompt.downbeat,
        np.concatenate([np.asarray(prompt.chords)[keep], np.asarray(grid.chords)[later]]),
        onsets,
    )


def controls_for(
    prior,
    request: Request,
    seconds: float,
    frame_seconds: float,
    num_frames: int,
    seeds: list[int],
    prompt_wav: tuple[np.ndarray, int] | None = None,
) -> tuple[torch.Tensor | None, list[str]]:
    """Controls (n, num_frames, C) for ``len(seeds)`` pieces of ``seconds`` (prompt included),
    and each piece's plan as one line; (None, []) for a prior without controls."""
    chords = check_request(prior, request)
    if not getattr(prior.config, "controls", 0):
        return None, []
    prompt, prompt_seconds = None, 0.0
    if prompt_wav is not None:
        prompt = analyse(*prompt_wav)
        prompt_seconds = len(prompt_wav[0]) / prompt_wav[1]
    rows, described = [], []
    for seed in seeds:
        rng = np.random.default_rng([seed, 0x5EED])
        grid, text = piece_grid(prior, request, chords, seconds, rng, prompt, prompt_seconds)
        rows.append(render(grid, True, num_frames, frame_seconds))
        described.append(text)
    return torch.from_numpy(np.stack(rows)), described
