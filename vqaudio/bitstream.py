""".vqa container: preamble, JSON header with the chunk index, CRC-checked chunks, bit packing.

Layout (format version 3, all integers big-endian; docs/FORMAT.md is the spec)::

    preamble   4s magic b"VQAU" | B format version | I header length
    header     JSON (UTF-8), see :class:`Header`; holds ``chunk_bytes``, the index
    header CRC I CRC32 of preamble + header
    chunk k    payload | I CRC32 of (I k) + payload    (chunk_bytes[k] bytes in all)

A chunk payload is one coding byte (0 = bit-packed, 1 = entropy-coded) and the codes of its
blocks, stream by stream: channel-major, then level coarse -> fine. Chunks decode independently,
and ``chunk_bytes`` lets a reader seek to chunk k without touching the others. Versions 1 and 2
(still read) call the header field ``levels_per_channel`` ``levels``, and version 1's chunk CRC
covers the payload alone.

A reader may be pointed at any bytes: every header field is checked for type, range and
consistency with the others before anything is allocated from it, so a crafted file with valid
CRCs is refused with a :class:`FormatError` naming the field, and decoding memory stays bounded
by ``MAX_CHUNK_SECONDS`` / ``MAX_CHUNK_CODES`` whatever the header says.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import entropy
from .atomic import atomic_write
from .audio import MAX_CHANNELS
from .channels import CHANNEL_CODINGS, SOURCE_CHANNELS, coded_channels
from .errors import ConfigError, FormatError
from .strict import build, to_dict

MAGIC = b"VQAU"
FORMAT_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
RENAMED_KEYS = {"levels": "levels_per_channel"}  # old key -> new, in versions before 3
PREAMBLE = struct.Struct("!4sBI")
CRC = struct.Struct("!I")
MAX_HEADER_BYTES = 1 << 20  # ~100k chunks in the index: 280 hours at the writer's 10 s chunks
ENTROPY_CODERS = ("none", "adaptive-range")
PACKED, ENTROPY_CODED = 0, 1
# Plausibility limits of a header. Together they bound what a reader allocates per chunk.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000  # Hz, as `vqaudio decompress --sample-rate`
MAX_LEVELS = 64
MAX_CODEBOOK_SIZE = 1 << 16  # codes are packed in at most 16 bits
MAX_CHUNK_SECONDS = 20.0  # the writer makes 10 s chunks; decoding memory grows with this
MAX_CHUNK_CODES = 1 << 20  # code indices per chunk, all streams together
CODEC_ID = re.compile(r"[0-9a-f]{16}")


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
    entropy_coder: str  # none | adaptive-range
    bitrate: float  # advertised bits/s of the whole file
    chunk_bytes: tuple[int, ...] = ()  # the index: bytes of each chunk, CRC included

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

    def packed_bytes(self, num_blocks: int) -> int:
        """Payload bytes of a bit-packed chunk of ``num_blocks`` blocks, coding byte included."""
        return 1 + -(-sum(self.stream_lengths(num_blocks)) * self.bits_per_code // 8)

    def to_bytes(self) -> bytes:
        return json.dumps(to_dict(self), separators=(",", ":"), sort_keys=True).encode()


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


REQUIRED_KEYS = tuple(f.name for f in fields(Header))


def _chunk_crc(version: int, k: int, payload: bytes) -> int:
    """Version 2 binds a chunk to its place: swapped chunks of equal size fail their CRCs."""
    return zlib.crc32(payload) if version == 1 else zlib.crc32(payload, zlib.crc32(CRC.pack(k)))


class BitPacker:
    """Appends unsigned integers of 1-16 bits each to a little-endian bit string."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []

    def write(self, values: np.ndarray, width: int) -> None:
        if not 1 <= width <= 16:
            raise ValueError(f"bit width {width}; expected 1–16")
        values = np.asarray(values).ravel()
        if values.size and (int(values.min()) < 0 or int(values.max()) >= 1 << width):
            raise ValueError(
                f"values {int(values.min())}–{int(values.max())} do not fit in {width} bits"
            )
        values = values.astype(np.uint32)
        bits = (values[:, None] >> np.arange(width, dtype=np.uint32)) & 1
        self._parts.append(bits.astype(np.uint8).ravel())

    def getvalue(self) -> bytes:
        bits = np.concatenate(self._parts) if self._parts else np.zeros(0, np.uint8)
        return np.packbits(bits, bitorder="little").tobytes()


class BitUnpacker:
    """Reads back what :class:`BitPacker` wrote, in the same order and widths."""

    def __init__(self, data: bytes) -> None:
        self._bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        self._pos = 0

    def read(self, count: int, width: int) -> np.ndarray:
        stop = self._pos + count * width
        if stop > self._bits.size:
            raise FormatError("packed codes end early")
        bits = self._bits[self._pos : stop].reshape(count, width).astype(np.int64)
        self._pos = stop
        return (bits << np.arange(width, dtype=np.int64)).sum(axis=1)

    def remaining(self) -> np.ndarray:
        """The bits not read yet (a writer pads the last byte with zeros)."""
        return self._bits[self._pos :]


def pack_chunk(streams: list[np.ndarray], header: Header, entropy_coded: bool) -> bytes:
    """Codes of one chunk (one int array per stream) -> payload; the smaller coding wins."""
    packer = BitPacker()
    for codes in streams:
        packer.write(codes, header.bits_per_code)
    packed = bytes([PACKED]) + packer.getvalue()
    if not entropy_coded:
        return packed
    coded = bytes([ENTROPY_CODED]) + entropy.encode(streams, [header.codebook_size] * len(streams))
    return coded if len(coded) < len(packed) else packed


def unpack_chunk(payload: bytes, header: Header, num_blocks: int) -> list[np.ndarray]:
    """Inverse of :func:`pack_chunk`. Refuses anything but what a writer makes: a packed payload
    of another length or with non-zero padding, an entropy-coded one that decodes past its end or
    carries extra bytes (see :func:`entropy.decode`), codes out of range."""
    lengths = header.stream_lengths(num_blocks)
    if not payload:
        raise FormatError("empty chunk")
    if payload[0] == PACKED:
        expected = header.packed_bytes(num_blocks)
        if len(payload) != expected:
            raise FormatError(f"packed chunk holds {len(payload)} bytes, expected {expected}")
        unpacker = BitUnpacker(payload[1:])
        streams = [unpacker.read(n, header.bits_per_code) for n in lengths]
        if unpacker.remaining().any():
            raise FormatError("packed chunk has non-zero padding bits")
    elif payload[0] == ENTROPY_CODED:
        if header.entropy_coder != "adaptive-range":
            raise FormatError(
                f"entropy-coded chunk in a file of entropy_coder {header.entropy_coder!r}"
            )
        streams = entropy.decode(payload[1:], lengths, [header.codebook_size] * len(lengths))
    else:
        raise FormatError(f"unknown chunk coding {payload[0]}")
    if any(s.size and (s.min() < 0 or s.max() >= header.codebook_size) for s in streams):
        raise FormatError("code index out of range")
    return streams


class VqaWriter:
    """Write chunks as they come; ``close(num_samples)`` writes header + index + chunks atomically.

    Chunks are spooled to an anonymous temporary file (a few kB per minute of audio), because the
    header, written first, carries the final length and the chunk index.
    """

    def __init__(self, path: str | Path, header: Header) -> None:
        self.path, self.header = Path(path), header
        self._spool: BinaryIO = tempfile.TemporaryFile()
        self._sizes: list[int] = []

    def write_chunk(self, payload: bytes) -> None:
        crc = _chunk_crc(FORMAT_VERSION, len(self._sizes), payload)
        self._spool.write(payload + CRC.pack(crc))
        self._sizes.append(len(payload) + CRC.size)

    def close(self, **final: int) -> Header:
        """Finish the file; ``final`` sets header fields known only at the end (num_samples...)."""
        try:
            fields = {**to_dict(self.header), **final, "chunk_bytes": self._sizes}
            header = build(Header, fields, "header")
            body = header.to_bytes()
            preamble = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body))
            with atomic_write(self.path) as f:
                f.write(preamble + body + CRC.pack(zlib.crc32(preamble + body)))
                self._spool.seek(0)
                shutil.copyfileobj(self._spool, f)
        finally:
            self._spool.close()
        return header

    def abort(self) -> None:
        self._spool.close()


class VqaReader:
    """Open and check a .vqa file; ``read_chunk(k)`` seeks to chunk k and checks its CRC.

    Any bytes may be handed to it: every problem is a :class:`FormatError` naming the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if self.path.is_dir():
            raise FormatError(f"{self.path}: is a directory, expected a .vqa file")
        if not self.path.is_file():
            raise FormatError(f"{self.path}: no such file")
        try:
            self._file = open(self.path, "rb")
        except OSError as e:
            raise FormatError(f"{self.path}: cannot open ({e.strerror})") from None
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self.header = self._read_header()
            self._check_size()
        except BaseException:
            self._file.close()
            raise
        self._offsets = np.concatenate([[0], np.cumsum(self.header.chunk_bytes)]) + self._data_start

    def _fail(self, problem: str) -> FormatError:
        return FormatError(f"{self.name}: {problem}")

    def _read_header(self) -> Header:
        preamble = self._file.read(PREAMBLE.size)
        if len(preamble) < PREAMBLE.size:
            raise self._fail("too short to be a .vqa file (truncated?)")
        magic, version, length = PREAMBLE.unpack(preamble)
        if magic != MAGIC:
            raise self._fail(f"not a .vqa file (magic {magic!r}, expected {MAGIC!r})")
        if version not in SUPPORTED_VERSIONS:
            readable = f"{SUPPORTED_VERSIONS[0]}–{SUPPORTED_VERSIONS[-1]}"
            readable = str(SUPPORTED_VERSIONS[0]) if len(SUPPORTED_VERSIONS) == 1 else readable
            raise self._fail(
                f"unsupported .vqa format version {version}; this vqaudio reads {readable}"
            )
        self.version = version
        if length > MAX_HEADER_BYTES:
            raise self._fail(f"header length {length} is implausible (corrupt file?)")
        if PREAMBLE.size + length + CRC.size > self._size:
            raise self._fail("truncated inside the header")
        body = self._file.read(length)
        crc = self._file.read(CRC.size)
        if len(body) < length or len(crc) < CRC.size:
            raise self._fail("truncated inside the header")
        if CRC.unpack(crc)[0] != zlib.crc32(preamble + body):
            raise self._fail("header checksum mismatch (corrupt file)")
        self._data_start = PREAMBLE.size + length + CRC.size
        return self._parse_header(body)

    def _parse_header(self, body: bytes) -> Header:
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            raise self._fail(f"header is not JSON ({e})") from None
        if not isinstance(raw, dict):
            raise self._fail(f"header is a JSON {type(raw).__name__}, expected an object")
        if self.version < 3:
            raw = self._rename_old_keys(raw)
        missing = [key for key in REQUIRED_KEYS if key not in raw]
        if missing:
            raise self._fail(f"header is missing field(s) {', '.join(missing)}")
        try:
            return build(Header, raw, "header")
        except (ConfigError, FormatError) as e:
            raise self._fail(f"invalid header: {e}") from None

    def _rename_old_keys(self, raw: dict) -> dict:
        """A version 1-2 header with today's keys; it must not hold today's keys itself."""
        new = [key for key in RENAMED_KEYS.values() if key in raw]
        if new:
            raise self._fail(f"version {self.version} header has field(s) {', '.join(new)}")
        return {RENAMED_KEYS.get(key, key): value for key, value in raw.items()}

    def _check_size(self) -> None:
        expected = self._data_start + sum(self.header.chunk_bytes)
        if self._size < expected:
            raise self._fail(f"truncated: {self._size} bytes, the header promises {expected}")
        if self._size > expected:
            raise self._fail(f"{self._size - expected} unexpected bytes after the last chunk")

    @property
    def num_chunks(self) -> int:
        return self.header.num_chunks

    @property
    def file_bytes(self) -> int:
        return int(self._offsets[-1])

    def read_chunk(self, k: int) -> list[np.ndarray]:
        """Code streams of chunk k (see :meth:`Header.stream_lengths`)."""
        self._file.seek(int(self._offsets[k]))
        data = self._file.read(self.header.chunk_bytes[k])
        payload, crc = data[: -CRC.size], data[-CRC.size :]
        if len(data) < self.header.chunk_bytes[k] or CRC.unpack(crc)[0] != _chunk_crc(
            self.version, k, payload
        ):
            raise self._fail(f"checksum mismatch in chunk {k} (corrupt file)")
        start, stop = self.header.chunk_range(k)
        try:
            return unpack_chunk(payload, self.header, stop - start)
        except FormatError as e:
            raise self._fail(f"chunk {k}: {e}") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VqaReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
