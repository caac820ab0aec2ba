""".vqa container: preamble, JSON header with the chunk index, CRC-checked chunks, bit packing.

Layout (format version 1, all integers big-endian; docs/FORMAT.md is the spec)::

    preamble   4s magic b"VQAU" | B format version | I header length
    header     JSON (UTF-8), see :class:`Header`; holds ``chunk_bytes``, the index
    header CRC I CRC32 of preamble + header
    chunk k    payload | I CRC32 of the payload      (chunk_bytes[k] bytes in all)

A chunk payload is one coding byte (0 = bit-packed, 1 = entropy-coded) and the codes of its
blocks, stream by stream: channel-major, then level coarse -> fine. Chunks decode independently,
and ``chunk_bytes`` lets a reader seek to chunk k without touching the others.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import entropy
from .config import build, to_dict
from .errors import ConfigError, FormatError

MAGIC = b"VQAU"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
PREAMBLE = struct.Struct("!4sBI")
CRC = struct.Struct("!I")
MAX_HEADER_BYTES = 1 << 24
ENTROPY_CODERS = ("none", "adaptive-range")
CHANNEL_CODINGS = ("mono", "mid_side", "separate")
PACKED, ENTROPY_CODED = 0, 1


@dataclass(frozen=True)
class Header:
    """What a reader needs before touching weights. Rates in Hz, lengths in samples."""

    codec_id: str
    sample_rate: int  # the codec's
    channels: int  # of the source; decompress writes this many
    num_samples: int  # at sample_rate
    source_sample_rate: int
    source_num_samples: int  # at source_sample_rate
    hop_length: int
    codebook_size: int
    level_strides: tuple[int, ...]  # of the levels kept by the first coded channel
    levels: tuple[int, ...]  # levels kept per coded channel (mid_side: mid, side)
    channel_coding: str  # mono | mid_side | separate
    chunk_blocks: int  # coarse frames per chunk (the last one may hold fewer)
    entropy_coder: str  # none | adaptive-range
    bitrate: float  # advertised bits/s of the whole file
    chunk_bytes: tuple[int, ...] = ()  # the index: bytes of each chunk, CRC included

    def __post_init__(self) -> None:
        ok = (
            self.sample_rate > 0
            and self.source_sample_rate > 0
            and self.channels >= 1
            and self.num_samples >= 1
            and self.source_num_samples >= 1
            and self.hop_length >= 1
            and self.codebook_size >= 2
            and self.chunk_blocks >= 1
            and len(self.levels) >= 1
            and all(1 <= n <= len(self.level_strides) for n in self.levels)
            and self.channel_coding in CHANNEL_CODINGS
            and self.entropy_coder in ENTROPY_CODERS
            and all(b >= 5 for b in self.chunk_bytes)
        )
        if not ok:
            raise ConfigError("header values out of range")

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
        return [num_blocks * block // s for n in self.levels for s in self.level_strides[:n]]

    def to_bytes(self) -> bytes:
        return json.dumps(to_dict(self), separators=(",", ":"), sort_keys=True).encode()


class BitPacker:
    """Appends unsigned integers of 1-16 bits each to a little-endian bit string."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []

    def write(self, values: np.ndarray, width: int) -> None:
        assert 1 <= width <= 16
        values = np.asarray(values, dtype=np.uint32).ravel()
        assert values.size == 0 or int(values.max()) < (1 << width)
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
    """Inverse of :func:`pack_chunk`."""
    lengths = header.stream_lengths(num_blocks)
    if not payload:
        raise FormatError("empty chunk")
    if payload[0] == PACKED:
        unpacker = BitUnpacker(payload[1:])
        streams = [unpacker.read(n, header.bits_per_code) for n in lengths]
    elif payload[0] == ENTROPY_CODED:
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
        self._spool.write(payload + CRC.pack(zlib.crc32(payload)))
        self._sizes.append(len(payload) + CRC.size)

    def close(self, **final: int) -> Header:
        """Finish the file; ``final`` sets header fields known only at the end (num_samples...)."""
        fields = {**to_dict(self.header), **final, "chunk_bytes": self._sizes}
        header = build(Header, fields, "header")
        body = header.to_bytes()
        preamble = PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(body))
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(preamble + body + CRC.pack(zlib.crc32(preamble + body)))
                self._spool.seek(0)
                shutil.copyfileobj(self._spool, f)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
            self._spool.close()
        return header

    def abort(self) -> None:
        self._spool.close()


class VqaReader:
    """Open and check a .vqa file; ``read_chunk(k)`` seeks to chunk k and checks its CRC."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        if self.path.is_dir():
            raise FormatError(f"{self.path}: is a directory, expected a .vqa file")
        if not self.path.is_file():
            raise FormatError(f"{self.path}: no such file")
        self._file = open(self.path, "rb")
        try:
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
            readable = "–".join(str(v) for v in (SUPPORTED_VERSIONS[0], SUPPORTED_VERSIONS[-1]))
            readable = str(SUPPORTED_VERSIONS[0]) if len(SUPPORTED_VERSIONS) == 1 else readable
            raise self._fail(
                f"unsupported .vqa format version {version}; this vqaudio reads {readable}"
            )
        if length > MAX_HEADER_BYTES:
            raise self._fail(f"header length {length} is implausible (corrupt file?)")
        body = self._file.read(length)
        crc = self._file.read(CRC.size)
        if len(body) < length or len(crc) < CRC.size:
            raise self._fail("truncated inside the header")
        if CRC.unpack(crc)[0] != zlib.crc32(preamble + body):
            raise self._fail("header checksum mismatch (corrupt file)")
        self._data_start = PREAMBLE.size + length + CRC.size
        try:
            header = build(Header, json.loads(body), "header")
        except (ValueError, ConfigError) as e:
            raise self._fail(f"header is invalid ({e})") from None
        if len(header.chunk_bytes) != header.num_chunks:
            raise self._fail("chunk index does not match the header")
        return header

    def _check_size(self) -> None:
        expected = self._data_start + sum(self.header.chunk_bytes)
        actual = os.fstat(self._file.fileno()).st_size
        if actual < expected:
            raise self._fail(f"truncated: {actual} bytes, the header promises {expected}")
        if actual > expected:
            raise self._fail(f"{actual - expected} unexpected bytes after the last chunk")

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
        if len(data) < self.header.chunk_bytes[k] or CRC.unpack(crc)[0] != zlib.crc32(payload):
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
