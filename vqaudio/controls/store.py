"""Beat grids of training files, analysed once and kept beside the run's codes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .. import audio
from ..atomic import atomic_write
from .analysis import ANALYSIS_RATE, analyse
from .grid import Grid


def cached_grid(path: Path, cache: Path) -> Grid | None:
    """:func:`analysis.analyse` of a whole file (mono), kept in ``cache`` under a name that
    changes with the file; None where it has no beat."""
    target = grid_path(path, cache)
    if not target.is_file():
        wav, rate = audio.read(path, ANALYSIS_RATE, 1)
        grid = analyse(wav[0], rate)
        empty = np.zeros(0)
        arrays = (
            {"beats": empty, "downbeat": np.int64(0), "chords": empty.astype(np.int64)}
            if grid is None
            else {
                "beats": grid.beats,
                "downbeat": np.int64(grid.downbeat),
                "chords": grid.chords,
                "onsets": grid.onsets,
            }
        )
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as f:
            np.savez(f, **arrays)
    with np.load(target, allow_pickle=False) as data:
        if len(data["beats"]) < 2:
            return None
        return Grid(data["beats"], int(data["downbeat"]), data["chords"], data["onsets"])


def grid_path(path: Path, cache: Path) -> Path:
    """Where ``cached_grid`` keeps ``path``'s analysis: the name changes with the file and with
    the analysis' version."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|grid-2"
    return cache / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
