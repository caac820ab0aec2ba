"""The codec: encoder -> multi-scale vector quantizer -> decoder."""

from .decoder import Decoder
from .encoder import Encoder
from .model import Codec, CodecOutput
from .quantize import MultiScaleQuantizer, VectorQuantizer

__all__ = ["Codec", "CodecOutput", "Decoder", "Encoder", "MultiScaleQuantizer", "VectorQuantizer"]
