"""`vqaudio generate --tempo/--chords/--like`: plans printed and followed, bad values refused
with one line and the right exit code, nothing written."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from vqaudio import audio
from vqaudio.checkpoint import checkpoint_id
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.controls.grid import NUM_CONTROLS
from vqaudio.prior import save_prior
from vqaudio_cli.main import app

from .conftest import diverse_codec, tiny_prior
from .test_controls import click_track

runner = CliRunner()
PLAN = re.compile(r'plan: --tempo (\d+) --chords "([^"]+)"')


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(codec, a prior with controls, a prior without) files of the tiny codec."""
    folder = tmp_path_factory.mktemp("models")
    codec = folder / "codec.safetensors"
    save_codec(diverse_codec(), codec)
    paths = []
    for name, controls in (("controlled", NUM_CONTROLS), ("plain", 0)):
        prior = tiny_prior("frames", context_blocks=64, controls=controls)
        if controls:  # the training music's tempi: 80-140 BPM
            prior.plan_tempi[10:26] = 1.0
        paths.append(folder / f"{name}.safetensors")
        save_prior(prior, paths[-1], checkpoint_id(load_codec(codec)))
    return codec, *paths


def _run(*args):
    return runner.invoke(app, ["generate", *[str(a) for a in args]])


def _refused(result, code: int, *texts):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in texts:
        assert text in lines[0], lines[0]


def test_default_generation_prints_a_plan_that_asks_for_itself_again(tmp_path, models):
    codec, controlled, _ = models
    common = ["--prior", controlled, "--codec", codec, "--seconds", 0.3, "--seed", 4]
    first = _run(*common, "-o", tmp_path / "a.wav")
    assert first.exit_code == 0, first.output
    tempo, chords = PLAN.search(first.stderr).groups()
    assert 80 <= int(tempo) <= 140 and len(set(chords.split())) > 1
    again = _run(*common, "-o", tmp_path / "b.wav", "--tempo", tempo, "--chords", chords)
    assert again.exit_code == 0, again.output
    assert PLAN.search(again.stderr).groups() == (tempo, chords)
    same = _run(*common, "-o", tmp_path / "c.wav")
    a, b = audio.read(tmp_path / "a.wav")[0], audio.read(tmp_path / "c.wav")[0]
    assert np.array_equal(a, b)  # the seed repeats plan and audio
    other = _run(
        "--prior",
        controlled,
        "--codec",
        codec,
        "--seconds",
        0.3,
        "--seed",
        5,
        "-o",
        tmp_path / "d.wav",
    )
    assert PLAN.search(other.stderr).groups() != (tempo, chords) or not np.array_equal(
        a, audio.read(tmp_path / "d.wav")[0]
    )
    assert same.exit_code == 0


def test_guidance_samples_otherwise(tmp_path, models):
    codec, controlled, _ = models
    common = ["--prior", controlled, "--codec", codec, "--seconds", 0.2, "--tempo", 100]
    assert _run(*common, "-o", tmp_path / "a.wav").exit_code == 0
    r = _run(*common, "-o", tmp_path / "b.wav", "--guidance", 3)
    assert r.exit_code == 0, r.output
    assert not np.array_equal(audio.read(tmp_path / "a.wav")[0], audio.read(tmp_path / "b.wav")[0])


@pytest.mark.parametrize(
    ("options", "code", "texts"),
    [
        (["--chords", "Am H7 C"], 2, ["'H7'", "A-G"]),
        (["--chords", " "], 2, ["--chords is empty"]),
        (["--tempo", "300"], 2, ["--tempo 300", "80-144 BPM"]),
        (["--tempo", "-5"], 2, ["--tempo -5"]),
        (["--beats-per-chord", "5", "--chords", "C G"], 2, ["--beats-per-chord 5"]),
        (["--guidance", "-1"], 2, ["--guidance -1"]),
        (["--control-scale", "11"], 2, ["--control-scale 11"]),
    ],
)
def test_bad_control_values_are_one_line_and_write_nothing(tmp_path, models, options, code, texts):
    codec, controlled, _ = models
    out = tmp_path / "out.wav"
    r = _run("--prior", controlled, "--codec", codec, "--seconds", 0.2, "-o", out, *options)
    _refused(r, code, *texts)
    assert not out.exists()


def test_a_prior_without_controls_refuses_them(tmp_path, models):
    codec, _, plain = models
    out = tmp_path / "out.wav"
    r = _run("--prior", plain, "--codec", codec, "--seconds", 0.2, "-o", out, "--tempo", 100)
    _refused(r, 1, "trained without controls")
    assert not out.exists()
    assert _run("--prior", plain, "--codec", codec, "--seconds", 0.2, "-o", out).exit_code == 0


def test_like_follows_a_reference_and_refuses_a_short_or_missing_one(tmp_path, models):
    codec, controlled, _ = models
    out = tmp_path / "out.wav"
    short = tmp_path / "short.wav"
    audio.write(short, click_track(100.0, 2.0)[None], 12000)
    _refused(_run("--prior", controlled, "--codec", codec, "-o", out, "--like", short), 1, "4 s")
    _refused(
        _run("--prior", controlled, "--codec", codec, "-o", out, "--like", tmp_path / "no.wav"),
        1,
        "no such file",
    )
    assert not out.exists()
    reference = tmp_path / "ref.wav"
    audio.write(reference, click_track(100.0, 8.0)[None], 12000)
    r = _run(
        "--prior",
        controlled,
        "--codec",
        codec,
        "--seconds",
        0.2,
        "-o",
        out,
        "--like",
        reference,
        "--tempo",
        90,
    )
    _refused(r, 2, "--like")
    r = _run(
        "--prior", controlled, "--codec", codec, "--seconds", 0.2, "-o", out, "--like", reference
    )
    assert r.exit_code == 0, r.output
    assert "plan: the beat and chords of --like" in r.stderr and out.exists()
