"""The chord vocabulary: 12 major and 12 minor triads and "N" (no chord), a bottleneck of under
5 bits per beat, so harmony passes and timbre cannot (MusicGen-melody's argmax chroma)."""

from __future__ import annotations

import re

import numpy as np

from ..errors import UsageError

PITCHES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": 1, "Eb": 3, "Fb": 4, "Gb": 6, "Ab": 8, "Bb": 10, "Cb": 11, "E#": 5, "B#": 0}
NO_CHORD = 24  # id of "N"; ids 0-11 are C..B major, 12-23 C..B minor
NUM_CHORDS = 25
_SYMBOL = re.compile(r"^([A-Ga-g])([#b]?)(:?)(maj|min|m|M)?$")


class ChordError(UsageError):
    """A chord symbol or progression that cannot be read."""


def chord_name(chord: int) -> str:
    """Chord id -> symbol: 0 -> 'C', 21 -> 'Am', 24 -> 'N'."""
    if chord == NO_CHORD:
        return "N"
    return PITCHES[chord % 12] + ("m" if chord >= 12 else "")


def harte(chord: int) -> str:
    """Chord id -> Harte label (mir_eval's): 21 -> 'A:min', 0 -> 'C:maj', 24 -> 'N'."""
    if chord == NO_CHORD:
        return "N"
    return PITCHES[chord % 12] + (":min" if chord >= 12 else ":maj")


def parse_chord(symbol: str) -> int:
    """'Am', 'F#', 'Bbm', 'C:min', 'N' -> chord id."""
    if symbol in ("N", "n", "-"):
        return NO_CHORD
    match = _SYMBOL.match(symbol)
    if match is None:
        raise ChordError(
            f"unknown chord symbol {symbol!r}; use a root A-G with an optional # or b, then m "
            "for minor (e.g. 'Am F C G', 'C#m', 'Bb'), or N for no chord"
        )
    letter, accidental, _, quality = match.groups()
    name = letter.upper() + accidental
    root = _FLATS[name] if name in _FLATS else PITCHES.index(name)
    return root + (12 if quality in ("m", "min") else 0)


def parse_progression(text: str) -> list[int]:
    """'Am F C G' (spaces, commas or bars '|' between chords) -> chord ids, one per bar."""
    symbols = [s for s in re.split(r"[\s,|]+", text.strip()) if s]
    if not symbols:
        raise ChordError("--chords is empty; give chords such as 'Am F C G'")
    return [parse_chord(s) for s in symbols]


def progression_text(chords: list[int]) -> str:
    return " ".join(chord_name(c) for c in chords)


def templates() -> np.ndarray:
    """(25, 12) unit-norm chroma templates; "N" is flat."""
    out = np.zeros((NUM_CHORDS, 12), dtype=np.float32)
    for root in range(12):
        for third, offset in ((4, 0), (3, 12)):
            out[root + offset, [root, (root + third) % 12, (root + 7) % 12]] = 1.0
    out[NO_CHORD] = 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def estimate(chroma: np.ndarray, floor: float = 0.5) -> np.ndarray:
    """chroma (12, T) -> chord id per column by template correlation; a column whose best
    triad correlates under ``floor`` (no clear triad) or has no energy is "N"."""
    centred = chroma - chroma.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(centred, axis=0, keepdims=True)
    unit = centred / np.maximum(norm, 1e-8)
    table = templates()[:24]
    table = table - table.mean(axis=1, keepdims=True)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    score = table @ unit  # (24, T) Pearson correlation
    best = score.argmax(axis=0)
    silent = (chroma.sum(axis=0) <= 1e-6) | (norm[0] <= 1e-8)
    return np.where(silent | (score.max(axis=0) < floor), NO_CHORD, best).astype(np.int64)
