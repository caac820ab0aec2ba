"""CLI: compress/decompress/reconstruct/info round trips; bad input -> exit 1, one line, no file."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from vqaudio import audio
from vqaudio.codec import Codec
from vqaudio.codec.io import save_codec
from vqaudio_cli.main import app

from .conftest import diverse_codec, harmonic, tiny_codec_config

runner = CliRunner()
CLI = [sys.executable, "-c", "from vqaudio_cli.main import app; app()"]


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    save_codec(diverse_codec(), path)
    return str(path)


@pytest.fixture
def song(tmp_path):
    wav = np.concatenate([harmonic(8000, 16000)[0].numpy(), harmonic(8000, 16000, 330)[0].numpy()])
    audio.write(tmp_path / "song.wav", wav, 16000)
    return tmp_path / "song.wav"


def _run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _fails(result, *texts):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for text in texts:
        assert text in result.stderr


def test_compress_decompress_round_trip(tmp_path, song, codec):
    r = _run("compress", song, "--codec", codec, "--bitrate", "40")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "song.vqa").read_bytes()[:4] == b"VQAU"
    assert "real" in r.stderr and "kbps" in r.stderr
    (tmp_path / "song.wav").rename(tmp_path / "orig.wav")
    r = _run("decompress", tmp_path / "song.vqa", "--codec", codec, "-q")
    assert r.exit_code == 0 and r.stderr == ""
    info = audio.info(tmp_path / "song.wav")
    assert (info.sample_rate, info.channels, info.num_samples) == (16000, 2, 8000)
    r = _run(
        "decompress",
        tmp_path / "song.vqa",
        "-o",
        tmp_path / "s.flac",
        "--codec",
        codec,
        "--sample-rate",
        "8000",
    )
    assert r.exit_code == 0 and audio.info(tmp_path / "s.flac").format == "FLAC"
    assert audio.info(tmp_path / "s.flac").sample_rate == 8000


def test_stdin_to_stdout_and_several_inputs(tmp_path, song, codec):
    r = _run("compress", "-", "-o", "-", "--codec", codec, "-q", input=song.read_bytes())
    assert r.exit_code == 0 and r.stdout_bytes[:4] == b"VQAU"
    r2 = _run("decompress", "-", "-o", "-", "--codec", codec, "-q", input=r.stdout_bytes)
    assert r2.exit_code == 0 and r2.stdout_bytes[:4] == b"RIFF"
    other = tmp_path / "other.wav"
    other.write_bytes(song.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    r = _run("compress", song, other, "-o", out, "--codec", codec, "-q", "--no-entropy")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["other.vqa", "song.vqa"]
    r = _run("compress", song, other, "-o", tmp_path / "x.vqa", "--codec", codec)
    _fails(r, "folder")


def test_reconstruct_and_info(tmp_path, song, codec):
    r = _run("reconstruct", song, "-o", tmp_path / "r.wav", "--codec", codec, "--bitrate", "20")
    assert r.exit_code == 0, r.output
    assert audio.info(tmp_path / "r.wav").num_samples == 8000
    _run("compress", song, "--codec", codec, "-q")
    r = _run("info", tmp_path / "song.vqa", "--json")
    data = json.loads(r.stdout)
    size = (tmp_path / "song.vqa").stat().st_size
    assert data["file_bytes"] == size and data["channels"] == 2
    assert data["real_bitrate_bps"] == pytest.approx(8 * size / 0.5, rel=1e-3)
    r = _run("info", codec, "--json")
    data = json.loads(r.stdout)
    assert data["kind"] == "codec" and data["bitrates_bps"]["2"] == tiny_codec_config().bitrates[1]
    assert data["parameters"] == sum(p.numel() for p in Codec(tiny_codec_config()).parameters())
    r = _run("info", tmp_path / "song.vqa")
    assert r.exit_code == 0 and "codec_id" in r.stdout


def test_bad_inputs_fail_cleanly(tmp_path, song, codec):
    _run("compress", song, "--codec", codec, "-q")
    vqa = tmp_path / "song.vqa"
    data = vqa.read_bytes()
    cases = {
        "flipped.vqa": data[:40] + bytes([data[40] ^ 1]) + data[41:],
        "cut.vqa": data[:-3],
        "magic.vqa": b"RIFX" + data[4:],
        "version.vqa": data[:4] + b"\x06" + data[5:],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        _fails(_run("decompress", tmp_path / name, "--codec", codec), name)
        assert not (tmp_path / name).with_suffix(".wav").exists()
    _fails(_run("decompress", tmp_path / "version.vqa", "--codec", codec), "version 6")
    torch.manual_seed(5)
    save_codec(Codec(tiny_codec_config()), tmp_path / "other.safetensors")
    _fails(
        _run(
            "decompress", vqa, "-o", tmp_path / "o.wav", "--codec", tmp_path / "other.safetensors"
        ),
        "was made with codec",
        "--codec",
    )
    nan = np.zeros((800, 1), dtype=np.float32)
    nan[500] = np.inf
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1)), 8000)
    (tmp_path / "text.wav").write_text("hello")
    for name in ("nan.wav", "empty.wav", "text.wav", "missing.wav"):
        _fails(_run("compress", tmp_path / name, "--codec", codec), name)
        assert not (tmp_path / name).with_suffix(".vqa").exists()
    (tmp_path / "folder").mkdir()
    _fails(_run("compress", tmp_path / "folder", "-o", tmp_path / "f.vqa", "--codec", codec))
    _fails(_run("compress", song, "-o", tmp_path / "nowhere" / "x.vqa", "--codec", codec))
    _fails(_run("compress", song, "--codec", codec), "already exists")
    assert vqa.read_bytes() == data
    assert _run("compress", song, "--codec", codec, "-f", "-q").exit_code == 0
    assert _run("compress", song, "--bitrate", "-1", "--codec", codec).exit_code == 2
    before = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in before if n.endswith(".tmp")]


def test_real_subprocess_round_trip(tmp_path, song, codec):
    out = subprocess.run(
        [*CLI, "compress", str(song), "--codec", codec, "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "song.vqa").read_bytes()[:4] == b"VQAU"
    r = _run("decompress", tmp_path / "song.vqa", "-o", tmp_path / "nope.mp3", "--codec", codec)
    _fails(r, "nope.mp3")
    assert not (tmp_path / "nope.mp3").exists()
