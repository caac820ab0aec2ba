"""The codec: encoder -> multi-scale vector quantizer -> decoder.

The names below load on first use (PEP 562), so what needs no model (band-level constants that
the .vqa header checks, the code-space id) does not import torch through this package.
"""

import importlib

_PUBLIC = {  # name -> the submodule that defines it
    "Codec": "model",
    "CodecOutput": "model",
    "Decoder": "decoder",
    "Encoder": "encoder",
    "MultiScaleQuantizer": "quantize",
    "VectorQuantizer": "quantize",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vqaudio.codec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value
