"""vqaudio: a neural audio codec with hierarchical multi-scale VQ codes, and priors over them.

The public names load on first use (PEP 562), so ``import vqaudio`` and what needs no model
(the .vqa header and container, errors, configs) do not import torch: ``vqaudio --help`` and
``vqaudio info song.vqa`` answer at once.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_PUBLIC = {  # name -> the submodule that defines it
    "AudioError": "errors",
    "CheckpointError": "errors",
    "Codec": "codec",
    "CodecConfig": "config",
    "Codes": "codes",
    "ConfigError": "errors",
    "FormatError": "errors",
    "Prior": "prior",
    "Sampling": "prior.sampling",
    "VqaudioError": "errors",
    "checkpoint_id": "checkpoint",
    "compress": "compress",
    "decompress": "compress",
    "generate": "generation",
    "load_codec": "checkpoint",
    "load_prior": "prior",
    "save_codec": "checkpoint",
}
__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vqaudio' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


class _Package(types.ModuleType):
    """Importing the submodule ``vqaudio.compress`` binds it as an attribute of the package; the
    public ``vqaudio.compress`` is the function, so that binding is skipped."""

    def __setattr__(self, name: str, value) -> None:
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
