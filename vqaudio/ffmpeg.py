"""Decoding through ffmpeg, for the formats libsndfile cannot read (.m4a/AAC, WMA, APE, ...).

Used by ``audio`` only, and only when ``ffmpeg`` and ``ffprobe`` are on the PATH. ffprobe gives
the first audio stream's rate and channel count; ffmpeg then decodes it to raw float32 samples
streamed through a pipe, so memory stays flat whatever the file length. :class:`FfmpegFile`
offers the part of ``soundfile.SoundFile`` that ``audio`` uses, so both read alike.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .errors import AudioError

SAMPLE_BYTES = 4  # float32


def available() -> bool:
    """Whether ffmpeg and ffprobe are on the PATH."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _probe(path: Path) -> dict | None:
    """The first audio stream's fields, or None when ffprobe finds no audio in the file."""
    command = [
        "ffprobe", "-v", "error", "-select_streams", "a:0", "-of", "json",
        "-show_entries", "stream=codec_name,sample_rate,channels,duration:format=duration",
        str(path),
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        found = json.loads(done.stdout or b"{}")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    streams = found.get("streams") or []
    if done.returncode != 0 or not streams:
        return None
    stream = streams[0]
    try:
        stream["sample_rate"] = int(stream["sample_rate"])
        stream["channels"] = int(stream["channels"])
    except (KeyError, TypeError, ValueError):
        return None
    stream["duration"] = stream.get("duration") or found.get("format", {}).get("duration")
    return stream


class FfmpegFile:
    """An audio file decoded by an ffmpeg subprocess: ``read(n)`` -> (n, C) float32 samples.

    ``frames`` is ffprobe's estimate of the length (-1 if it gives none); as with any compressed
    file, only the samples actually read say how long it is.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        stream = _probe(self.path)
        if stream is None or stream["sample_rate"] <= 0 or stream["channels"] <= 0:
            raise AudioError(f"{self.path}: not a readable audio file (ffmpeg finds no audio)")
        self.samplerate, self.channels = stream["sample_rate"], stream["channels"]
        self.format, self.subtype = "FFMPEG", str(stream.get("codec_name", "unknown")).upper()
        try:
            self.frames = round(float(stream["duration"]) * self.samplerate)
        except (TypeError, ValueError):
            self.frames = -1
        self._errors = tempfile.TemporaryFile()  # a file, not a pipe: it cannot fill and block
        command = [
            "ffmpeg", "-nostdin", "-v", "error", "-i", str(self.path), "-map", "0:a:0",
            "-f", "f32le", "-acodec", "pcm_f32le",
            "-ac", str(self.channels), "-ar", str(self.samplerate), "-",
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._errors)

    def read(self, frames: int = -1, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        """Up to ``frames`` samples (all that are left for -1) as (n, C) float32; fewer only at
        the end. A decoding error of ffmpeg is an AudioError with its message."""
        assert dtype == "float32" and always_2d
        frame_bytes = SAMPLE_BYTES * self.channels
        data = self._process.stdout.read(-1 if frames < 0 else frames * frame_bytes)
        if frames < 0 or len(data) < frames * frame_bytes:
            self._finish()
        data = data[: len(data) - len(data) % frame_bytes]
        return np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(-1, self.channels)

    def blocks(self, blocksize: int):
        while len(block := self.read(blocksize)):
            yield block

    def _finish(self) -> None:
        if self._process.wait() != 0:
            self._errors.seek(0)
            lines = self._errors.read().decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {self._process.returncode}"
            raise AudioError(f"{self.path}: ffmpeg could not decode it ({detail})")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.stdout.close()
        self._process.wait()
        self._errors.close()

    def __enter__(self) -> FfmpegFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
