"""The code space: what a codec's codes mean, named by a hash of the parts that define it.

The encoder and the quantizer decide which code any input gets; the decoder only renders codes.
A decoder retrained on frozen codes (``train.freeze: [encoder, quantizer]``) is an improvement
to the same code space, so .vqa files and priors record the code-space id beside the whole
model's ``checkpoint_id``, and any codec of that code space decodes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch

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
