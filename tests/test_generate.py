"""CLI `vqaudio generate`: files, lengths, numbering, seeds, prompts, and clear errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from vqaudio import audio
from vqaudio.codec import Codec
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.codec.margins import decoder_margin_blocks
from vqaudio.prior import save_prior
from vqaudio_cli.main import app

from .conftest import harmonic, tiny_codec_config, tiny_prior

runner = CliRunner()
CLI = [sys.executable, "-c", "from vqaudio_cli.main import app; app()"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(prior path, codec path, other codec path): a tiny random prior saved with its codec's id."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    codec_id = save_codec(Codec(tiny_codec_config()), folder / "codec.safetensors")
    save_codec(Codec(tiny_codec_config()), folder / "other.safetensors")
    save_prior(tiny_prior("transformer"), folder / "prior.safetensors", codec_id)
    return folder / "prior.safetensors", folder / "codec.safetensors", folder / "other.safetensors"


def _run(models, *args):
    prior, codec, _ = models
    return runner.invoke(
        app, ["generate", "--prior", str(prior), "--codec", str(codec), *map(str, args)]
    )


def test_generates_a_wav_of_the_requested_length(models, tmp_path):
    out = tmp_path / "song.wav"
    r = _run(models, "--seconds", 0.05, "-o", out, "--top-k", 8, "--top-p", 0.9)
    assert r.exit_code == 0, r.output
    wav, rate = sf.read(out, always_2d=True)
    assert rate == 8000 and wav.shape == (400, 1)
    assert np.abs(wav).max() > 0
    assert "wrote" in r.stderr


def test_same_seed_same_audio_and_n_numbers_the_files(models, tmp_path):
    out = tmp_path / "song.wav"
    assert _run(models, "--seconds", 0.02, "-n", 2, "--seed", 5, "-o", out, "-q").exit_code == 0
    first, second = tmp_path / "song-1.wav", tmp_path / "song-2.wav"
    assert not out.exists() and first.exists() and second.exists()
    assert not np.array_equal(sf.read(first)[0], sf.read(second)[0])
    # The second run is a fresh process, so state left in this one (RNGs, caches) cannot help.
    prior, codec, _ = models
    again = tmp_path / "again.wav"
    r = subprocess.run(
        [
            *CLI,
            "generate",
            "--prior",
            prior,
            "--codec",
            codec,
            "--seconds",
            "0.02",
            "-n",
            "2",
            "--seed",
            "5",
            "-o",
            again,
            "-q",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        # the same thread count as this process (conftest): float sums are only bit-identical
        # for one device and one reduction order
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert np.array_equal(sf.read(tmp_path / "again-2.wav")[0], sf.read(second)[0])
    r = _run(models, "--seconds", 0.02, "-n", 2, "--seed", 6, "-o", tmp_path / "other.wav", "-q")
    assert not np.array_equal(sf.read(tmp_path / "other-2.wav")[0], sf.read(second)[0])


def test_sample_i_of_a_batch_is_seed_plus_i_on_its_own(models, tmp_path):
    r = _run(models, "--seconds", 0.02, "-n", 3, "--seed", 7, "-o", tmp_path / "b.wav", "-q")
    assert r.exit_code == 0, r.output
    r = _run(models, "--seconds", 0.02, "--seed", 9, "-o", tmp_path / "alone.wav", "-q")
    assert r.exit_code == 0, r.output
    batch, alone = sf.read(tmp_path / "b-3.wav")[0], sf.read(tmp_path / "alone.wav")[0]
    assert np.array_equal(batch, alone)  # README: sample i of --seed S is --seed S+i alone


def test_default_name_never_overwrites(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run(models, "--seconds", 0.01, "-q").exit_code == 0
    before = (tmp_path / "generated.wav").read_bytes()
    assert _run(models, "--seconds", 0.01, "-q", "--seed", 1).exit_code == 0
    assert (tmp_path / "generated.wav").read_bytes() == before
    assert (tmp_path / "generated-1.wav").exists()


def test_existing_output_needs_force(models, tmp_path):
    out = tmp_path / "song.wav"
    out.write_bytes(b"keep me")
    r = _run(models, "--seconds", 0.01, "-o", out)
    assert r.exit_code == 1
    assert r.stderr.strip().startswith("error:") and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"keep me"
    assert _run(models, "--seconds", 0.01, "-o", out, "-f", "-q").exit_code == 0
    assert sf.read(out)[0].shape == (80,)


def test_continuation_starts_with_the_prompt(models, tmp_path):
    """The output starts with the prompt's last 50 ms as its codes decode, up to the decoder's
    reach before the seam (beyond it the continuation's codes take part), at most scaled down
    whole (the peak ceiling) and rounded to 16 bits."""
    audio.write(tmp_path / "prompt.wav", harmonic(1000, 8000)[0].numpy(), 8000)
    out = tmp_path / "more.wav"
    r = _run(
        models,
        "--seconds",
        0.02,
        "--prompt",
        tmp_path / "prompt.wav",
        "--prompt-seconds",
        0.05,
        "-o",
        out,
        "-q",
    )
    assert r.exit_code == 0, r.output
    wav = sf.read(out)[0]
    assert wav.shape == (400 + 160,)  # 50 ms of prompt (25 whole blocks) + 20 ms
    _, codec_path, _ = models
    codec = load_codec(codec_path)
    prompt, _ = audio.read(tmp_path / "prompt.wav", 8000, 1)
    with torch.inference_mode():
        codes = codec.encode(torch.from_numpy(prompt[None, :, -400:])).keep(2)
        decoded = codec.decode(codes)[0, 0].numpy()
    alone = (25 - decoder_margin_blocks(codec.config)) * codec.config.block_samples
    assert alone >= 160
    start, want = wav[:alone], decoded[:alone]
    scale = float(start @ want / (want @ want))  # the peak ceiling's, or 1
    assert 0.5 < scale < 1 + 1e-3
    np.testing.assert_allclose(start, scale * want, atol=2e-4, rtol=0)


def test_codec_id_mismatch_is_a_clear_error(models, tmp_path):
    prior, _, other = models
    out = tmp_path / "song.wav"
    r = runner.invoke(
        app,
        [
            "generate",
            "--prior",
            str(prior),
            "--codec",
            str(other),
            "--seconds",
            "0.01",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 1
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error:")
    assert "trained on codec" in line and "--codec" in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_values_and_missing_default_prior_are_one_line_errors(models, tmp_path, monkeypatch):
    import vqaudio.prior

    r = _run(models, "--seconds", 0.01, "--temperature", 0, "-o", tmp_path / "a.wav")
    assert r.exit_code == 2 and "--temperature 0" in r.stderr  # a malformed value: usage
    r = _run(models, "--seconds", 0.01, "-o", tmp_path / "a.mp4")
    assert r.exit_code == 1 and "unsupported output format" in r.stderr
    monkeypatch.setattr(vqaudio.prior, "DEFAULT_PRIOR", tmp_path / "missing.safetensors")
    r = runner.invoke(app, ["generate", "--seconds", "0.01", "-o", str(tmp_path / "a.wav")])
    assert r.exit_code == 1 and "no default prior" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_more_griffin_lim_iterations_than_the_codecs_are_refused(models, tmp_path):
    out = tmp_path / "g.wav"
    r = _run(models, "--seconds", 0.02, "--griffin-lim-iters", 999, "-o", out, "-q")
    assert r.exit_code == 1 and "--griffin-lim-iters 999 is more than the codec's own" in r.output
    assert not out.exists()
    assert _run(models, "--seconds", 0.02, "--griffin-lim-iters", 4, "-o", out, "-q").exit_code == 0


def test_cache_scale_needs_a_prior_with_the_cache(models, tmp_path):
    """The fixture's flat transformer has no unigram cache: --cache-scale other than 1 is a
    one-line error before anything is written, 1 (and the default) work."""
    out = tmp_path / "g.wav"
    r = _run(models, "--seconds", 0.02, "--cache-scale", 0.5, "-o", out, "-q")
    assert r.exit_code == 1 and "code_counts" in r.stderr and "Traceback" not in r.output
    assert not out.exists()
    assert _run(models, "--seconds", 0.02, "--cache-scale", 1, "-o", out, "-q").exit_code == 0


def test_contrast_is_checked_and_changes_the_draws(models, tmp_path):
    """--contrast: a negative or non-number value is a one-line error before anything is
    written; 0 and a positive value both work, and give different audio for the same seed."""
    out = tmp_path / "g.wav"
    for bad in ("-0.5", "nan"):
        r = _run(models, "--seconds", 0.02, "--contrast", bad, "-o", out, "-q")
        assert r.exit_code == 2 and "--contrast" in r.stderr and "Traceback" not in r.output
        assert not out.exists()
    made = []
    for contrast in (0, 0.8):
        path = tmp_path / f"c{contrast}.wav"
        r = _run(models, "--seconds", 0.05, "--seed", 1, "--contrast", contrast, "-o", path, "-q")
        assert r.exit_code == 0, r.output
        made.append(sf.read(path)[0])
    assert not np.array_equal(*made)


def test_hold_cap_is_checked(models, tmp_path):
    """--hold-cap outside (0, 1], or below 1 without the exact hold it caps: a one-line error
    and no file; a cap with the exact hold works."""
    out = tmp_path / "g.wav"
    for bad in (
        ["--hold-cap", "1.5"],
        ["--hold-cap", "0"],
        ["--hold-cap", "0.9", "--no-exact-hold"],
    ):
        r = _run(models, "--seconds", 0.02, *bad, "-o", out, "-q")
        assert r.exit_code == 2 and "--hold-cap" in r.stderr and "Traceback" not in r.output
        assert not out.exists()
    assert _run(models, "--seconds", 0.02, "--hold-cap", 0.9, "-o", out, "-q").exit_code == 0


def test_per_level_top_k_and_top_p(models, tmp_path):
    """--top-p 1,0.9 and --top-k 5,0 set level 0 apart from the finer levels; a value that is not
    a number is a one-line error, before anything is written."""
    out = tmp_path / "g.wav"
    r = _run(models, "--seconds", 0.02, "--top-p", "1,0.9", "--top-k", "5,0", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    assert out.exists()
    for hold in ("--exact-hold", "--no-exact-hold"):
        r = _run(models, "--seconds", 0.02, "--top-p", "0.9", hold, "-o", out, "-q", "-f")
        assert r.exit_code == 0, r.output
    for option, value in (("--top-p", "1,x"), ("--top-k", "5,"), ("--top-p", "1,1.5")):
        bad = tmp_path / "bad.wav"
        r = _run(models, "--seconds", 0.02, option, value, "-o", bad, "-q")
        assert r.exit_code == 2 and option in r.stderr, r.output  # a malformed value: usage
        assert "Traceback" not in r.output and not bad.exists()


def test_a_prompt_ending_in_silence_gets_a_warning(models, tmp_path):
    """A prompt whose last second is under -60 dBFS: one warning line, and the piece is still
    written; a prompt that ends in sound gets none."""
    wav = harmonic(16000, 8000)[0].numpy()  # 2 s
    silent_end = wav.copy()
    silent_end[..., 8000:] *= 1e-4  # its last second at about -86 dBFS
    for name, data, warned in (("sound", wav, False), ("silent", silent_end, True)):
        audio.write(tmp_path / f"{name}.wav", data, 8000)
        out = tmp_path / f"{name}-more.wav"
        r = _run(models, "--seconds", 0.02, "--prompt", tmp_path / f"{name}.wav", "-o", out, "-q")
        assert r.exit_code == 0, r.output
        assert out.exists()
        assert ("warning: the prompt ends in silence" in r.stderr) == warned, r.stderr
