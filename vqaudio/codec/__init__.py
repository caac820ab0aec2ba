"""The codec: encoder -> multi-scale vector quantizer -> decoder.

The names below load on first use (PEP 562), so what needs no model (the band-level constants
that the .vqa header checks) does not import torch through this package.
"""

from ..lazy import lazy_names

_PUBLIC = {  # name -> the submodule that defines it
    "Codec": "model",
    "CodecOutput": "model",
    "Decoder": "decoder",
    "Encoder": "encoder",
    "MultiScaleQuantizer": "quantize",
    "VectorQuantizer": "quantize",
}
__all__ = sorted(_PUBLIC)


__getattr__ = lazy_names(__name__, _PUBLIC)
