"""Rate planning: which levels of which coded channels a file keeps for a bitrate.

The bitrate is that of the whole file, all channels together, container included. Without
entropy coding, :func:`plan_levels` picks the operating point that fits with the container
overhead charged. With entropy coding, compress computes the codes of every level once (codes are
small: ~5 MB per hour of stereo), and the file keeps the first of :func:`candidate_plans` whose
:func:`estimate_bytes` fits. A plan is (channel coding, levels per coded channel).
"""

from __future__ import annotations

import math

import numpy as np

from ..codec.band_levels import MAX_BANDS
from ..config import CodecConfig
from ..errors import ConfigError
from . import entropy
from .channels import choose_coding
from .header import CRC
from .record import BITRATE, ENUM_FIELDS, varint

DEFAULT_BITRATE = 6000.0
CHUNK_SECONDS = 10.0
SHORT_SECONDS = 5.0  # shorter files may exceed the bitrate (the header is ~70-100 bytes)
Plan = tuple[str, list[int]]

# Widest varints of a plausible header (``_check_fields``): the integers after the ids.
_INTEGER_BYTES = 3 + 1 + 6 + 3 + 6 + 4 + 3 + 4  # rates 3, lengths 6 (~5 years at 768 kHz), ...
PREAMBLE_AND_CRC = 9 + CRC.size


def header_bytes_bound(num_levels: int, channels: int, chunk_bytes: list[int] | int) -> int:
    """Upper bound of a format 4 file's preamble + header + header CRC: ``num_levels`` strides,
    ``channels`` level counts and the index of ``chunk_bytes`` (chunk sizes, or just how many
    chunks, each then counted as 3 bytes: chunks under 2 MB)."""
    sizes = [1 << 20] * chunk_bytes if isinstance(chunk_bytes, int) else chunk_bytes
    fixed = 16 + _INTEGER_BYTES + len(ENUM_FIELDS) + BITRATE.size
    lists = (1 + 4 * num_levels) + (1 + channels) + 3 + sum(len(varint(n)) for n in sizes)
    bands = 1 + 1 + 2 * MAX_BANDS  # format 5: span blocks, the band edges
    return PREAMBLE_AND_CRC + fixed + lists + bands


def plan_levels(
    config: CodecConfig,
    channels: int,
    bitrate: float,
    duration: float | None = None,
    side_bytes: int = 0,
) -> Plan:
    """(channel coding, levels per coded channel) for a whole-file ``bitrate`` in bits/s.

    With ``duration`` (seconds) the container overhead and ``side_bytes`` (band levels) are
    charged too, so the file's real bitrate stays at or under ``bitrate``; files under
    ``SHORT_SECONDS`` still get the lowest operating point when even that does not fit.
    """
    coding = choose_coding(channels)
    rates = config.bitrates
    lowest = rates[0] * channels
    if bitrate < lowest * (1 - 1e-9):
        raise ConfigError(
            f"bitrate {bitrate / 1000:g} kbps is below this codec's lowest operating point for "
            f"{channels} channel(s), {lowest / 1000:g} kbps; choose a higher --bitrate"
        )
    overhead = _overhead_rate(config, channels, duration)
    if duration:
        overhead += 8 * side_bytes / duration
    budget = bitrate - overhead
    if budget < lowest * (1 - 1e-9) and (duration or 0) >= SHORT_SECONDS:
        raise ConfigError(
            f"bitrate {bitrate / 1000:g} kbps leaves no room for this codec's lowest operating "
            f"point for {channels} channel(s), {lowest / 1000:g} kbps, plus the file's container "
            f"overhead, {overhead:.0f} bps; choose a higher --bitrate"
        )

    def most(limit: float) -> int:
        return max([n for n, r in enumerate(rates, 1) if r <= limit * (1 + 1e-9)], default=1)

    if coding == "mono":
        return coding, [most(budget)]
    if coding == "mid_side":
        side = most(budget / 4)
        mid = max(most(budget - rates[side - 1]), side)
        while side > 1 and rates[mid - 1] + rates[side - 1] > budget:
            side -= 1
        return coding, [mid, side]
    return coding, [most(budget / channels)] * channels


def chunk_blocks(config: CodecConfig) -> int:
    """Blocks (coarse frames) per chunk of the files compress writes: about ``CHUNK_SECONDS``."""
    return max(1, round(CHUNK_SECONDS * config.sample_rate / config.block_samples))


def _overhead_rate(config: CodecConfig, channels: int, duration: float | None) -> float:
    """Bits/s spent on the header, index, chunk CRCs and block padding (an upper bound)."""
    if not duration:
        return 0.0
    chunks = math.ceil(duration * config.sample_rate / config.block_samples / chunk_blocks(config))
    header_bytes = header_bytes_bound(config.num_levels, channels, chunks)
    chunk_bytes = chunks * (1 + 4 + 2 * channels * config.num_levels)  # coding byte, CRC, bit tails
    padding = config.block_samples / config.sample_rate  # at most one block of padding
    return (
        8 * (header_bytes + chunk_bytes) / duration
        + config.bitrates[-1] * channels * padding / duration
    )


def candidate_plans(config: CodecConfig, channels: int, fallback: Plan) -> list[Plan]:
    """Plans of ``fallback``'s coding from the most to the fewest codes, split across channels as
    :func:`plan_levels` does; ``fallback`` comes last if no rate gives it."""
    top, lowest = config.bitrates[-1] * channels, config.bitrates[0] * channels
    rates = {r * m for r in config.bitrates for m in range(1, channels + 1)} | {top}
    plans = []
    for rate in sorted((r for r in rates if r >= lowest), reverse=True):
        plan = plan_levels(config, channels, rate)
        if plan[0] == fallback[0] and plan not in plans:
            plans.append(plan)
    if fallback not in plans:
        plans.append(fallback)
    return plans


def stream_costs(
    streams: list[np.ndarray], codebook_size: int, parents: list[int | None]
) -> list[int]:
    """Context-range coded bytes of each stream on its own, given its parent stream
    (``Header.stream_parents``): about an upper bound of its share in a chunk."""
    return [
        len(entropy.encode_context([s], [codebook_size], [None if p is None else streams[p]]))
        for s, p in zip(streams, parents, strict=True)
    ]


def select_streams(streams: list, stored: list[int], wanted: list[int]) -> list:
    """The streams (or their costs) of the first ``wanted[c]`` levels of each coded channel c, out
    of ``streams`` holding ``stored[c]`` levels of each, channel-major."""
    out, start = [], 0
    for have, want in zip(stored, wanted):
        out += streams[start : start + want]
        start += have
    return out


def estimate_bytes(plan: Plan, stored: list[int], costs: list[list[int]], channels: int) -> float:
    """Conservative size of a file with this plan: header + index + chunks (flag, codes, CRC).

    ``costs[k]`` holds the coded bytes of chunk k's streams, ``stored[c]`` levels per channel.
    """
    chunks = [1 + 4 + sum(select_streams(c, stored, plan[1])) for c in costs]
    return header_bytes_bound(max(plan[1]), channels, chunks) + sum(chunks)
