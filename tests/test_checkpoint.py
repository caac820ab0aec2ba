"""Model files: strict round trip, the format version, and checkpoint_id of files and models."""

import pytest
import torch
from safetensors.torch import load_file

from vqaudio.checkpoint import checkpoint_id, read_metadata, read_model_file, write_safetensors
from vqaudio.codec import Codec
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.errors import CheckpointError

from .conftest import tiny_codec_config


def test_round_trip_keeps_config_and_weights(tmp_path):
    codec = Codec(tiny_codec_config()).eval()
    file_id = save_codec(codec, tmp_path / "codec.safetensors")
    loaded = load_codec(tmp_path / "codec.safetensors")
    assert loaded.config == codec.config
    for (name, a), (_, b) in zip(codec.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert file_id == checkpoint_id(tmp_path / "codec.safetensors") == checkpoint_id(loaded)


def test_checkpoint_id_of_an_unsaved_model_follows_its_weights():
    torch.manual_seed(0)
    codec = Codec(tiny_codec_config())
    first = checkpoint_id(codec)
    assert len(first) == 16 and first == checkpoint_id(codec)
    with torch.no_grad():
        next(codec.parameters()).add_(1.0)
    assert checkpoint_id(codec) != first


def test_unknown_model_format_version_names_what_it_reads(tmp_path):
    path = tmp_path / "codec.safetensors"
    save_codec(Codec(tiny_codec_config()), path)
    metadata = {**read_metadata(path), "vqaudio.format": "2"}
    write_safetensors(load_file(str(path)), path, metadata)
    with pytest.raises(
        CheckpointError, match="unsupported model format version 2; this vqaudio reads 1"
    ):
        read_model_file(path, "codec")


def test_model_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "codec.safetensors"
    save_codec(Codec(tiny_codec_config()), path)
    with pytest.raises(CheckpointError, match="is a codec model, expected a prior"):
        read_model_file(path, "prior")
