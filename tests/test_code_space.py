"""The code space: a codec with a retrained decoder decodes the files and drives the
priors of the codec it replaced; a codec with another encoder or codebook refuses them.

The "new decoder" is the shipped codec with its decoder weights perturbed and saved as an
inference file, as scripts/ship_models.py would ship a decoder trained with
``train.freeze: [encoder, quantizer]``. golden-v3-shipped.vqa was made with the shipped codec by
the format 3 writer (it records only the codec's checkpoint id), golden-v4-shipped.vqa by the
format 4 writer (it records the code space too).
"""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vqaudio.checkpoint import DEFAULT_CODEC, checkpoint_id, read_metadata
from vqaudio.codec import Codec
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.errors import CheckpointError, FormatError
from vqaudio.generation import check_compatible
from vqaudio.prior import load_prior, save_prior
from vqaudio.vqa.compress import decompress

from .conftest import tiny_codec_config

GOLDEN = Path(__file__).parent / "golden"
SHIPPED_FILES = ("golden-v3-shipped.vqa", "golden-v4-shipped.vqa")
# the codec that made them; the shipped codec since has a calibrated decoder of its code space
GOLDEN_CODEC = "da5a9e70c8348cdc"


def _perturbed(codec: Codec, prefix: str, seed: int = 0) -> None:
    """Add noise to every floating tensor whose name starts with ``prefix``, in place."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in codec.state_dict().items():
            if name.startswith(prefix) and tensor.is_floating_point():
                tensor.add_(0.01 * tensor.std() * torch.randn(tensor.shape, generator=gen))


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(1)
    return load_codec()


@pytest.fixture(scope="module")
def new_decoder(tmp_path_factory):
    """The shipped codec with another decoder, saved and loaded again."""
    codec = load_codec()
    _perturbed(codec, "decoder.")
    path = tmp_path_factory.mktemp("new") / "codec.safetensors"
    save_codec(codec, path, half=True)
    return load_codec(path)


def _other(tmp_path: Path, prefix: str) -> Codec:
    codec = load_codec()
    _perturbed(codec, prefix, seed=1)
    save_codec(codec, tmp_path / f"{prefix}safetensors", half=True)
    return load_codec(tmp_path / f"{prefix}safetensors")


def test_new_decoder_keeps_the_code_space_and_records_the_codec_it_replaced(shipped, new_decoder):
    assert new_decoder.checkpoint_id != shipped.checkpoint_id
    assert new_decoder.code_space_id == shipped.code_space_id
    assert read_metadata(new_decoder.checkpoint_path)["vqaudio.code_space_id"] == (
        shipped.code_space_id
    )
    assert checkpoint_id(DEFAULT_CODEC) in new_decoder.code_space_codecs


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_files_of_the_shipped_codec_decode_with_the_new_decoder(
    shipped, new_decoder, tmp_path, name
):
    old, new = tmp_path / "old.wav", tmp_path / "new.wav"
    decompress(GOLDEN / name, old, shipped)
    decompress(GOLDEN / name, new, new_decoder)
    wav_old, rate = sf.read(old)
    wav_new, _ = sf.read(new)
    assert rate == 24000 and wav_new.shape == wav_old.shape == (3 * 24000,)
    assert np.sqrt(np.mean(wav_new**2)) > 0.01  # audio, not silence
    assert not np.array_equal(wav_new, wav_old)  # it is the new decoder that rendered it


@pytest.mark.parametrize("part", ["encoder.", "quantizer."])
@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_another_encoder_or_codebook_is_refused_naming_both_ids(shipped, tmp_path, part, name):
    other = _other(tmp_path, part)
    assert other.code_space_id != shipped.code_space_id
    assert other.code_space_codecs == (other.checkpoint_id,)  # its lineage did not carry over
    with pytest.raises(FormatError) as e:
        decompress(GOLDEN / name, tmp_path / "out.wav", other)
    line = str(e.value)
    assert len(line.splitlines()) == 1 and "--codec" in line
    assert GOLDEN_CODEC[:8] in line and other.checkpoint_id[:8] in line
    if name.startswith("golden-v4"):  # the file names its code space
        assert shipped.code_space_id[:8] in line and other.code_space_id[:8] in line
    assert not (tmp_path / "out.wav").exists()


def test_the_shipped_prior_is_accepted_with_the_new_decoder(shipped, new_decoder, tmp_path):
    prior = load_prior()  # trained on today's codes
    assert prior.codec_id == shipped.checkpoint_id
    assert prior.code_space_id in (None, shipped.code_space_id)
    check_compatible(prior, new_decoder)
    with pytest.raises(CheckpointError, match="prior was trained on code"):
        check_compatible(prior, _other(tmp_path, "quantizer."))
    # a prior saved today records the code space, and any codec of it is accepted
    path = tmp_path / "prior.safetensors"
    save_prior(prior, path, shipped.checkpoint_id, code_space_id=shipped.code_space_id)
    resaved = load_prior(path)
    assert resaved.code_space_id == shipped.code_space_id
    check_compatible(resaved, new_decoder)
    with pytest.raises(CheckpointError, match=f"code space {shipped.code_space_id}"):
        check_compatible(resaved, _other(tmp_path, "encoder."))


def test_generate_cli_accepts_the_new_decoder_for_the_shipped_prior(new_decoder, tmp_path):
    from typer.testing import CliRunner

    from vqaudio_cli.main import app

    out = tmp_path / "g.wav"
    args = ["generate", "--codec", str(new_decoder.checkpoint_path), "--seconds", "0.2", "-q"]
    r = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert sf.info(str(out)).frames == round(0.2 * 24000)


def test_code_space_id_follows_the_codes_not_the_decoder_or_training_settings(tmp_path):
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config())
    base = codec.code_space_id
    same = Codec(tiny_codec_config(griffin_lim_iters=4, quantizer_dropout=0.0))
    same.load_state_dict(codec.state_dict())
    assert same.code_space_id == base  # decoder-only and training-only fields
    with torch.no_grad():
        next(p for n, p in codec.named_parameters() if n.startswith("decoder.")).add_(1.0)
    assert codec.code_space_id == base
    codec.quantizer.levels[0].codebook.data[3, 0] += 1e-3
    assert codec.code_space_id != base
    moved = Codec(tiny_codec_config(l2_normalize=not tiny_codec_config().l2_normalize))
    moved.load_state_dict(same.state_dict())
    assert moved.code_space_id != base  # a setting that changes which code an input gets


def test_a_recorded_code_space_that_is_not_the_weights_is_refused(tmp_path):
    from .test_cli_errors import _with_metadata

    path = tmp_path / "codec.safetensors"
    save_codec(Codec(tiny_codec_config()), path)
    _with_metadata(
        path, tmp_path / "x.safetensors", lambda m: m.update({"vqaudio.code_space_id": "0" * 16})
    )
    with pytest.raises(CheckpointError, match="metadata says code space 0000000000000000"):
        load_codec(tmp_path / "x.safetensors")


def test_one_check_refuses_another_code_space_or_a_misfit_and_names_both():
    from vqaudio.codec.code_space import check_compatible

    codec = Codec(tiny_codec_config())
    space, config = codec.code_space_id, codec.config
    fits = {"codebook_size": config.codebook_size, "level_strides": config.level_strides[:1]}
    check_compatible(codec, "a.vqa was made with", None, space, fits, FormatError, "fix")
    with pytest.raises(FormatError, match=f"code space 0123456789abcdef, .* code space {space}"):
        check_compatible(
            codec, "a.vqa was made with", "f" * 16, "0123456789abcdef", {}, FormatError, ""
        )
    wrong = {**fits, "codebook_size": config.codebook_size * 2}
    with pytest.raises(CheckpointError, match="does not fit codec .*; pass --codec"):
        check_compatible(
            codec, "p was trained on", None, space, wrong, CheckpointError, "pass --codec"
        )
