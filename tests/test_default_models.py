"""The models shipped inside the package work with no model argument (skipped until they ship)."""

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from vqaudio.checkpoint import DEFAULT_CODEC, DEFAULT_PRIOR, checkpoint_id
from vqaudio.codec.io import load_codec
from vqaudio.prior import load_prior
from vqaudio_cli.main import app

from .conftest import harmonic

runner = CliRunner()
needs_models = pytest.mark.skipif(
    not (DEFAULT_CODEC.is_file() and DEFAULT_PRIOR.is_file()), reason="no shipped models"
)


@needs_models
def test_shipped_prior_was_trained_on_the_shipped_codec():
    codec, prior = load_codec(), load_prior()
    assert prior.codec_id == codec.checkpoint_id == checkpoint_id(DEFAULT_CODEC)
    assert prior.config.codebook_size == codec.config.codebook_size
    assert prior.config.level_strides == codec.config.level_strides[: prior.config.num_levels]


@needs_models
def test_compress_and_decompress_with_no_model_argument(tmp_path):
    wav = harmonic(44100, 44100, f0=196.0).numpy()[0].T
    sf.write(tmp_path / "song.wav", np.repeat(wav, 2, axis=1), 44100)  # 1 s stereo
    r = runner.invoke(app, ["compress", str(tmp_path / "song.wav"), "-q"])
    assert r.exit_code == 0, r.output
    back = tmp_path / "back.wav"
    r = runner.invoke(app, ["decompress", str(tmp_path / "song.vqa"), "-o", str(back), "-q"])
    assert r.exit_code == 0, r.output
    out, rate = sf.read(back, dtype="float32")
    assert rate == 44100 and out.shape == (44100, 2) and np.isfinite(out).all()


@needs_models
def test_generate_with_no_model_argument(tmp_path):
    out = tmp_path / "g.wav"
    r = runner.invoke(app, ["generate", "--seconds", "0.5", "-o", str(out), "--seed", "3"])
    assert r.exit_code == 0, r.output
    wav, rate = sf.read(out, dtype="float32")
    assert rate == 24000 and len(wav) == 12000 and np.isfinite(wav).all()
    assert "plan: --tempo " in r.stderr and '--chords "' in r.stderr  # the shipped prior plans


@needs_models
def test_shipped_models_fit_the_size_budget_and_keep_exact_codes():
    from safetensors.torch import load_file

    assert DEFAULT_CODEC.stat().st_size + DEFAULT_PRIOR.stat().st_size <= 40e6
    stored = load_file(DEFAULT_CODEC)
    for name, tensor in stored.items():  # only the decoder may be stored in float16
        if tensor.is_floating_point() and not name.startswith("decoder."):
            assert tensor.dtype.is_floating_point and tensor.element_size() == 4, name


@needs_models
def test_a_10_s_file_at_1_5_kbps_keeps_5_levels_and_the_input_level(tmp_path):
    """The compact header and the band levels (charged to the budget) leave a
    10 s file at 1.5 kbps its 5 levels, and the band levels bring the decoded level to the
    input's (the shipped decoder alone renders notes like these 1-3 dB too quiet)."""
    from vqaudio import audio
    from vqaudio.vqa.compress import compress, decompress
    from vqaudio.vqa.container import VqaReader

    rng = np.random.default_rng(0)
    notes = [harmonic(24000, 24000, f0=float(f), seed=i) for i, f in enumerate([196, 247, 294] * 4)]
    wav = np.concatenate([n.numpy()[0, 0] for n in notes])[:240000] * 0.5
    wav = (wav + 0.003 * rng.standard_normal(wav.size)).astype(np.float32)
    audio.write(tmp_path / "song.wav", wav[None], 24000)
    codec = load_codec()
    header = compress(codec, tmp_path / "song.wav", tmp_path / "song.vqa", bitrate=1500)
    size = (tmp_path / "song.vqa").stat().st_size
    assert header.levels_per_channel[0] >= 5 and header.band_edges
    assert size * 8 / 10 <= 1500
    with VqaReader(tmp_path / "song.vqa") as reader:
        assert reader.version == 5
    decompress(tmp_path / "song.vqa", tmp_path / "back.wav", codec)
    back, _ = audio.read(tmp_path / "back.wav")
    level = 10 * np.log10(np.mean(back**2) / np.mean(wav**2))
    assert abs(level) < 0.5, level
