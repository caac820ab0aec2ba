"""Reading audio: lengths come from the samples decoded, not the announced ones; ffmpeg formats."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from vqaudio import audio
from vqaudio.errors import AudioError
from vqaudio.vqa.compress import compress, decompress
from vqaudio.vqa.container import VqaReader

from .conftest import diverse_codec

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg not on PATH"
)


@pytest.fixture(scope="module")
def codec():
    return diverse_codec()


def _song(path, num_samples: int, sample_rate: int, channels: int = 2) -> np.ndarray:
    """A two-tone stereo signal (T, C), written to ``path``."""
    t = np.arange(num_samples) / sample_rate
    wav = np.stack([0.3 * np.sin(2 * np.pi * 220 * (c + 1) * t) for c in range(channels)], 1)
    subtype = "FLOAT" if str(path).endswith(".wav") else "PCM_24"
    sf.write(path, wav.astype(np.float32), sample_rate, subtype=subtype)
    return wav


class Announcing:
    """An open SoundFile that announces ``error`` samples more (or fewer) than it holds, as Ogg
    files (last granule position) and MP3s (an estimate) often do."""

    def __init__(self, file: sf.SoundFile, error: int) -> None:
        self._file, self.frames = file, file.frames + error

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


@pytest.mark.parametrize("error", [1500, 1, -1, -1500])
@pytest.mark.parametrize("sample_rate", [11025, 8000])
def test_lengths_are_those_decoded_whatever_the_file_announces(
    tmp_path, codec, monkeypatch, error, sample_rate
):
    num_samples = 13001
    wav = _song(tmp_path / "a.wav", num_samples, sample_rate)
    real_open = audio._open
    monkeypatch.setattr(audio, "_open", lambda path: Announcing(real_open(path), error))
    assert audio.info(tmp_path / "a.wav").num_samples == num_samples + error
    header = compress(codec, tmp_path / "a.wav", tmp_path / "a.vqa", bitrate=1e5)
    assert header.source_num_samples == num_samples
    with VqaReader(tmp_path / "a.vqa") as reader:
        assert reader.header.source_num_samples == num_samples
        assert abs(reader.header.num_samples - num_samples * 8000 / sample_rate) <= 2
    monkeypatch.undo()
    decompress(tmp_path / "a.vqa", tmp_path / "b.wav", codec)
    back, rate = sf.read(tmp_path / "b.wav", always_2d=True)
    assert rate == sample_rate and back.shape == wav.shape


class ShortReads(Announcing):
    """An open SoundFile whose reads return at most 1000 samples, as a decoder may mid-file."""

    def read(self, frames=-1, **kwargs):
        return self._file.read(1000 if frames < 0 else min(frames, 1000), **kwargs)


def test_short_reads_mid_file_do_not_end_the_stream(tmp_path, codec, monkeypatch):
    wav = _song(tmp_path / "a.wav", 13001, 8000)
    real_open = audio._open
    monkeypatch.setattr(audio, "_open", lambda path: ShortReads(real_open(path), 0))
    header = compress(codec, tmp_path / "a.wav", tmp_path / "a.vqa", bitrate=1e5)
    assert header.source_num_samples == header.num_samples == len(wav)


def test_a_file_that_announces_samples_but_holds_none_is_refused(tmp_path, codec, monkeypatch):
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1)), 8000)
    real_open = audio._open
    monkeypatch.setattr(audio, "_open", lambda path: Announcing(real_open(path), 4000))
    with pytest.raises(AudioError, match="holds no samples"):
        compress(codec, tmp_path / "empty.wav", tmp_path / "a.vqa", bitrate=1e5)
    assert not (tmp_path / "a.vqa").exists()


def test_stream_counts_the_source_samples(tmp_path):
    _song(tmp_path / "a.flac", 10007, 11025, channels=1)
    stream = audio.stream(tmp_path / "a.flac", 1000, sample_rate=8000)
    out = sum(block.shape[1] for block in stream)
    assert stream.source_num_samples == 10007
    assert abs(out - 10007 * 8000 / 11025) <= 1


def test_without_ffmpeg_an_unknown_format_names_itself_and_the_way_out(tmp_path, monkeypatch):
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(64))
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg here
    with pytest.raises(AudioError) as e:
        audio.info(path)
    message = str(e.value)
    assert ".m4a" in message and "install ffmpeg" in message and "FLAC or WAV" in message
    assert ".m4a" not in audio.audio_suffixes()


@needs_ffmpeg
def test_m4a_is_decoded_through_ffmpeg_with_its_decoded_length(tmp_path, codec):
    _song(tmp_path / "a.wav", 14000, 11025)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "a.wav"), "-c:a", "aac", "-b:a", "48k",
         str(tmp_path / "a.m4a")],
        check=True,
    )  # fmt: skip
    info = audio.info(tmp_path / "a.m4a")
    assert (info.sample_rate, info.channels) == (11025, 2)
    decoded, rate = audio.read(tmp_path / "a.m4a")
    assert rate == 11025 and decoded.shape[0] == 2
    assert abs(decoded.shape[1] - 14000) < 3000  # AAC adds priming and padding samples
    header = compress(codec, tmp_path / "a.m4a", tmp_path / "a.vqa", bitrate=1e5)
    assert header.source_num_samples == decoded.shape[1]  # not ffprobe's estimate
    decompress(tmp_path / "a.vqa", tmp_path / "b.wav", codec)
    back, rate = sf.read(tmp_path / "b.wav", always_2d=True)
    assert rate == 11025 and back.shape == decoded.T.shape
    assert ".m4a" in audio.audio_suffixes()


@needs_ffmpeg
def test_ffmpeg_stream_is_read_in_blocks_and_errors_are_audio_errors(tmp_path):
    from vqaudio.ffmpeg import FfmpegFile

    _song(tmp_path / "a.wav", 9000, 8000, channels=1)
    with FfmpegFile(tmp_path / "a.wav") as f:
        sizes = [len(block) for block in f.blocks(4000)]
    assert sizes == [4000, 4000, 1000]
    (tmp_path / "junk.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    with pytest.raises(AudioError, match="junk.m4a"):
        audio.read(tmp_path / "junk.m4a")
