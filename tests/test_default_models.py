"""The models shipped inside the package work with no model argument (skipped until they ship)."""

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner
from vqaudio_cli.main import app

from vqaudio.checkpoint import DEFAULT_CODEC, DEFAULT_PRIOR, checkpoint_id, load_codec
from vqaudio.prior import load_prior

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
    r = runner.invoke(app, ["generate", "--seconds", "0.5", "-o", str(out), "--seed", "3", "-q"])
    assert r.exit_code == 0, r.output
    wav, rate = sf.read(out, dtype="float32")
    assert rate == 24000 and len(wav) == 12000 and np.isfinite(wav).all()


@needs_models
def test_shipped_models_fit_the_size_budget_and_keep_exact_codes():
    from safetensors.torch import load_file

    assert DEFAULT_CODEC.stat().st_size + DEFAULT_PRIOR.stat().st_size <= 40e6
    stored = load_file(DEFAULT_CODEC)
    for name, tensor in stored.items():  # only the decoder may be stored in float16
        if tensor.is_floating_point() and not name.startswith("decoder."):
            assert tensor.dtype.is_floating_point and tensor.element_size() == 4, name
