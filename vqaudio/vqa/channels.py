"""Channel coding: how a file's source channels become the codec's mono coded channels and back.

The codec is mono. A mono file is coded as is (``mono``); stereo as mid = (L + R) / 2 and
side = (L - R) / 2 (``mid_side``), side getting fewer levels (it carries less energy and matters
less to the ear; ``rate.plan_levels`` splits the bits); 3-8 channels are coded one by one with
the same levels (``separate``). This module owns the choice, the transforms, and how many coded
channels each coding has; the .vqa header records the coding by name.
"""

from __future__ import annotations

import numpy as np

from ..audio import MAX_CHANNELS

CHANNEL_CODINGS = ("mono", "mid_side", "separate")
# The source channel counts (low, high) a file of each coding may have.
SOURCE_CHANNELS = {"mono": (1, 1), "mid_side": (2, 2), "separate": (3, MAX_CHANNELS)}


def choose_coding(channels: int) -> str:
    """The coding of a file with ``channels`` source channels (1-8)."""
    return "mono" if channels == 1 else "mid_side" if channels == 2 else "separate"


def coded_channels(coding: str, channels: int) -> int:
    """How many mono streams the codec codes for ``channels`` source channels."""
    return {"mono": 1, "mid_side": 2}.get(coding, channels)


def to_coded(wav: np.ndarray, coding: str) -> np.ndarray:
    """Source channels (C, T) -> coded channels (mid, side for ``mid_side``)."""
    if coding == "mid_side":
        return np.stack([(wav[0] + wav[1]) / 2, (wav[0] - wav[1]) / 2])
    return wav


def from_coded(wav: np.ndarray, coding: str) -> np.ndarray:
    """Inverse of :func:`to_coded`."""
    if coding == "mid_side":
        return np.stack([wav[0] + wav[1], wav[0] - wav[1]])
    return wav
