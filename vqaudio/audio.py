"""Audio I/O: the only module that imports audio libraries (soundfile for files, soxr to resample).

Files are read by libsndfile (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, ...), and where it cannot
read one and ffmpeg is on the PATH, through ffmpeg (``vqaudio.ffmpeg``: .m4a/AAC, WMA, ...).
Waveforms are float32 arrays/tensors shaped (C, T) in [-1, 1].

A compressed file's announced length (``info().num_samples``: an Ogg file's last granule
position, an MP3's estimate) is often off by some samples; only the samples decoded count, so
:class:`Stream` counts them as it reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from . import ffmpeg
from .atomic import atomic_path
from .errors import AudioError

MAX_CHANNELS = 8
# file endings taken for audio where a folder is searched (training data, `vqaudio eval`): the
# formats soundfile reads, the common ones first, then those read through ffmpeg when it is there
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".oga", ".aiff", ".aif", ".au")
ALWAYS_READ = (".wav", ".flac", ".aiff", ".aif", ".au")  # libsndfile builds differ on MP3 / Opus
FFMPEG_SUFFIXES = (".m4a", ".aac", ".wma", ".ape", ".wv", ".webm", ".mka")


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


def audio_suffixes() -> tuple[str, ...]:
    """File endings taken for audio where a folder is searched: with ffmpeg's when it is there."""
    return AUDIO_SUFFIXES + (FFMPEG_SUFFIXES if ffmpeg.available() else ())


def _open(path: str | Path) -> sf.SoundFile | ffmpeg.FfmpegFile:
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        if ffmpeg.available():
            return ffmpeg.FfmpegFile(path)
        if path.suffix.lower() in ALWAYS_READ:  # a format every libsndfile reads: a bad file
            raise AudioError(f"{path}: not a readable audio file ({e})") from None
        kind = f"{path.suffix.lower()} files" if path.suffix else "this file's format"
        raise AudioError(
            f"{path}: libsndfile cannot read {kind} ({e}); install ffmpeg (vqaudio decodes "
            "through it when it is on the PATH), or convert the file to FLAC or WAV"
        ) from None


def info(path: str | Path) -> AudioInfo:
    """Sample rate, channels, announced length and format of an audio file, without reading
    samples (unless it announces no length). A compressed file's announced length may be off:
    size a progress bar with it, nothing more; :class:`Stream` counts the real one."""
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
        data = _read(f, -1, path)
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


def _read(f: sf.SoundFile | ffmpeg.FfmpegFile, frames: int, path) -> np.ndarray:
    try:
        return f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: could not decode audio ({e})") from None


class Stream:
    """``for block in Stream(path, n, rate)``: (C, <=n) float32 blocks of a file, resampled on
    the fly to ``sample_rate``; memory stays flat whatever the file length.

    ``source_num_samples`` counts the samples decoded so far at the file's own rate: after the
    loop, the file's true length, whatever it announced. Raises AudioError for NaN/Inf or
    unreadable data.
    """

    def __init__(self, path: str | Path, block_samples: int, sample_rate: int | None = None):
        self.path, self.block_samples, self.sample_rate = path, block_samples, sample_rate
        self.source_num_samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        block_samples = self.block_samples
        with _open(self.path) as f:
            resampler = StreamResampler(f.samplerate, self.sample_rate or f.samplerate, f.channels)
            pending = np.zeros((f.channels, 0), dtype=np.float32)
            read_size = max(4096, block_samples)
            while True:
                data = _read(f, read_size, self.path)
                self.source_num_samples += len(data)
                last = len(data) == 0  # not a short read: decoders may return those mid-file
                out = resampler(_check(np.ascontiguousarray(data.T), str(self.path)), last=last)
                pending = np.concatenate([pending, out], axis=1)
                while pending.shape[1] >= block_samples:
                    yield pending[:, :block_samples]
                    pending = pending[:, block_samples:]
                if last:
                    break
            if pending.shape[1]:
                yield pending


def stream(path: str | Path, block_samples: int, sample_rate: int | None = None) -> Stream:
    """:class:`Stream` of ``path``: iterate it for blocks, then read its ``source_num_samples``."""
    return Stream(path, block_samples, sample_rate)


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
