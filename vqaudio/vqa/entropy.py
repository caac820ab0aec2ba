"""Lossless second stage over code indices: adaptive integer counts + constriction range coder.

Two models, named by the .vqa header's ``entropy_coder``: ``adaptive-range`` (:func:`encode`,
batched counts, below) and ``context-range`` (:func:`encode_context`, format 4: counts updated
after every symbol and conditioned on the coarser level's code at the same time).

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

from ..errors import FormatError

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


# context-range: the model of symbol t of a stream is integer weights over the alphabet,
# PRIOR_COUNT + CONTEXT_INCREMENT * (times each symbol was seen before t in this stream)
# + CONTEXT_WEIGHT * CONTEXT_INCREMENT * (times it was seen before t with the same parent code),
# the parent code being that of the coarser level (the stream before, ``parents``) at the same
# time. Why: per-symbol updates save twice what per-batch ones do, the parent ~1.5 points more
# at 1.5 kbps (benchmarks/entropy.py; docs/MODEL_CARD.md, "Speed, size and memory").
CONTEXT_INCREMENT = 16
CONTEXT_WEIGHT = 4


class _ContextModel:
    """The context-range model of one stream: :meth:`model`, then :meth:`update`, per symbol."""

    def __init__(self, size: int, parent: np.ndarray | None, length: int) -> None:
        self.counts = np.full(size, PRIOR_COUNT, dtype=np.int64)
        self.parent = None if parent is None else np.asarray(parent, dtype=np.int64).ravel()
        self.repeat = 1 if parent is None or not len(parent) else max(1, length // len(parent))
        self.seen: dict[int, dict[int, int]] = {}  # parent code -> {symbol: count}
        self._context = -1

    def model(self, t: int):
        weights = self.counts
        if self.parent is not None:
            self._context = int(self.parent[min(t // self.repeat, len(self.parent) - 1)])
            extra = self.seen.get(self._context)
            if extra:
                weights = weights.copy()
                weights[np.fromiter(extra, np.int64)] += CONTEXT_WEIGHT * np.fromiter(
                    extra.values(), np.int64
                )
        return _model(weights)

    def update(self, symbol: int) -> None:
        self.counts[symbol] += CONTEXT_INCREMENT
        if self.parent is not None:
            extra = self.seen.setdefault(self._context, {})
            extra[symbol] = extra.get(symbol, 0) + CONTEXT_INCREMENT


def encode_context(
    streams: list[np.ndarray], alphabet_sizes: list[int], parents: list[np.ndarray | None]
) -> bytes:
    """Range-code streams with the context-range model; ``parents[i]`` is the coarser level's
    codes of stream i (each covering ``len(streams[i]) // len(parents[i])`` of its symbols) or
    None (a channel's first level)."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, size, parent in zip(streams, alphabet_sizes, parents, strict=True):
        symbols = np.ascontiguousarray(symbols, dtype=np.int32).ravel()
        if symbols.size and (symbols.min() < 0 or symbols.max() >= size):
            raise ValueError(
                f"symbols {symbols.min()}–{symbols.max()} outside the alphabet 0–{size - 1}"
            )
        state = _ContextModel(size, parent, symbols.size)
        for t, symbol in enumerate(symbols.tolist()):
            encoder.encode(symbol, state.model(t))
            state.update(symbol)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_context(
    data: bytes,
    lengths: list[int],
    alphabet_sizes: list[int],
    parents: list[int | None],
) -> list[np.ndarray]:
    """Inverse of :func:`encode_context`; ``parents[i]`` is the index of stream i's parent
    stream (decoded before it) or None. Raises FormatError unless ``data`` is exactly what
    :func:`encode_context` makes of the result."""
    if len(data) % 4:
        raise FormatError("entropy-coded data is not a whole number of 32-bit words")
    decoder = constriction.stream.queue.RangeDecoder(
        np.frombuffer(data, dtype="<u4").astype(np.uint32)
    )
    streams: list[np.ndarray] = []
    for length, size, parent in zip(lengths, alphabet_sizes, parents, strict=True):
        state = _ContextModel(size, None if parent is None else streams[parent], length)
        out = np.empty(length, dtype=np.int64)
        for t in range(length):
            try:
                symbol = int(decoder.decode(state.model(t)))
            except Exception as e:  # constriction raises on undecodable input
                raise FormatError(f"entropy-coded data is corrupt ({e})") from None
            out[t] = symbol
            state.update(symbol)
        streams.append(out)
    arrays = [None if p is None else streams[p] for p in parents]
    if encode_context(streams, alphabet_sizes, arrays) != data:
        raise FormatError(
            "entropy-coded data does not match its symbols (it ends early or carries extra bytes)"
        )
    return streams
