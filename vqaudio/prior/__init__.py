"""Priors over flattened codes: build, save and load (sampling: ``vqaudio.generation``).

``build_prior(config)`` gives a :class:`TransformerPrior` (flat), :class:`FramePrior` (temporal
+ depth) or :class:`WaveNetPrior` (by ``config.kind``); all take token ids of
``Codes.to_tokens`` and share the conventions of :mod:`vqaudio.prior.base` (learned start
token, next-slot embedding, per-level logit masks).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import DEFAULT_PRIOR, load_model, save_model
from ..config import PriorConfig
from .base import Prior
from .frames import FramePrior
from .transformer import TransformerPrior
from .wavenet import WaveNetPrior

__all__ = [
    "FramePrior",
    "Prior",
    "TransformerPrior",
    "WaveNetPrior",
    "build_prior",
    "load_prior",
    "save_prior",
]


def build_prior(config: PriorConfig) -> Prior:
    """A fresh (randomly initialised) prior of ``config.kind``."""
    kinds = {"transformer": TransformerPrior, "frames": FramePrior, "wavenet": WaveNetPrior}
    return kinds[config.kind](config)


def save_prior(
    model: Prior,
    path: str | Path,
    codec_id: str,
    half: bool = False,
    codec_path: str | Path | None = None,
    code_space_id: str | None = None,
) -> str:
    """Write the prior with its config and the id of the codec whose codes it models (and, with
    ``codec_path``, where that codec file is, as an absolute path; with ``code_space_id``, that
    codec's code space, which any codec of it decodes); returns the file's id.
    ``half`` stores the weights in float16 (upcast to float32 on load)."""
    extra = {"vqaudio.codec_id": codec_id}
    if code_space_id is not None:
        extra["vqaudio.code_space_id"] = code_space_id
    if codec_path is not None:
        extra["vqaudio.codec_path"] = str(Path(codec_path).expanduser().resolve())
    return save_model(model, path, "prior", model.config, extra=extra, half=half)


def load_prior(path: str | Path | None = None, device: str | torch.device = "cpu") -> Prior:
    """Load a prior file (None: the default shipped in the package), in eval mode.

    The prior gets ``checkpoint_id``, ``checkpoint_path``, ``codec_id`` (its codec's id),
    ``code_space_id`` (its codec's code space; None in files that predate it) and
    ``codec_path`` (where that codec was when the prior was trained; None if not recorded).
    """
    prior, metadata = load_model(path, "prior", PriorConfig, build_prior, DEFAULT_PRIOR, device)
    prior.codec_id = metadata.get("vqaudio.codec_id")
    prior.code_space_id = metadata.get("vqaudio.code_space_id")
    recorded = metadata.get("vqaudio.codec_path")
    prior.codec_path = Path(recorded) if recorded else None
    return prior
