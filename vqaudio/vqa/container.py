""".vqa container: preamble, header with the chunk index, CRC-checked chunks. Its API, the
functions that make and read these files from audio, is ``compress.py``.

Layout (format version 5, all integers big-endian; docs/FORMAT.md is the spec)::

    preamble   4s magic b"VQAU" | B format version | I header length
    header     binary record of :class:`Header` (``record.encode_fields``; JSON in versions 1-3),
               holds ``chunk_bytes``, the index
    header CRC I CRC32 of preamble + header
    chunk k    payload | I CRC32 of (I k) + payload    (chunk_bytes[k] bytes in all)

A chunk payload (``chunk``) is its band levels (format 5), one coding byte and the codes of its
blocks. Chunks decode independently, and ``chunk_bytes`` lets a reader seek to chunk k without
touching the others. Versions 1-3 (still read) have a JSON header without ``code_space_id``;
versions 1 and 2 call the header field ``levels_per_channel`` ``levels``, and version 1's chunk
CRC covers the payload alone.

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

from ..atomic import atomic_write
from ..errors import ConfigError, FormatError
from ..strict import build, to_dict
from .chunk import unpack_chunk_levels
from .header import CRC, LATER_KEYS, REQUIRED_KEYS, Header
from .record import decode_fields

MAGIC = b"VQAU"
FORMAT_VERSION = 5
SUPPORTED_VERSIONS = (1, 2, 3, 4, 5)
RENAMED_KEYS = {"levels": "levels_per_channel"}  # old key -> new, in versions before 3
PREAMBLE = struct.Struct("!4sBI")
MAX_HEADER_BYTES = 1 << 20  # ~100k chunks in the index: 280 hours at the writer's 10 s chunks


def _chunk_crc(version: int, k: int, payload: bytes) -> int:
    """Version 2 binds a chunk to its place: swapped chunks of equal size fail their CRCs."""
    return zlib.crc32(payload) if version == 1 else zlib.crc32(payload, zlib.crc32(CRC.pack(k)))


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
