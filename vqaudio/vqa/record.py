"""The binary record of a .vqa header (format 4 on): field order and encoding, both ways.

Builds no :class:`~vqaudio.vqa.header.Header` itself: ``encode_fields`` takes the fields as
``to_dict`` gives them and ``decode_fields`` returns them unchecked, for the header to check.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from ..errors import FormatError
from .channels import CHANNEL_CODINGS

ENTROPY_CODERS = ("none", "adaptive-range", "context-range")  # context-range: format 4 on
CODEC_ID = re.compile(r"[0-9a-f]{16}")

# Format 4: the header as a binary record, in this order (docs/FORMAT.md). Ids are 8 raw bytes,
# integers unsigned LEB128 varints (1 byte below 128), enums one byte, the bitrate a float64,
# lists a varint count then varints. 10 s of audio: ~80 bytes, where the JSON of versions 1-3
# took ~360.
ID_FIELDS = ("codec_id", "code_space_id")
INTEGER_FIELDS = (
    "sample_rate",
    "channels",
    "num_samples",
    "source_sample_rate",
    "source_num_samples",
    "hop_length",
    "codebook_size",
    "chunk_blocks",
)
ENUM_FIELDS = {"channel_coding": CHANNEL_CODINGS, "entropy_coder": ENTROPY_CODERS}
LIST_FIELDS = ("level_strides", "levels_per_channel", "chunk_bytes")
BITRATE = struct.Struct("!d")
MAX_VARINT_BYTES = 9  # 63 bits


def varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, least significant first, high bit = more follow."""
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"varint of {value!r}; expected an integer >= 0")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_fields(raw: dict[str, Any], version: int = 5) -> bytes:
    """A header's fields (as ``to_dict`` gives them) -> the format 4 or 5 record. Raises
    ValueError for a value the record cannot hold (not a field check: :meth:`Header.check` is
    that), e.g. band levels in a format 4 record."""
    out = bytearray()
    for name in ID_FIELDS:
        if not (isinstance(raw[name], str) and CODEC_ID.fullmatch(raw[name])):
            raise ValueError(f"header field {name} is {raw[name]!r}; format 4 needs 16 hex digits")
        out += bytes.fromhex(raw[name])
    for name in INTEGER_FIELDS:
        out += varint(raw[name])
    for name, names in ENUM_FIELDS.items():
        out.append(names.index(raw[name]))
    out += BITRATE.pack(raw["bitrate"])
    for name in LIST_FIELDS:
        out += varint(len(raw[name])) + b"".join(varint(v) for v in raw[name])
    if version >= 5:
        edges = raw.get("band_edges", ())
        out += varint(raw.get("band_span_blocks", 0))
        out += varint(len(edges)) + b"".join(varint(v) for v in edges)
    elif raw.get("band_edges") or raw.get("band_span_blocks"):
        raise ValueError("band levels need format 5")
    return bytes(out)


class Cursor:
    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def take(self, count: int, name: str) -> bytes:
        if self.pos + count > len(self.body):
            raise FormatError(f"header ends inside field {name}")
        self.pos += count
        return self.body[self.pos - count : self.pos]

    def varint(self, name: str) -> int:
        value = 0
        for shift in range(0, 7 * MAX_VARINT_BYTES, 7):
            byte = self.take(1, name)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise FormatError(f"header field {name} is longer than {MAX_VARINT_BYTES} bytes")


def decode_fields(body: bytes, version: int = 5) -> dict[str, Any]:
    """The format 4 or 5 record -> the header's fields, not yet checked (build a :class:`Header`).

    Raises FormatError for a record that ends early, runs on, or names an unknown enum value;
    a list's count is bounded by the bytes left, so nothing large is allocated."""
    cursor, raw = Cursor(body), {}
    for name in ID_FIELDS:
        raw[name] = cursor.take(8, name).hex()
    for name in INTEGER_FIELDS:
        raw[name] = cursor.varint(name)
    for name, names in ENUM_FIELDS.items():
        index = cursor.take(1, name)[0]
        if index >= len(names):
            known = ", ".join(f"{i} ({n})" for i, n in enumerate(names))
            raise FormatError(f"header field {name} is {index}; expected {known}")
        raw[name] = names[index]
    raw["bitrate"] = BITRATE.unpack(cursor.take(BITRATE.size, "bitrate"))[0]
    for name in LIST_FIELDS:
        count = cursor.varint(name)
        if count > len(body) - cursor.pos:
            raise FormatError(f"header field {name} has {count} entries; the header ends first")
        raw[name] = [cursor.varint(name) for _ in range(count)]
    if version >= 5:
        raw["band_span_blocks"] = cursor.varint("band_span_blocks")
        count = cursor.varint("band_edges")
        if count > len(body) - cursor.pos:
            raise FormatError(f"header field band_edges has {count} entries; the header ends first")
        raw["band_edges"] = [cursor.varint("band_edges") for _ in range(count)]
    if cursor.pos != len(body):
        raise FormatError(f"{len(body) - cursor.pos} unexpected bytes after the header's fields")
    return raw
