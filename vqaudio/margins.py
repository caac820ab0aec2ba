"""Transitional: prior/sampling.py still imports the context margins from here; they are
``codec/margins.py``. Delete this file once it imports them from there."""

from .codec.margins import decoder_margin_blocks, with_margin

__all__ = ["decoder_margin_blocks", "with_margin"]
