"""Audio I/O: the only module that imports audio libraries (soundfile for files, soxr to resample).

Waveforms are float32 arrays/tensors shaped (C, T) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .atomic import atomic_path
from .errors import AudioError

MAX_CHANNELS = 8
# file endings taken for audio where a folder is searched (training data, `vqaudio eval`): the
# formats soundfile reads, the common ones first
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".oga", ".aiff", ".aif", ".au")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    num_samples: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def _open(path: str | Path) -> sf.SoundFile:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({e})") from None


def info(path: str | Path) -> AudioInfo:
    """Sample rate, channels, length and format of an audio file, without reading samples."""
    with _open(path) as f:
        frames = f.frames
        if frames < 0 or frames > 2**62:  # some compressed streams report no length: count them
            frames = sum(len(block) for block in f.blocks(65536))
        return AudioInfo(f.samplerate, f.channels, frames, f.format, f.subtype)


def _check(wav: np.ndarray, where: str) -> np.ndarray:
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{where}: contains NaN or infinite samples")
    return wav


def read(
    path: str | Path, sample_rate: int | None = None, channels: int | None = None
) -> tuple[np.ndarray, int]:
    """Read a whole file -> (wav (C, T) float32, sample_rate). Resamples/mixes when asked."""
    with _open(path) as f:
        source_rate = f.samplerate
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{path}: could not decode audio ({e})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples")
    wav = _check(np.ascontiguousarray(data.T), str(path))
    if channels is not None:
        wav = mix_channels(wav, channels, str(path))
    if sample_rate is not None and sample_rate != source_rate:
        wav = resample(wav, source_rate, sample_rate)
        source_rate = sample_rate
    return wav, source_rate


def mix_channels(wav: np.ndarray, channels: int, where: str = "audio") -> np.ndarray:
    """(C, T) -> (channels, T): downmix to mono by averaging, duplicate mono, else refuse."""
    have = wav.shape[0]
    if have == channels:
        return wav
    if channels == 1:
        return wav.mean(axis=0, keepdims=True)
    if have == 1:
        return np.repeat(wav, channels, axis=0)
    raise AudioError(f"{where}: cannot map {have} channels to {channels}; convert it to mono first")


def resample(wav: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """(C, T) float32 resampled with soxr (high quality)."""
    if source_rate == target_rate:
        return wav
    out = soxr.resample(wav.T, source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


class StreamResampler:
    """Resamples a stream of (C, t) blocks with soxr, so long files never sit in memory whole."""

    def __init__(self, source_rate: int, target_rate: int, channels: int):
        self.passthrough = source_rate == target_rate
        if not self.passthrough:
            self._soxr = soxr.ResampleStream(
                source_rate, target_rate, channels, dtype="float32", quality="HQ"
            )

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.passthrough:
            return block
        out = self._soxr.resample_chunk(np.ascontiguousarray(block.T), last=last)
        return np.ascontiguousarray(out.T, dtype=np.float32)


def stream(
    path: str | Path, block_samples: int, sample_rate: int | None = None
) -> Iterator[np.ndarray]:
    """Yield (C, <=block_samples) float32 blocks of a file, resampled on the fly to ``sample_rate``.

    Memory stays flat whatever the file length. Raises AudioError for NaN/Inf or unreadable data.
    """
    with _open(path) as f:
        resampler = StreamResampler(f.samplerate, sample_rate or f.samplerate, f.channels)
        pending = np.zeros((f.channels, 0), dtype=np.float32)
        read_size = max(4096, block_samples)
        while True:
            try:
                data = f.read(read_size, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(f"{path}: could not decode audio ({e})") from None
            last = len(data) < read_size
            out = resampler(_check(np.ascontiguousarray(data.T), str(path)), last=last)
            pending = np.concatenate([pending, out], axis=1)
            while pending.shape[1] >= block_samples:
                yield pending[:, :block_samples]
                pending = pending[:, block_samples:]
            if last:
                break
        if pending.shape[1]:
            yield pending


_SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}


def _format_of(path: Path) -> tuple[str, str]:
    ext = path.suffix.lower()
    if ext not in _SUBTYPES:
        raise AudioError(
            f"{path}: unsupported output format {ext or '(none)'}; use .wav, .flac or .ogg"
        )
    return ext.lstrip(".").upper(), _SUBTYPES[ext]


def write(path: str | Path, wav: np.ndarray, sample_rate: int) -> None:
    """Write (C, T) float audio atomically (temp file + rename); format from the extension."""
    with Writer(path, sample_rate, wav.shape[0]) as writer:
        writer.write(wav)


class Writer:
    """Streaming atomic writer: ``with Writer(path, rate, channels) as w: w.write(block)``.

    The file appears under its name only when the block exits without an exception. A rate or
    channel count the format cannot hold is an AudioError naming the file.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int, fmt: str | None = None):
        self.path = Path(path)
        self.format, self.subtype = (fmt.upper(), "PCM_16") if fmt else _format_of(self.path)
        self.sample_rate, self.channels = sample_rate, channels

    def __enter__(self) -> Writer:
        self._target = atomic_path(self.path)
        tmp = self._target.__enter__()
        try:
            self._file = sf.SoundFile(
                str(tmp), "w", self.sample_rate, self.channels, self.subtype, format=self.format
            )
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError) as e:
            self._target.__exit__(type(e), e, None)
            raise AudioError(
                f"{self.path}: cannot write {self.channels} channel(s) at {self.sample_rate} Hz "
                f"as {self.format} ({e})"
            ) from None
        return self

    def write(self, block: np.ndarray) -> None:
        try:
            self._file.write(np.clip(block, -1, 1).T)
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise AudioError(f"{self.path}: could not write audio ({e})") from None

    def __exit__(self, kind, value, traceback) -> bool | None:
        self._file.close()
        return self._target.__exit__(kind, value, traceback)
