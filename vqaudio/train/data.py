"""Training audio: find files, decode + resample each ONCE into a .npy cache, take random crops.

Decoding and resampling compressed music is the slow part on CPU, so every file is converted once
to float32 at the codec's sample rate and kept on disk; crops are then slices of memory-mapped
arrays (``np.load(mmap_mode="r")``), which costs almost nothing per batch.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import audio
from ..atomic import atomic_write
from ..errors import ConfigError
from ..recipe import DataConfig


def find_audio(path: str | Path, key: str = "data.path", fix: str | None = None) -> list[Path]:
    """Audio files under a folder (recursive) or matching a glob, sorted by path. ``key`` names
    the recipe key in errors, ``fix`` says what to do (default: point ``key`` at your music)."""
    text = str(path)
    if fix is None:
        fix = f"point it at your music, e.g. --set {key}=/path/to/music"
    if any(ch in text for ch in "*?["):
        files = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)]
        where = f"{key} {text!r} matches"
    else:
        root = Path(text).expanduser()
        if not root.exists():
            raise ConfigError(f"{key} {text}: no such folder; {fix}")
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        where = f"{key} {text} holds"
    files = sorted(p for p in files if p.suffix.lower() in audio.audio_suffixes())
    if not files:
        raise ConfigError(f"{where} no audio files ({', '.join(audio.AUDIO_SUFFIXES[:4])}); {fix}")
    return files


def split_files(files: list[Path], val_files: int) -> tuple[list[Path], list[Path]]:
    """(train, validation): ``val_files`` whole files held out, chosen by a fixed permutation."""
    if val_files >= len(files):
        raise ConfigError(
            f"data.val_files is {val_files} but data.path holds only {len(files)} audio file(s); "
            "lower data.val_files or add files"
        )
    order = np.random.default_rng(1234).permutation(len(files))
    held = set(order[:val_files].tolist())
    train = [f for i, f in enumerate(files) if i not in held]
    val = [f for i, f in enumerate(files) if i in held]
    return train, val


def recipe_files(data: DataConfig) -> tuple[list[Path], list[Path]]:
    """(train, validation) files of a recipe's ``data`` section: ``val_files`` held out of
    ``path`` (:func:`split_files`), then the files of each of ``extra_paths`` not already there
    added to the training split; then every ``train_every``-th training file is kept."""
    train, val = split_files(find_audio(data.path), data.val_files)
    seen = {p.resolve() for p in train + val}
    for extra in data.extra_paths:
        fix = "install that music, or train without it: --set data.extra_paths=[]"
        for path in find_audio(extra, "data.extra_paths", fix):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                train.append(path)
    return train[:: data.train_every], val


def held_out_names(val_files: list[Path], most: int = 6) -> str:
    """'held out: a.ogg, b.ogg, ...' for the training log: the split follows the whole file list,
    so a file added under ``data.path`` can move it, and the log shows where it went."""
    names = [p.name for p in val_files[:most]]
    more = f" and {len(val_files) - most} more" if len(val_files) > most else ""
    return "held out: " + (", ".join(names) or "nothing") + more


def _cache_name(path: Path, sample_rate: int, mono: bool) -> str:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}|{mono}"
    return f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npy"


def cache_file(path: Path, cache_dir: Path, sample_rate: int, mono: bool) -> Path:
    """Decode ``path`` to float32 (C, T) at ``sample_rate`` into ``cache_dir`` (once); its path."""
    target = cache_dir / _cache_name(path, sample_rate, mono)
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    wav, _ = audio.read(path, sample_rate)
    if mono:
        wav = audio.mix_channels(wav, 1, str(path))
    with atomic_write(target) as f:
        np.save(f, np.ascontiguousarray(wav, dtype=np.float32), allow_pickle=False)
    return target


class AudioCrops:
    """Random fixed-length crops of a set of cached files.

    Files are drawn in proportion to their length, offsets uniformly; ``channels == "random"``
    picks one channel per crop (augmentation), else channels are averaged to mono.
    """

    def __init__(self, arrays: list[np.ndarray], segment_samples: int, channels: str = "mix"):
        self.arrays = arrays
        self.segment_samples = segment_samples
        self.channels = channels
        lengths = np.array([a.shape[1] for a in arrays], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    @classmethod
    def from_files(
        cls,
        files: list[Path],
        data: DataConfig,
        sample_rate: int,
        segment_samples: int,
        on_file: Callable[[int, int, Path], None] | None = None,
    ) -> AudioCrops:
        mono = data.channels == "mix"
        arrays = []
        cache_dir = Path(data.cache_dir).expanduser()
        for i, path in enumerate(files):
            if (
                on_file is not None
                and not (cache_dir / _cache_name(path, sample_rate, mono)).is_file()
            ):
                on_file(i, len(files), path)  # only files that still need decoding
            cached = cache_file(path, cache_dir, sample_rate, mono)
            arrays.append(np.load(cached, mmap_mode="r", allow_pickle=False))
        return cls(arrays, segment_samples, data.channels)

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        """One (1, segment_samples) float32 crop (zero-padded when a file is shorter)."""
        array = self.arrays[rng.choice(len(self.arrays), p=self.weights)]
        length = array.shape[1]
        start = int(rng.integers(0, max(length - self.segment_samples, 0) + 1))
        piece = np.asarray(array[:, start : start + self.segment_samples], dtype=np.float32)
        if self.channels == "random" and piece.shape[0] > 1:
            piece = piece[int(rng.integers(piece.shape[0]))][None]
        elif piece.shape[0] > 1:
            piece = piece.mean(axis=0, keepdims=True)
        if piece.shape[1] < self.segment_samples:
            piece = np.pad(piece, ((0, 0), (0, self.segment_samples - piece.shape[1])))
        return piece

    def batch(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """(B, 1, segment_samples) float32."""
        return np.stack([self.crop(rng) for _ in range(batch_size)])


SILENT_DBFS = -60.0  # a validation file quieter than this on average gives no evaluation clips


def eval_clips(arrays: list[np.ndarray], num_clips: int, clip_samples: int) -> np.ndarray:
    """(num_clips, 1, clip_samples) clips at evenly spaced, fixed places of the validation files,
    leaving out files of digital silence (mean power below ``SILENT_DBFS``) unless all are.

    Why: Wesnoth's held-out ``silence`` track sits at -103 dBFS. Its chroma is that of noise, and
    it gave 2 of the codec recipes' 6 clips, so what a decoder renders from silence moved their
    held-out chroma by up to 0.2 (docs/MODEL_CARD.md)."""
    audible = [a for a in arrays if _mean_power_db(a) > SILENT_DBFS]
    arrays = audible or arrays
    clips = []
    for i in range(num_clips):
        array = arrays[i % len(arrays)]
        nth, per_file = i // len(arrays), -(-num_clips // len(arrays))
        length = array.shape[1]
        start = (
            int((length - clip_samples) * (nth + 1) / (per_file + 1))
            if length > clip_samples
            else 0
        )
        piece = np.asarray(array[:, start : start + clip_samples], dtype=np.float32).mean(
            axis=0, keepdims=True
        )
        clips.append(np.pad(piece, ((0, 0), (0, clip_samples - piece.shape[1]))))
    return np.stack(clips)


def _mean_power_db(array: np.ndarray, step: int = 1 << 20) -> float:
    """10 log10 of the mean power of a (C, T) array, read in pieces (it may be memory-mapped)."""
    total, count = 0.0, 0
    for start in range(0, array.shape[1], step):
        piece = np.asarray(array[:, start : start + step], dtype=np.float64)
        total, count = total + float((piece**2).sum()), count + piece.size
    return 10 * np.log10(total / max(count, 1) + 1e-30)
