"""Streaming encode and decode: a long file's codes chunk by chunk, in constant memory.

Chunk boundaries do not show in the codes or the audio: each chunk is encoded with
``encoder_margin_blocks`` coarse frames of real audio on either side (covering the encoder's
receptive field) and keeps only its own codes; decoding runs the decoder over the chunk plus
``decoder_margin_blocks`` frames of neighbouring codes and keeps the middle. Up to float rounding
in the convolutions this equals a one-pass encoding/decoding of the whole file.

Code streams are ordered as in a .vqa chunk: channel-major, then level coarse -> fine, for the
coded channels of the header's ``channel_coding`` (see ``channels``). Nothing here checks that the
codec fits a file; ``compress.check_codec`` does, before decoding starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import audio
from .bitstream import VqaReader
from .channels import from_coded, to_coded
from .codes import Codes
from .config import CodecConfig
from .errors import AudioError
from .header import Header
from .margins import decoder_margin_blocks, encoder_margin_blocks, with_margin
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
) -> Iterator[list[np.ndarray]]:
    """Yield the code streams of chunk k of the audio file ``source``, k = 0, 1, ...

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
    buf = np.zeros((coded, 0), dtype=np.float32)
    buf_start = pos = total = 0
    pieces = audio.stream(source, chunk, sample_rate=config.sample_rate)
    for piece in pieces:
        buf = np.concatenate([buf, to_coded(piece, header.channel_coding)], axis=1)
        total += piece.shape[1]
        while total >= pos + chunk + margin:
            yield _encode_window(codec, header, buf, buf_start, pos, pos + chunk + margin)
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
        yield _encode_window(codec, header, buf, buf_start, pos, total)
        pos += chunk
    if on_progress:
        seconds = pieces.source_num_samples / header.source_sample_rate
        on_progress(seconds, seconds)


def _encode_window(
    codec: torch.nn.Module, header: Header, buf: np.ndarray, buf_start: int, pos: int, end: int
) -> list[np.ndarray]:
    """Codes of the blocks from sample ``pos`` on (up to one chunk), encoded with context."""
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
    release_freed_memory()
    return [central.levels[k][c].cpu().numpy() for c, n in enumerate(levels) for k in range(n)]


def decode_chunks(
    reader: VqaReader, codec: torch.nn.Module, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Yield the audio (source channels, t) at the codec's rate of chunks ``start:stop``.

    Each chunk is decoded with neighbouring codes as context and cropped, so seeking to chunk k
    gives the same samples as decoding from the start. ``codec`` must be the file's (not checked
    here; see ``compress.check_codec``).
    """
    header = reader.header
    margin = decoder_margin_blocks(codec.config)
    block = header.block_samples
    cache: dict[int, list[np.ndarray]] = {}
    for k in range(start, header.num_chunks if stop is None else stop):
        first, end = header.chunk_range(k)
        lo, hi = with_margin(first, end, margin, header.num_blocks)
        needed = range(lo // header.chunk_blocks, (hi - 1) // header.chunk_blocks + 1)
        cache = {j: cache[j] if j in cache else reader.read_chunk(j) for j in needed}
        wav = _decode_window(codec, header, [cache[j] for j in needed], lo, hi, needed.start)
        release_freed_memory()
        wav = wav[:, (first - lo) * block : (end - lo) * block]
        wav = wav[:, : header.num_samples - first * block]
        yield from_coded(wav, header.channel_coding)


def _decode_window(
    codec: torch.nn.Module,
    header: Header,
    chunks: list[list[np.ndarray]],
    lo: int,
    hi: int,
    first_chunk: int,
) -> np.ndarray:
    """Decode blocks ``lo:hi`` from the code streams of consecutive chunks -> (coded ch, t)."""
    out, stream = [], 0
    offset = lo - first_chunk * header.chunk_blocks
    for n in header.levels_per_channel:
        strides = header.level_strides[:n]
        levels = []
        for k, s in enumerate(strides):
            codes = np.concatenate([chunk[stream + k] for chunk in chunks])
            per = header.level_strides[0] // s
            levels.append(torch.from_numpy(codes[offset * per : (offset + hi - lo) * per])[None])
        stream += n
        codes = Codes(levels, strides).to(_device(codec))
        out.append(codec.decode(codes)[0, 0].float().cpu().numpy())
    return np.stack(out)


def _device(codec: torch.nn.Module) -> torch.device:
    return next(codec.parameters()).device
