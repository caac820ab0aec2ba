"""Streaming encode and decode: a long file's codes chunk by chunk, in constant memory.

Chunk boundaries do not show in the codes or the audio: each chunk is encoded with
``encoder_margin_blocks`` coarse frames of real audio on either side (covering the encoder's
receptive field) and keeps only its own codes; decoding runs the decoder over the chunk plus
``decoder_margin_blocks`` frames of neighbouring codes and keeps the middle. Up to float rounding
in the convolutions this equals a one-pass encoding/decoding of the whole file.

Code streams are ordered as in a .vqa chunk: channel-major, then level coarse -> fine, for the
coded channels of the header's ``channel_coding`` (see ``channels``). Nothing here checks that the
codec fits a file; ``compress`` checks that (``codec.code_space.check_compatible``) first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..codec import band_levels
from ..codec.margins import (
    band_level_margin_blocks,
    decoder_margin_blocks,
    encoder_margin_blocks,
    with_margin,
)
from ..codes import Codes
from ..config import CodecConfig
from ..errors import AudioError
from .channels import from_coded, to_coded
from .container import VqaReader
from .header import Header
from .memory import release_freed_memory

Progress = Callable[[float, float], None] | None


@dataclass
class Lengths:
    """Samples decoded so far: ``num_samples`` at the codec's rate, ``source_num_samples`` at the
    file's own; once the chunks are all out, the lengths a header records."""

    num_samples: int = 0
    source_num_samples: int = 0


def encode_chunks(
    codec: torch.nn.Module,
    source: str | Path,
    header: Header,
    on_progress: Progress,
    duration: float,
    lengths: Lengths | None = None,
    layouts: list[tuple[tuple[int, ...], int]] | None = None,
) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Yield (code streams, band levels) of chunk k of the audio file ``source``, k = 0, 1, ...;
    the band levels are one array (coded channels, bands, spans) per band layout (edges, span
    blocks) of ``layouts`` (default: the header's, or none when it has no ``band_edges``), all
    measured in the one pass.

    Reads ``source`` at the codec's rate one chunk at a time, keeping one chunk and its margins in
    memory. ``lengths`` counts the samples actually decoded (a file's announced length may be
    off); ``duration``, the announced one in seconds, only sizes the progress reports.
    """
    config: CodecConfig = codec.config
    lengths = lengths if lengths is not None else Lengths()
    block = config.block_samples
    chunk = header.chunk_blocks * block
    margin = encoder_margin_blocks(config) * block
    coded = len(header.levels_per_channel)
    if layouts is None:
        layouts = [(header.band_edges, header.band_span_blocks)] if header.band_edges else []
    buf = np.zeros((coded, 0), dtype=np.float32)
    buf_start = pos = total = 0
    pieces = audio.stream(source, chunk, sample_rate=config.sample_rate)
    for piece in pieces:
        buf = np.concatenate([buf, to_coded(piece, header.channel_coding)], axis=1)
        total += piece.shape[1]
        while total >= pos + chunk + margin:
            yield _encode_window(codec, header, layouts, buf, buf_start, pos, pos + chunk + margin)
            pos += chunk
            drop = max(0, pos - margin - buf_start)
            buf, buf_start = buf[:, drop:], buf_start + drop
            if on_progress:
                seconds = pos / config.sample_rate
                on_progress(min(seconds, duration), max(duration, seconds))
    if pieces.source_num_samples == 0:
        raise AudioError(f"{source}: holds no samples")
    if total == 0:  # a file shorter than one output sample after resampling
        buf, total = np.zeros((coded, 1), dtype=np.float32), 1
    lengths.num_samples, lengths.source_num_samples = total, pieces.source_num_samples
    while pos < total:
        yield _encode_window(codec, header, layouts, buf, buf_start, pos, total)
        pos += chunk
    if on_progress:
        seconds = pieces.source_num_samples / header.source_sample_rate
        on_progress(seconds, seconds)


def _encode_window(
    codec: torch.nn.Module,
    header: Header,
    layouts: list[tuple[tuple[int, ...], int]],
    buf: np.ndarray,
    buf_start: int,
    pos: int,
    end: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Codes (and band levels of each layout) of the blocks from sample ``pos`` on (up to one
    chunk), encoded with context."""
    config: CodecConfig = codec.config
    block = config.block_samples
    margin = encoder_margin_blocks(config) * block
    start = max(0, pos - margin)
    window = torch.from_numpy(np.ascontiguousarray(buf[:, start - buf_start : end - buf_start]))
    levels = header.levels_per_channel
    codes = codec.encode(window[:, None].to(_device(codec)), config.bitrates[max(levels) - 1])
    first = (pos - start) // block
    count = min(header.chunk_blocks, -(-(end - pos) // block))
    central = codes.slice_blocks(first, first + count)
    streams = [central.levels[k][c].cpu().numpy() for c, n in enumerate(levels) for k in range(n)]
    measured = []
    for edges, span_blocks in layouts:
        spans = band_levels.spans(pos // block, pos // block + count, span_blocks)
        measured.append(band_levels.measure(
            window, config.sample_rate, config.hop_length, config.level_strides[0],
            edges, spans, start // block,
        ))  # fmt: skip
    release_freed_memory()
    return streams, measured


def decode_chunks(
    reader: VqaReader, codec: torch.nn.Module, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Yield the audio (source channels, t) at the codec's rate of chunks ``start:stop``.

    Each chunk is decoded with neighbouring codes as context and cropped, so seeking to chunk k
    gives the same samples as decoding from the start. ``codec`` must be the file's (not checked
    here; ``compress`` does).
    """
    header = reader.header
    span = header.band_span_blocks if applies_band_levels(codec, header) else 0
    if span:  # whole spans, and the spans either side of the decoder's reach
        margin = band_level_margin_blocks(codec.config, span)
    else:
        margin = decoder_margin_blocks(codec.config)
    block = header.block_samples
    cache: dict[int, tuple[list[np.ndarray], np.ndarray | None]] = {}
    for k in range(start, header.num_chunks if stop is None else stop):
        first, end = header.chunk_range(k)
        lo, hi = with_margin(first, end, margin, header.num_blocks)
        if span:
            lo, hi = lo // span * span, min(header.num_blocks, -(-hi // span) * span)
        needed = range(lo // header.chunk_blocks, (hi - 1) // header.chunk_blocks + 1)
        cache = {j: cache[j] if j in cache else reader.read_chunk_levels(j) for j in needed}
        wav = _decode_window(codec, header, [cache[j] for j in needed], lo, hi, needed.start, span)
        release_freed_memory()
        wav = wav[:, (first - lo) * block : (end - lo) * block]
        wav = wav[:, : header.num_samples - first * block]
        yield from_coded(wav, header.channel_coding)


def applies_band_levels(codec: torch.nn.Module, header: Header) -> bool:
    """Whether decoding ``header``'s file with ``codec`` scales to its band levels: a file that
    carries them, a decoder that predicts magnitudes (the others ignore them)."""
    return bool(header.band_edges) and getattr(codec.decoder, "takes_band_levels", False)


def _decode_window(
    codec: torch.nn.Module,
    header: Header,
    chunks: list[tuple[list[np.ndarray], np.ndarray | None]],
    lo: int,
    hi: int,
    first_chunk: int,
    span: int = 0,
) -> np.ndarray:
    """Decode blocks ``lo:hi`` from the (code streams, band levels) of consecutive chunks ->
    (coded ch, t); ``span`` > 0 applies the band levels (``lo`` on a span boundary)."""
    out, stream = [], 0
    offset = lo - first_chunk * header.chunk_blocks
    levels = None
    if span:
        values = np.concatenate([chunk[1] for chunk in chunks], axis=-1)
        first_span = offset // span
        block_spans = band_levels.spans(lo, hi, span) - lo
        values = values[..., first_span : first_span + len(block_spans)]
        levels = (values, block_spans)
    chunks = [chunk[0] for chunk in chunks]
    for c, n in enumerate(header.levels_per_channel):
        strides = header.level_strides[:n]
        codes_of_levels = []
        for k, s in enumerate(strides):
            codes = np.concatenate([chunk[stream + k] for chunk in chunks])
            per = header.level_strides[0] // s
            part = codes[offset * per : (offset + hi - lo) * per]
            codes_of_levels.append(torch.from_numpy(part)[None])
        stream += n
        codes = Codes(codes_of_levels, strides).to(_device(codec))
        given = None
        if levels is not None:
            given = band_levels.BandLevels(
                levels[0][c : c + 1], levels[1], header.band_edges, header.level_strides[0]
            )
        out.append(codec.decode(codes, given, offset_blocks=lo)[0, 0].float().cpu().numpy())
    return np.stack(out)


def _device(codec: torch.nn.Module) -> torch.device:
    return next(codec.parameters()).device
