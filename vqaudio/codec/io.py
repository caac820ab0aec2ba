"""Codec files: ``save_codec`` / ``load_codec`` on the kind-agnostic ``checkpoint``, with the
code space (``code_space``) recorded, checked and completed for older files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import (
    DEFAULT_CODEC,
    ModelKind,
    checkpoint_id,
    load_model,
    read_model_file,
    save_model,
)
from ..config import CodecConfig
from ..errors import CheckpointError
from .code_space import CODE_SPACE_PARTS, TRAINING_STATISTICS, code_space_id
from .model import Codec


def complete_codec_file(state: dict[str, torch.Tensor], raw: dict[str, Any]) -> dict[str, Any]:
    """What this version's Codec expects of any codec file, so every loader sees the same:
    vqaudio 0.1 files quantize to unit-norm code values (``normalize_values``), and inference
    files (``save_codec(half=True)``) leave out the EMA statistics, which restart from the
    codebook (sums = the codebook, counts = 1). Fills ``state`` in place; returns the config."""
    if "normalize_values" not in raw:
        raw = {**raw, "normalize_values": raw.get("l2_normalize", True)}
    strides = raw.get("level_strides", CodecConfig.level_strides)
    if raw.get("decoder") == "spectral" and isinstance(strides, (list, tuple)):
        # spectral codecs from before the per-level gain decode as they did: no gain
        state.setdefault("decoder.level_gain", torch.zeros(len(strides)))
    ema_decay = raw.get("ema_decay", 0)  # type-checked later, when the config is built
    if isinstance(ema_decay, (int, float)) and ema_decay > 0:
        for name in [k for k in state if k.endswith(".codebook")]:
            owner = name.removesuffix(".codebook")
            state.setdefault(f"{owner}.ema_sum", state[name].clone())
            state.setdefault(f"{owner}.ema_count", torch.ones(len(state[name])))
    return raw


def read_codec_file(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, str]]:
    """(state dict, config dict, metadata) of a codec file, completed as every loader sees it."""
    return read_model_file(path, "codec", complete_codec_file)


EMA_STATISTICS = (".ema_sum", ".ema_count")  # EMA codebook training state, not used to code


def save_codec(codec: nn.Module, path: str | Path, half: bool = False) -> str:
    """Write a codec file with its code-space id (and the codec files known to share its code
    space: ``codec.code_space_codecs``); returns the file's checkpoint id.

    ``half`` writes a compact inference file: the decoder in float16, no EMA codebook
    statistics. The encoder and quantizer stay float32, so the codes are exactly those of the
    float32 model; training can start from the file (the statistics restart from the codebook)."""
    state = {
        k.removeprefix("_orig_mod.").removeprefix("module."): v
        for k, v in codec.state_dict().items()
    }
    space = code_space_id(state, codec.config)
    extra = {"vqaudio.code_space_id": space}
    known = getattr(codec, "lineage", {}).get(space, ())
    if known:
        extra["vqaudio.code_space_codecs"] = ",".join(known)
    if not half:
        return save_model(codec, path, "codec", codec.config, extra=extra)
    return save_model(
        codec, path, "codec", codec.config, extra=extra, half=("decoder.",), drop=EMA_STATISTICS
    )


ID = re.compile(r"[0-9a-f]{16}")


def codec_lineage(
    path: str | Path, state: dict[str, torch.Tensor], config: CodecConfig, metadata: dict[str, str]
) -> dict[str, tuple[str, ...]]:
    """{code-space id: checkpoint ids of the codec files known to give its codes} of a codec
    file: the ids it records and its own. Refuses a file whose recorded code-space id is not
    that of its weights."""
    space = code_space_id(state, config)
    recorded = metadata.get("vqaudio.code_space_id")
    if recorded is not None and recorded != space:
        raise CheckpointError(
            f"{path}: its metadata says code space {recorded}, but its encoder and quantizer "
            f"give {space} (edited or corrupt file); save the codec again with save_codec"
        )
    known = metadata.get("vqaudio.code_space_codecs", "")
    ids = tuple(known.split(",")) if known else ()
    if not all(ID.fullmatch(i) for i in ids):
        raise CheckpointError(
            f"{path}: vqaudio.code_space_codecs is {known[:60]!r}; expected checkpoint ids "
            "(16 hex digits) separated by commas"
        )
    return {space: tuple(dict.fromkeys((*ids, checkpoint_id(path))))}


def file_code_space_id(path: str | Path, config: CodecConfig) -> str:
    """The code-space id of a codec file, reading only its encoder and quantizer tensors."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        state = {
            k: f.get_tensor(k)
            for k in f.keys()
            if k.startswith(CODE_SPACE_PARTS) and not k.endswith(TRAINING_STATISTICS)
        }
    return code_space_id(state, config)


def load_codec(path: str | Path | None = None, device: str | torch.device = "cpu"):
    """Load a codec file (None: the default model shipped in the package), eval mode.

    Besides ``checkpoint_id`` and ``checkpoint_path``, the codec knows the codec files that share
    its code space (``lineage``, see ``codec_lineage``)."""
    codec, metadata = load_model(
        path, "codec", CodecConfig, Codec, DEFAULT_CODEC, device, complete_codec_file
    )
    codec.lineage = codec_lineage(codec.checkpoint_path, codec.state_dict(), codec.config, metadata)
    return codec


# how checkpoint.inspect_model builds a codec file
CODEC_FILE = ModelKind(CodecConfig, Codec, complete_codec_file)
