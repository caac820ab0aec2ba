""".vqa container: preamble, JSON header with the chunk index, CRC-checked chunks, bit packing.

Layout (format version 4, all integers big-endian; docs/FORMAT.md is the spec)::

    preamble   4s magic b"VQAU" | B format version | I header length
    header     binary record of :class:`Header` (``header.encode_fields``; JSON in versions 1-3),
               holds ``chunk_bytes``, the index
    header CRC I CRC32 of preamble + header
    chunk k    payload | I CRC32 of (I k) + payload    (chunk_bytes[k] bytes in all)

A chunk payload is one coding byte (0 = bit-packed, 1 = entropy-coded) and the codes of its
blocks, stream by stream: channel-major, then level coarse -> fine. Chunks decode independently,
and ``chunk_bytes`` lets a reader seek to chunk k without touching the others. Versions 1-3
(still read) have a JSON header without ``code_space_id``; versions 1 and 2 call the header field
``levels_per_channel`` ``levels``, and version 1's chunk CRC covers the payload alone.

A reader may be pointed at any bytes: the header's fields are checked (``header``) before
anything is allocated from them, the file's size against the index, each chunk against its CRC
and its payload against what a writer makes, so every problem is a :class:`FormatError`.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import band_levels, entropy
from .atomic import atomic_write
from .errors import ConfigError, FormatError
from .header import CRC, LATER_KEYS, REQUIRED_KEYS, Header, _Cursor, decode_fields, varint
from .strict import build, to_dict

MAGIC = b"VQAU"
FORMAT_VERSION = 5
SUPPORTED_VERSIONS = (1, 2, 3, 4, 5)
RENAMED_KEYS = {"levels": "levels_per_channel"}  # old key -> new, in versions before 3
PREAMBLE = struct.Struct("!4sBI")
MAX_HEADER_BYTES = 1 << 20  # ~100k chunks in the index: 280 hours at the writer's 10 s chunks
PACKED, ENTROPY_CODED = 0, 1


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


def band_level_section(levels: np.ndarray | None, header: Header, num_blocks: int) -> bytes:
    """The band-level section that starts a chunk's payload (format 5): a varint byte count, then
    the values (``band_levels.encode_values``); nothing in a file without band levels."""
    if not header.band_edges:
        if levels is not None:
            raise ValueError("band levels given for a file without band_edges")
        return b""
    shape = header.band_level_shape(num_blocks)
    if levels is None or tuple(levels.shape) != shape:
        got = None if levels is None else tuple(levels.shape)
        raise ValueError(f"band levels of shape {got}; the header needs {shape}")
    body = band_levels.encode_values(levels)
    return varint(len(body)) + body


def pack_chunk(
    streams: list[np.ndarray],
    header: Header,
    entropy_coded: bool,
    levels: np.ndarray | None = None,
) -> bytes:
    """Codes of one chunk (one int array per stream) and, in a file with band levels, its levels
    (coded channels, bands, spans) -> payload; the smaller coding of the codes wins. Entropy
    coding uses the model of ``header.entropy_coder``."""
    num_blocks = len(streams[0])  # the first stream holds one code per block
    section = band_level_section(levels, header, num_blocks)
    return section + _pack_codes(streams, header, entropy_coded)


def _pack_codes(streams: list[np.ndarray], header: Header, entropy_coded: bool) -> bytes:
    packer = BitPacker()
    for codes in streams:
        packer.write(codes, header.bits_per_code)
    packed = bytes([PACKED]) + packer.getvalue()
    if not entropy_coded or header.entropy_coder == "none":
        return packed
    sizes = [header.codebook_size] * len(streams)
    if header.entropy_coder == "context-range":
        parents = [None if p is None else streams[p] for p in header.stream_parents()]
        coded = bytes([ENTROPY_CODED]) + entropy.encode_context(streams, sizes, parents)
    else:
        coded = bytes([ENTROPY_CODED]) + entropy.encode(streams, sizes)
    return coded if len(coded) < len(packed) else packed


def unpack_chunk(payload: bytes, header: Header, num_blocks: int) -> list[np.ndarray]:
    """Inverse of :func:`pack_chunk`: the code streams (:func:`unpack_chunk_levels` gives the
    band levels too)."""
    return unpack_chunk_levels(payload, header, num_blocks)[0]


def unpack_chunk_levels(
    payload: bytes, header: Header, num_blocks: int
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(code streams, band levels or None) of a chunk. Refuses anything but what a writer makes:
    a packed payload of another length or with non-zero padding, an entropy-coded one that
    decodes past its end or carries extra bytes (see :func:`entropy.decode`), codes out of
    range, a band-level section that is not exactly the values' code."""
    levels = None
    if header.band_edges:
        cursor = _Cursor(payload)
        try:
            size = cursor.varint("band levels")
            body = cursor.take(size, "band levels")
        except FormatError:
            raise FormatError("band-level section ends early") from None
        if varint(size) != payload[: cursor.pos - size]:
            raise FormatError("band-level section length is not canonical")
        levels = band_levels.decode_values(body, header.band_level_shape(num_blocks))
        payload = payload[cursor.pos :]
    return _unpack_codes(payload, header, num_blocks), levels


def _unpack_codes(payload: bytes, header: Header, num_blocks: int) -> list[np.ndarray]:
    lengths = header.stream_lengths(num_blocks)
    if not payload:
        raise FormatError("empty chunk")
    if payload[0] == PACKED:
        expected = 1 + -(-sum(lengths) * header.bits_per_code // 8)
        if len(payload) != expected:
            raise FormatError(f"packed chunk holds {len(payload)} bytes, expected {expected}")
        unpacker = BitUnpacker(payload[1:])
        streams = [unpacker.read(n, header.bits_per_code) for n in lengths]
        if unpacker.remaining().any():
            raise FormatError("packed chunk has non-zero padding bits")
    elif payload[0] == ENTROPY_CODED:
        if header.entropy_coder == "none":
            raise FormatError(
                f"entropy-coded chunk in a file of entropy_coder {header.entropy_coder!r}"
            )
        sizes = [header.codebook_size] * len(lengths)
        if header.entropy_coder == "context-range":
            streams = entropy.decode_context(payload[1:], lengths, sizes, header.stream_parents())
        else:
            streams = entropy.decode(payload[1:], lengths, sizes)
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
            body = header.to_bytes(FORMAT_VERSION)
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
        if self.version >= 4:
            return self._parse_record(body, self.version)
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            raise self._fail(f"header is not JSON ({e})") from None
        if not isinstance(raw, dict):
            raise self._fail(f"header is a JSON {type(raw).__name__}, expected an object")
        for key in LATER_KEYS:
            if key in raw:
                raise self._fail(f"version {self.version} header has field {key}")
        if raw.get("entropy_coder") == "context-range":
            raise self._fail(f"version {self.version} header has entropy_coder context-range")
        if self.version < 3:
            raw = self._rename_old_keys(raw)
        missing = [key for key in REQUIRED_KEYS if key not in raw]
        if missing:
            raise self._fail(f"header is missing field(s) {', '.join(missing)}")
        try:
            return build(Header, raw, "header")
        except (ConfigError, FormatError) as e:
            raise self._fail(f"invalid header: {e}") from None

    def _parse_record(self, body: bytes, version: int) -> Header:
        """A format 4-5 header: the binary record, checked, and exactly what a writer makes of it
        (so a varint padded with zero bytes is refused too)."""
        try:
            header = build(Header, decode_fields(body, version), "header")
        except (ConfigError, FormatError) as e:
            raise self._fail(f"invalid header: {e}") from None
        if header.to_bytes(version) != body:
            raise self._fail("invalid header: not in the canonical form a writer makes")
        return header

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
        return self.read_chunk_levels(k)[0]

    def read_chunk_levels(self, k: int) -> tuple[list[np.ndarray], np.ndarray | None]:
        """(code streams, band levels or None) of chunk k."""
        self._file.seek(int(self._offsets[k]))
        data = self._file.read(self.header.chunk_bytes[k])
        payload, crc = data[: -CRC.size], data[-CRC.size :]
        if len(data) < self.header.chunk_bytes[k] or CRC.unpack(crc)[0] != _chunk_crc(
            self.version, k, payload
        ):
            raise self._fail(f"checksum mismatch in chunk {k} (corrupt file)")
        start, stop = self.header.chunk_range(k)
        try:
            return unpack_chunk_levels(payload, self.header, stop - start)
        except FormatError as e:
            raise self._fail(f"chunk {k}: {e}") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VqaReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
