"""Band levels in a .vqa chunk: signed Exp-Golomb codes of their differences, LSB-first bits.

What the values are and how they are measured and applied is ``codec/band_levels.py``. In a chunk
the values (integer dB, ``MIN_DB``..``MAX_DB``) are stored channel-major, then band, then span,
each as the signed Exp-Golomb code (order 1) of its difference to the one before (the first from
``REFERENCE_DB``); docs/FORMAT.md is the spec.
"""

from __future__ import annotations

import numpy as np

from ..codec.band_levels import MAX_DB, MIN_DB
from ..errors import FormatError

REFERENCE_DB = -40  # the first value of each band in a chunk is coded against this
# Exp-Golomb of order 1 (4.09 bits per value on held-out music, order 0 4.40, entropy 3.81)
EG_ORDER = 1
_LARGEST = 2 * (MAX_DB - MIN_DB) + (1 << EG_ORDER)  # the zigzagged difference 140, offset
MAX_PREFIX = _LARGEST.bit_length() - 1 - EG_ORDER  # zeros before the largest value's code
MAX_VALUE_BITS = 2 * MAX_PREFIX + 1 + EG_ORDER


def _zigzag(d: int) -> int:
    return 2 * d if d >= 0 else -2 * d - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def encode_values(values: np.ndarray) -> bytes:
    """(C, bands, spans) integer dB -> the bytes of a chunk's band-level section (no length)."""
    bits: list[int] = []
    for row in np.asarray(values, dtype=np.int64).reshape(-1, values.shape[-1]):
        previous = REFERENCE_DB
        for v in row:
            n = _zigzag(int(v) - previous) + (1 << EG_ORDER)
            width = n.bit_length()
            bits += [0] * (width - 1 - EG_ORDER) + [(n >> i) & 1 for i in reversed(range(width))]
            previous = int(v)
    return np.packbits(np.array(bits, np.uint8), bitorder="little").tobytes()


def decode_values(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`encode_values`; refuses data that ends early, carries bytes or non-zero
    bits past the last value, or holds a value outside MIN_DB..MAX_DB."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    pos, out = 0, np.zeros(int(np.prod(shape)), np.int64)
    per_row = shape[-1]
    for i in range(out.size):
        previous = REFERENCE_DB if i % per_row == 0 else int(out[i - 1])
        zeros = 0
        while pos < bits.size and bits[pos] == 0 and zeros <= MAX_PREFIX:
            zeros, pos = zeros + 1, pos + 1
        width = zeros + 1 + EG_ORDER
        if zeros > MAX_PREFIX or pos + width > bits.size:
            raise FormatError("band levels end early or hold an implausible value")
        n = 0
        for b in bits[pos : pos + width]:
            n = (n << 1) | int(b)
        pos += width
        value = previous + _unzigzag(n - (1 << EG_ORDER))
        if not MIN_DB <= value <= MAX_DB:
            raise FormatError(f"band level {value} dB outside {MIN_DB}..{MAX_DB}")
        out[i] = value
    if -(-pos // 8) != len(data) or bits[pos:].any():
        raise FormatError("band levels are followed by unexpected bytes or bits")
    return out.reshape(shape).astype(np.int16)


def section_bytes_bound(values: int) -> int:
    """Most bytes a chunk's section of ``values`` values takes, its varint length included."""
    body = -(-values * MAX_VALUE_BITS // 8)
    return body + (body.bit_length() + 6) // 7 + (body == 0)
