"""`vqaudio eval`: file pairs, folders matched by stem, JSON, plots, .vqa bitrates, bad input."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from vqaudio.codec import Codec
from vqaudio.codec.io import save_codec
from vqaudio_cli.main import app

from .conftest import tiny_codec_config

RATE = 8000
runner = CliRunner()


def tone(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    wav = sum(0.1 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 3000, size=4))
    return (wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def delayed(wav: np.ndarray, samples: int, gain: float = 1.0) -> np.ndarray:
    return gain * np.concatenate([np.zeros(samples, np.float32), wav[:-samples]])


def run_json(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args, "--json", "-q"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_identical_files_score_perfect(tmp_path):
    wav = tone()
    sf.write(tmp_path / "ref.wav", np.stack([wav, wav], 1), RATE)  # stereo: mixed to mono
    sf.write(tmp_path / "dec.flac", wav, RATE)
    result = runner.invoke(app, ["eval", str(tmp_path / "ref.wav"), str(tmp_path / "dec.flac")])
    assert result.exit_code == 0, result.output
    assert "ref" in result.stdout and "SI-SDR" in result.stdout
    row = run_json(str(tmp_path / "ref.wav"), str(tmp_path / "dec.flac"))["files"][0]
    assert row["mel_distance"] < 0.01
    assert row["si_sdr_db"] > 40  # 16-bit FLAC quantisation bounds it
    assert row["delay_samples"] == 0


def test_eval_reports_whether_the_notes_survive(tmp_path):
    """A decoded file with other notes scores chroma far below the same notes; the control
    (reference rolled by half) is reported beside it."""
    from tests.test_spectral import chord

    a = chord(220.0, 4.0)[0, 0].numpy()
    b = chord(311.1, 4.0)[0, 0].numpy()  # a tritone away
    sf.write(tmp_path / "ref.wav", a, 8000)
    sf.write(tmp_path / "same.wav", a, 8000)
    sf.write(tmp_path / "other.wav", b, 8000)
    same = run_json(str(tmp_path / "ref.wav"), str(tmp_path / "same.wav"))["files"][0]
    other = run_json(str(tmp_path / "ref.wav"), str(tmp_path / "other.wav"))["files"][0]
    assert same["chroma_correlation"] > 0.99
    assert other["chroma_correlation"] < same["chroma_correlation"] - 0.5
    assert "chroma_control" in same
    result = runner.invoke(app, ["eval", str(tmp_path / "ref.wav"), str(tmp_path / "other.wav")])
    assert result.exit_code == 0 and "chroma" in result.stdout


def test_folders_are_matched_by_stem(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "dec").mkdir()
    for k, name in enumerate(["a", "b", "lonely"]):
        wav = tone(seed=k)
        sf.write(tmp_path / "ref" / f"{name}.wav", wav, RATE)
        if name != "lonely":  # decoded 40 samples late, 6 dB quieter, another format and rate
            sf.write(tmp_path / "dec" / f"{name}.flac", delayed(wav, 40, gain=0.5), RATE)
    sf.write(tmp_path / "dec" / "stranger.wav", tone(), RATE)
    result = runner.invoke(app, ["eval", str(tmp_path / "ref"), str(tmp_path / "dec"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [row["name"] for row in document["files"]] == ["a", "b"]
    for row in document["files"]:
        assert row["delay_samples"] == 40
        assert row["level_difference_db"] == pytest.approx(-6.02, abs=0.1)
        assert row["si_sdr_db"] > 30
    assert document["mean"]["files"] == 2
    assert document["mean"]["duration_s"] == pytest.approx(2 * 0.5 - 2 * 40 / RATE, abs=1e-3)
    assert "1 reference file(s) have no decoded match" in result.stderr


def test_vqa_size_gives_the_bitrate(tmp_path):
    wav = tone(seconds=1.0)
    sf.write(tmp_path / "ref.wav", wav, RATE)
    sf.write(tmp_path / "dec.wav", wav, RATE)
    (tmp_path / "song.vqa").write_bytes(b"\0" * 750)  # only its size is used: 6000 bits in 1 s
    row = run_json(
        str(tmp_path / "ref.wav"), str(tmp_path / "dec.wav"), "--vqa", str(tmp_path / "song.vqa")
    )["files"][0]
    assert row["bitrate_kbps"] == pytest.approx(6.0)
    assert row["bitrate_source"] == "file"


def test_plot_writes_a_png_and_refuses_to_overwrite(tmp_path):
    wav = tone()
    sf.write(tmp_path / "ref.wav", wav, RATE)
    sf.write(tmp_path / "dec.wav", delayed(wav, 10), RATE)
    args = [
        "eval",
        str(tmp_path / "ref.wav"),
        str(tmp_path / "dec.wav"),
        "--plot",
        str(tmp_path / "spec.png"),
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert (tmp_path / "spec.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


@pytest.fixture
def tiny_codec_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_codec(Codec(tiny_codec_config()).eval(), path)
    return path


def test_roundtrip_through_the_codec_reports_the_real_bitrate(tmp_path, tiny_codec_file):
    # random weights: the scores mean nothing, but the pipeline and the bitrate are real
    for k in range(2):
        sf.write(tmp_path / f"clip{k}.wav", tone(seconds=1.0, seed=k), RATE)
    document = run_json(
        "--bitrate",
        "6",
        "--codec",
        str(tiny_codec_file),
        str(tmp_path / "clip0.wav"),
        str(tmp_path / "clip1.wav"),
    )
    assert [row["name"] for row in document["files"]] == ["clip0", "clip1"]
    for row in document["files"]:
        assert row["bitrate_source"] == "file"
        assert 0.5 < row["bitrate_kbps"] <= 6.0
        assert np.isfinite(row["mel_distance"]) and row["mel_distance"] > 0
    assert document["codec_id"]


def test_a_vqa_file_is_decoded_and_scored(tmp_path, tiny_codec_file):
    from vqaudio.codec.io import load_codec
    from vqaudio.vqa.compress import compress

    sf.write(tmp_path / "ref.wav", tone(seconds=1.0), RATE)
    compress(load_codec(tiny_codec_file), tmp_path / "ref.wav", tmp_path / "ref.vqa", bitrate=6000)
    row = run_json(
        str(tmp_path / "ref.wav"), str(tmp_path / "ref.vqa"), "--codec", str(tiny_codec_file)
    )["files"][0]
    size_bits = (tmp_path / "ref.vqa").stat().st_size * 8
    assert row["bitrate_kbps"] == pytest.approx(size_bits / 1000, rel=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.wav", "dec.wav"], "no such file"),
        (["ref.wav"], "expected REFERENCE and DECODED"),
        (["ref.wav", "other"], "files only or folders only"),
        (["here", "other"], "no file in"),
        (["ref.wav", "ref.wav", "--plot", "x.jpg"], "expected a .png"),
        (["notaudio.wav", "ref.wav"], "not a readable audio file"),
    ],
)
def test_bad_input_exits_1_with_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    sf.write("ref.wav", tone(), RATE)
    sf.write("dec.wav", tone(), RATE)
    (tmp_path / "notaudio.wav").write_text("hello")
    (tmp_path / "here").mkdir()
    sf.write("here/a.wav", tone(), RATE)
    (tmp_path / "other").mkdir()
    sf.write("other/b.wav", tone(), RATE)
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert result.stdout == ""


def _render(rows: list[dict], width: int = 80) -> list[str]:
    from rich.console import Console

    from vqaudio_cli.evaluate import _mean_row, _table

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(_table(rows, _mean_row(rows), "vqaudio eval: codec 0123456789abcdef at 6 kbps"))
    return console.export_text().splitlines()


WIDEST = {  # every column at its widest plausible value
    "bitrate_kbps": 123.456,
    "mel_distance": 12.3456,
    "spectral_convergence": 1.2345,
    "si_sdr_db": -100.123,
    "chroma_correlation": -0.1234,
    "chroma_control": -0.4567,
    "level_difference_db": -12.345,
    "visqol": 4.999,
    "delay_ms": -50.0,
    "duration_s": 3600.04,
}


def test_eval_table_shows_every_name_and_number_in_80_columns():
    from vqaudio_cli.evaluate import COLUMNS

    name = "a_very_long_file_name_from_the_2024_remaster"
    lines = _render([{"name": name, **WIDEST}])
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "…" not in text
    for key, heading, fmt in COLUMNS:
        for word in heading.split():
            assert word in text, word
        assert fmt.format(WIDEST[key]) in text, key
    body = [line for line in lines[lines.index(next(x for x in lines if "──" in x)) + 1 :]]
    assert "".join(line.split()[0] for line in body if line.strip()) == name  # folded, not cut


def test_eval_cli_table_fits_80_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for folder in ("ref", "dec"):
        (tmp_path / folder).mkdir()
    for name in ("first_song", "second_song"):
        sf.write(tmp_path / "ref" / f"{name}.wav", tone(3.0), RATE)  # long enough for chroma
        sf.write(tmp_path / "dec" / f"{name}.wav", delayed(tone(3.0), 8, 0.8), RATE)
    result = runner.invoke(app, ["eval", str(tmp_path / "ref"), str(tmp_path / "dec"), "-q"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for word in ("mel", "SI-SDR", "chroma", "ctrl", "level", "delay", "secs", "mean"):
        assert word in result.stdout
    assert "first_song" in result.stdout and "second_song" in result.stdout


def test_visqol_without_its_package_is_a_one_line_error(tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "visqol" else real_find_spec(name, *a),
    )
    sf.write(tmp_path / "ref.wav", tone(), RATE)
    sf.write(tmp_path / "dec.wav", tone(), RATE)
    result = runner.invoke(
        app, ["eval", str(tmp_path / "ref.wav"), str(tmp_path / "dec.wav"), "--visqol"]
    )
    assert result.exit_code != 0
    assert "vqaudio[visqol]" in result.output and "Traceback" not in result.output


def test_visqol_scores_a_clean_copy_above_a_noisy_one(tmp_path):
    pytest.importorskip("visqol")
    wav = np.tile(tone(seconds=1.0), 3)
    noisy = wav + 0.03 * np.random.default_rng(2).standard_normal(len(wav)).astype(np.float32)
    sf.write(tmp_path / "ref.wav", wav, RATE)
    sf.write(tmp_path / "clean.wav", wav, RATE)
    sf.write(tmp_path / "noisy.wav", noisy, RATE)
    ref = str(tmp_path / "ref.wav")
    clean = run_json(ref, str(tmp_path / "clean.wav"), "--visqol")["files"][0]["visqol"]
    rough = run_json(ref, str(tmp_path / "noisy.wav"), "--visqol")["files"][0]["visqol"]
    assert 1.0 <= rough < clean - 0.3 and clean > 4.0
