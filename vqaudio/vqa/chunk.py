"""A .vqa chunk's payload: its band levels (format 5), then one coding byte (0 = bit-packed,
1 = entropy-coded) and the codes of its blocks, stream by stream: channel-major, then level
coarse -> fine. The container around it (CRC, index) is ``container``.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError
from . import entropy
from .band_levels import decode_values, encode_values
from .header import Header
from .record import Cursor, varint

PACKED, ENTROPY_CODED = 0, 1


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
    the values (``encode_values``); nothing in a file without band levels."""
    if not header.band_edges:
        if levels is not None:
            raise ValueError("band levels given for a file without band_edges")
        return b""
    shape = header.band_level_shape(num_blocks)
    if levels is None or tuple(levels.shape) != shape:
        got = None if levels is None else tuple(levels.shape)
        raise ValueError(f"band levels of shape {got}; the header needs {shape}")
    body = encode_values(levels)
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
        cursor = Cursor(payload)
        try:
            size = cursor.varint("band levels")
            body = cursor.take(size, "band levels")
        except FormatError:
            raise FormatError("band-level section ends early") from None
        if varint(size) != payload[: cursor.pos - size]:
            raise FormatError("band-level section length is not canonical")
        levels = decode_values(body, header.band_level_shape(num_blocks))
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
