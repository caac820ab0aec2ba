"""Lossless second stage over code indices: adaptive integer-count model + constriction range coder.

Each stream (one quantizer level of one channel in one chunk) starts from the same model, so
chunks stay independent. The model is a table of integer counts (``PRIOR_COUNT`` for every symbol,
plus ``INCREMENT`` per symbol seen). To keep Python loops out of the hot path, symbols are coded
in batches: a batch uses the counts of everything before it, so the decoder rebuilds exactly the
same table after each batch. Batches start at ``MIN_BATCH`` symbols and double with the number of
symbols seen, up to ``MAX_BATCH``.

Bit-exactness: the probabilities handed to constriction are ``counts / counts.sum()`` in float64,
an elementwise IEEE division of exact integers, so every machine computes the same table; the
Rust side quantizes it deterministically (``perfect=False``, single-threaded).

Canonical data: constriction's decoder reads zeros past the end of its data instead of failing,
so a few bytes could "decode" to any number of symbols. :func:`decode` therefore accepts only the
exact bytes :func:`encode` writes for the symbols it decoded (re-encoding costs about as much as
decoding, a small share of a chunk's time), which refuses data that ends early or runs on.
"""

from __future__ import annotations

import constriction
import numpy as np

from .errors import FormatError

PRIOR_COUNT = 1
INCREMENT = 32
MIN_BATCH = 16
MAX_BATCH = 4096


def _batches(length: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of a stream of ``length`` symbols."""
    out, start = [], 0
    while start < length:
        size = min(max(MIN_BATCH, start), MAX_BATCH)
        out.append((start, min(start + size, length)))
        start += size
    return out


def _model(counts: np.ndarray):
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def encode(streams: list[np.ndarray], alphabet_sizes: list[int]) -> bytes:
    """Range-code integer streams (each with values in ``[0, alphabet_sizes[i])``) into bytes."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, size in zip(streams, alphabet_sizes, strict=False):
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if symbols.size and (symbols.min() < 0 or symbols.max() >= size):
            raise ValueError(
                f"symbols {symbols.min()}–{symbols.max()} outside the alphabet 0–{size - 1}"
            )
        counts = np.full(size, PRIOR_COUNT, dtype=np.int64)
        for start, stop in _batches(symbols.size):
            batch = symbols[start:stop]
            encoder.encode(batch, _model(counts))
            counts += INCREMENT * np.bincount(batch, minlength=size)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, lengths: list[int], alphabet_sizes: list[int]) -> list[np.ndarray]:
    """Inverse of :func:`encode`: ``lengths[i]`` symbols of stream i, as int64 arrays.

    Raises FormatError unless ``data`` is exactly what :func:`encode` makes of the result. The
    caller bounds ``lengths`` (memory is ``8 * sum(lengths)`` bytes).
    """
    if len(data) % 4:
        raise FormatError("entropy-coded data is not a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(
        np.frombuffer(data, dtype="<u4").astype(np.uint32)
    )
    streams = []
    for length, size in zip(lengths, alphabet_sizes, strict=False):
        counts = np.full(size, PRIOR_COUNT, dtype=np.int64)
        out = np.empty(length, dtype=np.int64)
        for start, stop in _batches(length):
            try:
                batch = decoder.decode(_model(counts), stop - start)
            except Exception as e:  # constriction raises on undecodable input
                raise FormatError(f"entropy-coded data is corrupt ({e})") from None
            out[start:stop] = batch
            counts += INCREMENT * np.bincount(batch, minlength=size)
        streams.append(out)
    if encode(streams, alphabet_sizes) != data:
        raise FormatError(
            "entropy-coded data does not match its symbols (it ends early or carries extra bytes)"
        )
    return streams
