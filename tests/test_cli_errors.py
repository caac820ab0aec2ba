"""CLI failure paths: one stderr line and exit 1 for every user mistake or bad file, no traceback,
nothing written; a bug keeps its traceback with how to report it."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vqaudio import audio
from vqaudio.codec.io import save_codec
from vqaudio.prior import save_prior
from vqaudio_cli.main import app

from . import fuzz
from .conftest import diverse_codec, harmonic, tiny_prior

runner = CliRunner()


def _run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _fails(result, *texts):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for text in texts:
        assert text in result.stderr, result.stderr


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    save_codec(diverse_codec(), path)
    return path


def _song(path, rate=8000):
    audio.write(path, harmonic(rate // 2, rate)[0].numpy(), rate)
    return path


def test_outputs_that_collide_are_refused_before_anything_is_written(tmp_path, codec):
    (tmp_path / "d1").mkdir(), (tmp_path / "d2").mkdir(), (tmp_path / "out").mkdir()
    _song(tmp_path / "d1" / "x.wav")
    audio.write(tmp_path / "d2" / "x.flac", harmonic(4000, 8000, 330)[0].numpy(), 8000)
    r = _run(
        "compress",
        tmp_path / "d1/x.wav",
        tmp_path / "d2/x.flac",
        "-o",
        tmp_path / "out",
        "--codec",
        codec,
        "-f",
    )
    _fails(r, "x.vqa", "two inputs")
    assert list((tmp_path / "out").iterdir()) == []


def test_os_errors_are_one_line_naming_the_path(tmp_path, codec):
    song = _song(tmp_path / "song.wav")
    long_name = tmp_path / ("x" * 300 + ".vqa")
    _fails(_run("compress", song, "-o", long_name, "--codec", codec), "File name too long")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = _run("compress", song, "-o", locked / "a.vqa", "--codec", codec)
        if r.exit_code == 0:  # root writes anywhere
            pytest.skip("running as root: permissions are not enforced")
        _fails(r, str(locked))
    finally:
        locked.chmod(0o700)


def test_a_bug_keeps_its_traceback_and_says_how_to_report_it(tmp_path, codec, monkeypatch):
    import sys

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sys.modules["vqaudio.vqa.compress"], "compress", broken)
    r = _run("compress", _song(tmp_path / "song.wav"), "--codec", codec)
    assert r.exit_code == 1 and isinstance(r.exception, ZeroDivisionError)
    assert "report it" in r.stderr and "vqaudio --version" in r.stderr


def test_crafted_vqa_headers_never_show_a_traceback(tmp_path, codec):
    song = _song(tmp_path / "song.wav")
    assert _run("compress", song, "--codec", codec, "-q").exit_code == 0
    split = fuzz.Split.of((tmp_path / "song.vqa").read_bytes())
    for key, value in [
        ("source_num_samples", 10**10),
        ("channels", 2**31),
        ("source_sample_rate", 10**9),
        ("level_strides", [0]),
    ]:
        bad = tmp_path / f"bad-{key}.vqa"
        bad.write_bytes(
            fuzz.Split(split.version, {**split.header, key: value}, split.chunks).to_bytes()
        )
        _fails(_run("info", bad), f"header field {key}")
        _fails(_run("decompress", bad, "--codec", codec, "-o", tmp_path / "out.wav"), key)
        assert not (tmp_path / "out.wav").exists()
    del split.header["hop_length"]  # format 4: the fields after it slide into its place
    (tmp_path / "missing.vqa").write_bytes(split.to_bytes())
    _fails(_run("info", tmp_path / "missing.vqa"), "invalid header")
    old = fuzz.Split.of((Path(__file__).parent / "golden" / "golden-v3-packed.vqa").read_bytes())
    del old.header["hop_length"]  # versions 1-3: JSON, whose keys are named
    (tmp_path / "missing-v3.vqa").write_bytes(old.to_bytes())
    _fails(_run("info", tmp_path / "missing-v3.vqa"), "missing field(s) hop_length")


def _with_metadata(path, out, change):
    """Rewrite a safetensors file's metadata (the JSON header) with ``change(metadata)``."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    change(header["__metadata__"])
    body = json.dumps(header).encode()
    body += b" " * (-len(body) % 8)
    out.write_bytes(struct.pack("<Q", len(body)) + body + data[8 + n :])
    return out


@pytest.mark.parametrize(
    "change, text",
    [
        (lambda m: m.update({"vqaudio.config": "{not json"}), "not JSON"),
        (lambda m: m.update({"vqaudio.config": "[1, 2]"}), "not a JSON object"),
        (lambda m: m.update({"vqaudio.config": json.dumps({"encoder_dim": 10**5})}), "do not fit"),
        (lambda m: m.update({"vqaudio.config": json.dumps({"encoder_dim": 10**9})}), "implausible"),
        (
            lambda m: m.update(
                {"vqaudio.config": json.dumps({"istft_layers": 10**6, "decoder": "istft"})}
            ),
            "cannot fit",
        ),
        (lambda m: m.update({"vqaudio.config": json.dumps({"strides": [0]})}), "config"),
        (lambda m: m.pop("vqaudio.config"), "missing"),
        (lambda m: m.update({"vqaudio.format": "9"}), "unsupported model format"),
    ],
)
def test_crafted_model_configs_are_refused_without_building(tmp_path, codec, change, text):
    bad = _with_metadata(codec, tmp_path / "bad.safetensors", change)
    _fails(_run("info", bad), text)
    _fails(_run("compress", _song(tmp_path / "s.wav"), "--codec", bad), text)
    assert not (tmp_path / "s.vqa").exists()


def test_info_of_a_model_file_counts_parameters_without_building_it(codec):
    r = _run("info", codec, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["parameters"] == diverse_codec().num_parameters()


def test_generate_finds_the_codec_its_prior_was_trained_on(tmp_path, codec):
    from vqaudio.checkpoint import checkpoint_id

    prior_path = tmp_path / "prior.safetensors"
    save_prior(tiny_prior(), prior_path, checkpoint_id(codec), codec_path=codec)
    r = _run("generate", "--prior", prior_path, "--seconds", 0.02, "-o", tmp_path / "g.wav", "-q")
    assert r.exit_code == 0, r.output
    other = tmp_path / "other.safetensors"  # same config, other weights: another id
    torch.manual_seed(1)
    save_codec(diverse_codec(seed=1), other)
    save_prior(tiny_prior(), prior_path, checkpoint_id(codec), codec_path=other)
    r = _run("generate", "--prior", prior_path, "--seconds", 0.02, "-o", tmp_path / "h.wav")
    _fails(r, "was trained on codec", str(other))
    assert not (tmp_path / "h.wav").exists()


def test_generate_checks_options_before_loading_models(tmp_path):
    missing = tmp_path / "no-such-prior.safetensors"
    for option, text in [
        ("--seconds=-1", "--seconds"),
        ("--prompt=nothing.wav", "--prompt"),
    ]:
        _fails(_run("generate", "--prior", missing, option, "-o", tmp_path / "g.wav"), text)
    for option, text in [  # malformed sampling values: usage errors, named as their options
        ("--temperature=0", "--temperature 0"),
        ("--top-p=2", "--top-p 2"),
        ("--control-scale=11", "--control-scale 11"),
        ("--guidance=-1", "--guidance -1"),
        ("--cache-by-chord=2", "--cache-by-chord 2"),
    ]:
        r = _run("generate", "--prior", missing, option, "-o", tmp_path / "g.wav")
        assert r.exit_code == 2, r.output
        assert r.stderr.strip().startswith("error: ") and text in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unwritable_audio_format_is_one_line(tmp_path, codec):
    song = _song(tmp_path / "song.wav")
    assert _run("compress", song, "--codec", codec, "-q").exit_code == 0
    split = fuzz.Split.of((tmp_path / "song.vqa").read_bytes())
    rate = 700000  # plausible for the header, beyond what FLAC holds
    header = {
        **split.header,
        "source_sample_rate": rate,
        "source_num_samples": round(split.header["num_samples"] * rate / 8000),
    }
    (tmp_path / "hi.vqa").write_bytes(fuzz.Split(split.version, header, split.chunks).to_bytes())
    r = _run("decompress", tmp_path / "hi.vqa", "--codec", codec, "-o", tmp_path / "hi.flac")
    _fails(r, "hi.flac")
    assert not (tmp_path / "hi.flac").exists()
    assert np.all([not p.name.endswith(".tmp") for p in tmp_path.iterdir()])


def test_an_unknown_band_resolution_is_refused_and_nothing_is_written(tmp_path, codec):
    song = _song(tmp_path / "x.wav")
    r = _run(
        "compress", song, "-o", tmp_path / "x.vqa", "--codec", codec, "--band-resolution", "3x1"
    )
    _fails(r, "--band-resolution", "16x0.4")
    assert not list(tmp_path.glob("*.vqa*"))
    ok = _run(
        "compress", song, "-o", tmp_path / "y.vqa", "--codec", codec, "--band-resolution", "16x0.4"
    )
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "y.vqa").exists()
