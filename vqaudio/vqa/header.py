"""The .vqa header: its fields, their plausibility limits and the checks run on them (its binary
form, format 4 on, is ``record``).

A reader may be pointed at any bytes: every header field is checked for type, range and
consistency with the others before anything is allocated from it, so a crafted file with valid
CRCs is refused with a :class:`FormatError` naming the field, and decoding memory stays bounded
by ``MAX_CHUNK_SECONDS`` / ``MAX_CHUNK_CODES`` whatever the header says. The container around it
(preamble, CRCs, chunks) is ``container``, a chunk's payload ``chunk``; docs/FORMAT.md is the spec.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields

from ..audio import MAX_CHANNELS
from ..codec.band_levels import MAX_BANDS
from ..errors import FormatError
from ..strict import to_dict
from .band_levels import section_bytes_bound
from .channels import CHANNEL_CODINGS, SOURCE_CHANNELS, coded_channels
from .record import CODEC_ID, ENTROPY_CODERS, encode_fields

CRC = struct.Struct("!I")  # the CRC32 after the header and after each chunk
# Plausibility limits of a header. Together they bound what a reader allocates per chunk.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000  # Hz, as `vqaudio decompress --sample-rate`
MAX_LEVELS = 64
MAX_CODEBOOK_SIZE = 1 << 16  # codes are packed in at most 16 bits
MAX_CHUNK_SECONDS = 20.0  # the writer makes 10 s chunks; decoding memory grows with this
MAX_CHUNK_CODES = 1 << 20  # code indices per chunk, all streams together
# context-range decodes symbol by symbol, each model over the whole alphabet: codes per chunk
# times codebook_size bounds a chunk's decoding time (~0.3 s); 20 s of the default codec: 2^23.8
MAX_CONTEXT_WORK = 1 << 26


@dataclass(frozen=True)
class Header:
    """What a reader needs before touching weights. Rates in Hz, lengths in samples.

    Construction checks every field (see :meth:`check`); a violation is a :class:`FormatError`
    naming the field.
    """

    codec_id: str
    sample_rate: int  # the codec's
    channels: int  # of the source; decompress writes this many
    num_samples: int  # at sample_rate
    source_sample_rate: int
    source_num_samples: int  # at source_sample_rate
    hop_length: int
    codebook_size: int
    level_strides: tuple[int, ...]  # of the levels kept by the first coded channel
    levels_per_channel: tuple[int, ...]  # level counts kept per coded channel (mid, side; ...)
    channel_coding: str  # mono | mid_side | separate
    chunk_blocks: int  # coarse frames per chunk (the last one may hold fewer)
    entropy_coder: str  # none | adaptive-range | context-range (format 4 on)
    bitrate: float  # advertised bits/s of the whole file
    chunk_bytes: tuple[int, ...] = ()  # the index: bytes of each chunk, CRC included
    # what the codes mean (codec/code_space.py); "" in files of versions 1-3, which lack it
    code_space_id: str = ""
    # format 5 on: lower edges (Hz) of the bands whose levels each chunk carries (band_levels.py),
    # and blocks per span of one value; () and 0 for a file without band levels
    band_edges: tuple[int, ...] = ()
    band_span_blocks: int = 0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise FormatError naming the first field out of range or inconsistent with another.

        Single fields first, so the consistency checks only ever compute with plausible numbers.
        """
        _check_fields(self)
        _check_consistency(self)

    @property
    def block_samples(self) -> int:
        return self.hop_length * self.level_strides[0]

    @property
    def num_blocks(self) -> int:
        return -(-self.num_samples // self.block_samples)

    @property
    def num_chunks(self) -> int:
        return -(-self.num_blocks // self.chunk_blocks)

    @property
    def duration(self) -> float:
        return self.source_num_samples / self.source_sample_rate

    @property
    def bits_per_code(self) -> int:
        return max(1, math.ceil(math.log2(self.codebook_size)))

    def chunk_range(self, k: int) -> tuple[int, int]:
        """(first block, end block) of chunk k."""
        return k * self.chunk_blocks, min((k + 1) * self.chunk_blocks, self.num_blocks)

    def stream_lengths(self, num_blocks: int) -> list[int]:
        """Codes per stream (channel-major, then level) for ``num_blocks`` coarse frames."""
        block = self.level_strides[0]
        strides = self.level_strides
        return [num_blocks * block // s for n in self.levels_per_channel for s in strides[:n]]

    def stream_parents(self) -> list[int | None]:
        """Per stream, the index of the stream of the coarser level of the same coded channel
        (the context-range model's context), or None for a channel's first level."""
        parents, start = [], 0
        for n in self.levels_per_channel:
            parents += [None] + list(range(start, start + n - 1))
            start += n
        return parents

    def packed_bytes(self, num_blocks: int) -> int:
        """Payload bytes of a bit-packed chunk of ``num_blocks`` blocks, coding byte included
        (and its band-level section at its largest, format 5 on)."""
        codes = 1 + -(-sum(self.stream_lengths(num_blocks)) * self.bits_per_code // 8)
        if not self.band_edges:
            return codes
        return codes + section_bytes_bound(self.band_level_count(num_blocks))

    def band_level_shape(self, num_blocks: int) -> tuple[int, int, int]:
        """(coded channels, bands, spans) of the band levels of a chunk of ``num_blocks``."""
        spans = -(-num_blocks // self.band_span_blocks) if self.band_span_blocks else 0
        return len(self.levels_per_channel), len(self.band_edges), spans

    def band_level_count(self, num_blocks: int) -> int:
        channels, bands, spans = self.band_level_shape(num_blocks)
        return channels * bands * spans

    def to_bytes(self, version: int = 5) -> bytes:
        """The header record of format ``version`` (4 or 5; :func:`encode_fields`)."""
        return encode_fields(to_dict(self), version)


def _require(ok: bool, name: str, value, expected: str) -> None:
    if not ok:
        shown = repr(value) if not isinstance(value, tuple) else repr(list(value))
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise FormatError(f"header field {name} is {shown}; expected {expected}")


def _in(value, low, high) -> bool:
    return low <= value <= high


def _check_fields(h: Header) -> None:
    rates = f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz"
    _require(
        isinstance(h.codec_id, str) and CODEC_ID.fullmatch(h.codec_id) is not None,
        "codec_id",
        h.codec_id,
        "16 hex digits",
    )
    _require(
        isinstance(h.code_space_id, str)
        and (h.code_space_id == "" or CODEC_ID.fullmatch(h.code_space_id) is not None),
        "code_space_id",
        h.code_space_id,
        "16 hex digits",
    )
    _require(
        _in(h.sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), "sample_rate", h.sample_rate, rates
    )
    _require(
        _in(h.source_sample_rate, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
        "source_sample_rate",
        h.source_sample_rate,
        rates,
    )
    _require(_in(h.channels, 1, MAX_CHANNELS), "channels", h.channels, f"1–{MAX_CHANNELS}")
    _require(h.num_samples >= 1, "num_samples", h.num_samples, "at least 1")
    _require(h.source_num_samples >= 1, "source_num_samples", h.source_num_samples, "at least 1")
    limit = int(MAX_CHUNK_SECONDS * MAX_SAMPLE_RATE)
    _require(_in(h.hop_length, 1, limit), "hop_length", h.hop_length, f"1–{limit}")
    _require(
        _in(h.codebook_size, 2, MAX_CODEBOOK_SIZE),
        "codebook_size",
        h.codebook_size,
        f"2–{MAX_CODEBOOK_SIZE}",
    )
    strides = h.level_strides
    _require(
        _in(len(strides), 1, MAX_LEVELS) and all(_in(s, 1, limit) for s in strides),
        "level_strides",
        strides,
        f"1–{MAX_LEVELS} positive strides",
    )
    _require(
        all(coarse % fine == 0 for coarse, fine in zip(strides, strides[1:])),
        "level_strides",
        strides,
        "coarse -> fine, each stride a multiple of the next",
    )
    _require(h.chunk_blocks >= 1, "chunk_blocks", h.chunk_blocks, "at least 1")
    _require(
        h.channel_coding in CHANNEL_CODINGS,
        "channel_coding",
        h.channel_coding,
        " or ".join(CHANNEL_CODINGS),
    )
    _require(
        h.entropy_coder in ENTROPY_CODERS,
        "entropy_coder",
        h.entropy_coder,
        " or ".join(ENTROPY_CODERS),
    )
    _require(math.isfinite(h.bitrate) and h.bitrate > 0, "bitrate", h.bitrate, "a positive number")
    edges = h.band_edges
    _require(
        len(edges) <= MAX_BANDS
        and all(isinstance(e, int) for e in edges)
        and (not edges or edges[0] == 0)
        and all(a < b for a, b in zip(edges, edges[1:]))
        and all(2 * e < h.sample_rate for e in edges),
        "band_edges",
        edges,
        f"0–{MAX_BANDS} rising edges in Hz from 0, below half the sample rate",
    )


def _check_consistency(h: Header) -> None:
    low, high = SOURCE_CHANNELS[h.channel_coding]
    _require(
        _in(h.channels, low, high),
        "channels",
        h.channels,
        f"{low}–{high} with channel_coding {h.channel_coding}",
    )
    coded = coded_channels(h.channel_coding, h.channels)
    levels = h.levels_per_channel
    _require(
        len(levels) == coded
        and all(_in(n, 1, len(h.level_strides)) for n in levels)
        and max(levels) == len(h.level_strides),
        "levels_per_channel",
        levels,
        f"{coded} level count(s) of 1–{len(h.level_strides)}, the largest "
        f"{len(h.level_strides)} (one per stride in level_strides)",
    )
    # The source length at its rate and the coded length at the codec's rate describe the same
    # audio: the resampler delivers round(n * rate / source rate) samples, give or take one.
    _require(
        abs(h.num_samples * h.source_sample_rate - h.source_num_samples * h.sample_rate)
        <= 2 * h.source_sample_rate,
        "source_num_samples",
        h.source_num_samples,
        f"about {round(h.num_samples * h.source_sample_rate / h.sample_rate)}, the length at "
        f"{h.source_sample_rate} Hz of num_samples {h.num_samples} at {h.sample_rate} Hz",
    )
    chunk_samples = h.chunk_blocks * h.block_samples
    _require(
        chunk_samples <= MAX_CHUNK_SECONDS * h.sample_rate,
        "chunk_blocks",
        h.chunk_blocks,
        f"chunks of at most {MAX_CHUNK_SECONDS:g} s ({chunk_samples} samples per chunk)",
    )
    codes = sum(h.stream_lengths(h.chunk_blocks))
    _require(
        codes <= MAX_CHUNK_CODES,
        "chunk_blocks",
        h.chunk_blocks,
        f"at most {MAX_CHUNK_CODES} codes per chunk, not {codes}",
    )
    if h.entropy_coder == "context-range":
        _require(
            codes * h.codebook_size <= MAX_CONTEXT_WORK,
            "chunk_blocks",
            h.chunk_blocks,
            f"at most {MAX_CONTEXT_WORK} codes x codebook_size per context-range chunk, not "
            f"{codes} x {h.codebook_size}",
        )
    _require(
        h.band_span_blocks == 0
        if not h.band_edges
        else _in(h.band_span_blocks, 1, h.chunk_blocks)
        and h.chunk_blocks % h.band_span_blocks == 0,
        "band_span_blocks",
        h.band_span_blocks,
        "0 without band_edges, else a divisor of chunk_blocks",
    )
    if h.chunk_bytes:  # the index (empty while a writer is still spooling chunks)
        _require(
            len(h.chunk_bytes) == h.num_chunks,
            "chunk_bytes",
            h.chunk_bytes,
            f"{h.num_chunks} entries, one per chunk of num_samples {h.num_samples}",
        )
        for k, size in enumerate(h.chunk_bytes):
            start, stop = h.chunk_range(k)
            most = h.packed_bytes(stop - start) + CRC.size  # a writer never stores more
            _require(
                _in(size, 1 + CRC.size, most),
                f"chunk_bytes[{k}]",
                size,
                f"{1 + CRC.size}–{most} bytes",
            )


LATER_KEYS = ("code_space_id", "band_edges", "band_span_blocks")  # not in versions 1-3
REQUIRED_KEYS = tuple(f.name for f in fields(Header) if f.name not in LATER_KEYS)  # JSON, 1-3
