"""The code space: what a codec's codes mean, named by a hash of the parts that define it.

The encoder and the quantizer decide which code any input gets; the decoder only renders codes.
A decoder retrained on frozen codes (``train.freeze: [encoder, quantizer]``) is an improvement
to the same code space, so .vqa files and priors record the code-space id beside the whole
model's ``checkpoint_id``, and any codec of that code space decodes them. :func:`check_compatible`
is the one check that a codec fits what was made with another (a .vqa file, a prior).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch
from torch import nn

from ..checkpoint import checkpoint_id
from ..config import CodecConfig

CODE_SPACE_PARTS = ("encoder.", "quantizer.")
# Training state of the quantizer: no code depends on it, and inference files leave some out.
TRAINING_STATISTICS = (".ema_sum", ".ema_count", ".usage_ema")
# The config fields that define the codes: all but the decoder's own (decoder, decoder_dim,
# spectral_layers, griffin_lim_iters, istft_*) and training's (loss weights, EMA, k-means,
# restarts, dropout, bypass). A new field that changes the codes must be added here; it is then
# hashed only when it differs from its default, so the ids of earlier files stay as they were.
CODE_SPACE_FIELDS = (
    "sample_rate",
    "channels",
    "encoder_dim",
    "strides",
    "latent_dim",
    "latent_norm",
    "dilations",
    "activation",
    "encoder",
    "frontend",
    "n_fft",
    "spectral_dim",
    "encoder_layers",
    "level_strides",
    "codebook_size",
    "codebook_dim",
    "l2_normalize",
    "normalize_values",
)
VERSION = b"vqaudio code space 1\n"  # bump (a new name for every code space) if the hash changes


def code_space_id(state: Mapping[str, torch.Tensor], config: CodecConfig) -> str:
    """16 hex digits of the sha256 of the encoder's and quantizer's tensors (name, dtype, shape
    and bytes of each, sorted by name; float16 counts as the float32 it loads as) and of the
    ``CODE_SPACE_FIELDS`` of ``config``. The same for a codec file and for that codec with a
    retrained decoder."""
    digest = hashlib.sha256(VERSION)
    fields = {name: getattr(config, name) for name in CODE_SPACE_FIELDS}
    digest.update(json.dumps(fields, sort_keys=True).encode() + b"\n")
    for name in sorted(state):
        if not name.startswith(CODE_SPACE_PARTS) or name.endswith(TRAINING_STATISTICS):
            continue
        tensor = state[name].detach().cpu()
        tensor = tensor.float() if tensor.dtype == torch.float16 else tensor
        tensor = tensor.contiguous().reshape(-1)
        digest.update(f"{name} {tensor.dtype} {list(state[name].shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def accepts(codec: nn.Module, codec_id: str | None, code_space: str | None) -> bool:
    """Whether ``codec`` decodes what was made with codec ``codec_id`` of code space
    ``code_space`` (either may be unknown: None). The code space decides when it is recorded;
    otherwise the codec must be that codec file or one known to share its code space."""
    if code_space:
        return codec.code_space_id == code_space
    if not codec_id:
        return True
    return codec_id == checkpoint_id(codec) or codec_id in getattr(codec, "code_space_codecs", ())


def check_compatible(
    codec: nn.Module,
    made: str,
    codec_id: str | None,
    code_space: str | None,
    fields: Mapping[str, object],
    error: type[Exception],
    fix: str,
) -> None:
    """Refuse ``codec`` for something ``made`` with codec ``codec_id`` of code space
    ``code_space`` (:func:`accepts`), or whose ``fields`` (config names: sample_rate,
    codebook_size, level_strides, ...) differ from the codec's; ``level_strides`` need only be a
    prefix of the codec's. ``made`` starts the message ("song.vqa was made with"), ``fix`` ends it;
    the ``error`` raised names both ids.

    Example: ``check_compatible(codec, "prior.safetensors was trained on", prior.codec_id,
    prior.code_space_id, {"codebook_size": 1024}, CheckpointError, "pass --codec ...")``.
    """
    have = checkpoint_id(codec)
    where = getattr(codec, "checkpoint_path", None) or "the given codec"
    if not accepts(codec, codec_id, code_space):
        space = f" of code space {code_space}" if code_space else ""
        raise error(
            f"{made} codec {codec_id}{space}, but {where} is codec {have} of code space "
            f"{codec.code_space_id}; {fix}"
        )
    config = codec.config
    ours = {k: getattr(config, k) for k in fields}
    if "level_strides" in fields:
        ours["level_strides"] = tuple(config.level_strides[: len(fields["level_strides"])])
    theirs = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    if ours != theirs:
        shown = ", ".join(f"{k} {v}" for k, v in theirs.items())
        mine = ", ".join(f"{k} {v}" for k, v in ours.items())
        raise error(f"{made} a codec of {shown}, which does not fit codec {have} ({mine}); {fix}")
