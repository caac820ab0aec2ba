"""compress(codec, audio file -> .vqa) and decompress(.vqa -> audio file), chunked, constant memory.

Chunk boundaries do not show in the codes or the audio: each chunk is encoded with
``encoder_margin_blocks`` coarse frames of real audio on either side (covering the encoder's
receptive field) and keeps only its own codes; decoding runs the decoder over the chunk plus
``decoder_margin_blocks`` frames of neighbouring codes and keeps the middle. Up to float rounding
in the convolutions this equals a one-pass encoding/decoding of the whole file.

Channels: the codec is mono. Stereo files are coded as mid = (L + R) / 2 and side = (L - R) / 2,
side getting about a quarter of the levels' bits (it carries less energy and matters less to the
ear); 3-8 channels are coded separately with the same levels.

Rate: the bitrate is that of the whole file, all channels together, container included. With
entropy coding, the codes of every level are computed once (codes are small: ~5 MB per hour of
stereo) and the file keeps the most levels whose coded size fits; without it, the levels of the
operating point that fits with the overhead charged.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from . import audio, entropy
from .bitstream import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    Header,
    VqaReader,
    VqaWriter,
    pack_chunk,
)
from .codes import Codes
from .config import CodecConfig
from .errors import AudioError, ConfigError, FormatError
from .margins import decoder_margin_blocks, encoder_margin_blocks

DEFAULT_BITRATE = 6000.0
CHUNK_SECONDS = 10.0
SHORT_SECONDS = 5.0  # shorter files may exceed the bitrate: the header alone is ~450 bytes
Progress = Callable[[float, float], None] | None


def plan_levels(
    config: CodecConfig, channels: int, bitrate: float, duration: float | None = None
) -> tuple[str, list[int]]:
    """(channel coding, levels per coded channel) for a whole-file ``bitrate`` in bits/s.

    With ``duration`` (seconds) the container overhead is charged too, so the file's real bitrate
    stays at or under ``bitrate``; files under ``SHORT_SECONDS`` still get the lowest operating
    point when even that does not fit.
    """
    coding = "mono" if channels == 1 else "mid_side" if channels == 2 else "separate"
    rates = config.bitrates
    lowest = rates[0] * channels
    if bitrate < lowest * (1 - 1e-9):
        raise ConfigError(
            f"bitrate {bitrate / 1000:g} kbps is below this codec's lowest operating point for "
            f"{channels} channel(s), {lowest / 1000:g} kbps; choose a higher --bitrate"
        )
    overhead = _overhead_rate(config, channels, duration)
    budget = bitrate - overhead
    if budget < lowest * (1 - 1e-9) and (duration or 0) >= SHORT_SECONDS:
        raise ConfigError(
            f"bitrate {bitrate / 1000:g} kbps leaves no room for this codec's lowest operating "
            f"point for {channels} channel(s), {lowest / 1000:g} kbps, plus the file's container "
            f"overhead, {overhead:.0f} bps; choose a higher --bitrate"
        )

    def most(limit: float) -> int:
        return max([n for n, r in enumerate(rates, 1) if r <= limit * (1 + 1e-9)], default=1)

    if coding == "mono":
        return coding, [most(budget)]
    if coding == "mid_side":
        side = most(budget / 4)
        mid = max(most(budget - rates[side - 1]), side)
        while side > 1 and rates[mid - 1] + rates[side - 1] > budget:
            side -= 1
        return coding, [mid, side]
    return coding, [most(budget / channels)] * channels


def _overhead_rate(config: CodecConfig, channels: int, duration: float | None) -> float:
    """Bits/s spent on the header, index, chunk CRCs and block padding (an upper bound)."""
    if not duration:
        return 0.0
    chunks = math.ceil(duration * config.sample_rate / config.block_samples / _chunk_blocks(config))
    header_bytes = 600 + 40 * channels + 8 * chunks  # JSON is ~450 bytes + the index
    chunk_bytes = chunks * (1 + 4 + 2 * channels * config.num_levels)  # coding byte, CRC, bit tails
    padding = config.block_samples / config.sample_rate  # at most one block of padding
    return (
        8 * (header_bytes + chunk_bytes) / duration
        + config.bitrates[-1] * channels * padding / duration
    )


def _chunk_blocks(config: CodecConfig) -> int:
    return max(1, round(CHUNK_SECONDS * config.sample_rate / config.block_samples))


def codec_id(codec: torch.nn.Module) -> str:
    """The checkpoint id of a loaded codec, else a hash of its weights (16 hex digits)."""
    if getattr(codec, "checkpoint_id", None):
        return codec.checkpoint_id
    digest = hashlib.sha256()
    for name, tensor in sorted(codec.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _to_coded(wav: np.ndarray, coding: str) -> np.ndarray:
    if coding == "mid_side":
        return np.stack([(wav[0] + wav[1]) / 2, (wav[0] - wav[1]) / 2])
    return wav


def _from_coded(wav: np.ndarray, coding: str) -> np.ndarray:
    if coding == "mid_side":
        return np.stack([wav[0] + wav[1], wav[0] - wav[1]])
    return wav


def _device(codec: torch.nn.Module) -> torch.device:
    return next(codec.parameters()).device


def compress(
    codec: torch.nn.Module,
    source: str | Path,
    out: str | Path,
    bitrate: float = DEFAULT_BITRATE,
    entropy_coded: bool = True,
    chunk_blocks: int | None = None,
    on_progress: Progress = None,
) -> Header:
    """Compress the audio file ``source`` into the .vqa file ``out`` (written atomically).

    ``bitrate`` is bits/s of the whole file, container included. Without entropy coding the levels
    are those of the operating point that fits with the overhead charged. With entropy coding the
    codes of every level are computed once and the file keeps the most levels whose *coded* size
    fits the budget (a trained codec's codes are far from uniform, so this is often well above the
    nominal operating point). Progress is reported in seconds of audio. Returns the header written.
    """
    config: CodecConfig = codec.config
    info = audio.info(source)
    if info.num_samples == 0:
        raise AudioError(f"{source}: holds no samples")
    if info.channels > audio.MAX_CHANNELS:
        raise AudioError(
            f"{source}: has {info.channels} channels; .vqa files hold 1–{audio.MAX_CHANNELS}"
        )
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{source}: sample rate {info.sample_rate} Hz is outside "
            f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz; resample it first"
        )
    duration = info.num_samples / info.sample_rate
    fallback = plan_levels(config, info.channels, bitrate, duration)
    chunk_blocks = chunk_blocks or _chunk_blocks(config)
    if not entropy_coded:
        return _write_plan(
            codec, source, out, info, fallback, bitrate, False, chunk_blocks, on_progress, duration
        )
    coding = fallback[0]
    everything = [config.num_levels] * len(fallback[1])
    full = _header(codec, info, (coding, everything), bitrate, True, chunk_blocks)
    chunks, num_samples = [], 0
    for streams, num_samples in _encode_chunks(codec, source, full, on_progress, duration):  # noqa: B007 (last value used below)
        chunks.append(
            [s.astype(np.int16 if config.codebook_size <= 32768 else np.int32) for s in streams]
        )  # codes only: ~5 MB per hour of stereo
    budget = bitrate * duration / 8
    candidates = _candidate_plans(config, info.channels, coding, fallback)
    costs = [_stream_costs(chunk, config.codebook_size) for chunk in chunks]
    fitting = [
        p for p in candidates if _estimate_bytes(p, everything, costs, info.channels) <= budget
    ]
    for plan in fitting or [fallback]:
        header = _header(codec, info, plan, bitrate, True, chunk_blocks)
        writer = VqaWriter(out, header)
        try:
            for streams in chunks:
                writer.write_chunk(pack_chunk(_select(streams, everything, plan[1]), header, True))
        except BaseException:
            writer.abort()
            raise
        header = writer.close(num_samples=num_samples)
        if Path(out).stat().st_size <= budget or duration < SHORT_SECONDS:
            break  # the estimate is conservative; a rare miss steps down to the next plan
    return header


def _candidate_plans(
    config: CodecConfig, channels: int, coding: str, fallback: tuple[str, list[int]]
) -> list[tuple[str, list[int]]]:
    """Level plans from the most to the fewest codes, split across channels as ``plan_levels``."""
    top, lowest = config.bitrates[-1] * channels, config.bitrates[0] * channels
    rates = {r * m for r in config.bitrates for m in range(1, channels + 1)} | {top}
    plans = []
    for rate in sorted((r for r in rates if r >= lowest), reverse=True):
        plan = plan_levels(config, channels, rate)
        if plan[0] == coding and plan not in plans:
            plans.append(plan)
    if fallback not in plans:
        plans.append(fallback)
    return plans


def _stream_costs(streams: list[np.ndarray], codebook_size: int) -> list[int]:
    """Entropy-coded bytes of each stream on its own (an upper bound of its share in a chunk)."""
    return [len(entropy.encode([s], [codebook_size])) for s in streams]


def _select(streams: list[np.ndarray], have: list[int], keep: list[int]) -> list[np.ndarray]:
    """The streams of the first ``keep[c]`` levels of each coded channel (``have[c]`` stored)."""
    out, start = [], 0
    for stored, wanted in zip(have, keep):
        out += streams[start : start + wanted]
        start += stored
    return out


def _estimate_bytes(
    plan: tuple[str, list[int]], stored: list[int], costs: list[list[int]], channels: int
) -> float:
    """Conservative size of a file with this plan: header + index + chunks (flag, codes, CRC).

    ``costs[k]`` holds the coded bytes of chunk k's streams, ``stored[c]`` levels per channel.
    """
    num_chunks = len(costs)
    header_bytes = 600 + 40 * channels + 8 * num_chunks
    chunk_bytes = sum(1 + 4 + sum(_select(c, stored, plan[1])) for c in costs)
    return header_bytes + chunk_bytes


def _header(
    codec: torch.nn.Module,
    info: audio.AudioInfo,
    plan: tuple[str, list[int]],
    bitrate: float,
    entropy_coded: bool,
    chunk_blocks: int,
) -> Header:
    config: CodecConfig = codec.config
    coding, levels = plan
    return Header(
        codec_id=codec_id(codec),
        sample_rate=config.sample_rate,
        channels=info.channels,
        num_samples=max(1, round(info.num_samples * config.sample_rate / info.sample_rate)),
        source_sample_rate=info.sample_rate,
        source_num_samples=info.num_samples,
        hop_length=config.hop_length,
        codebook_size=config.codebook_size,
        level_strides=config.level_strides[: max(levels)],
        levels=tuple(levels),
        channel_coding=coding,
        chunk_blocks=chunk_blocks,
        entropy_coder="adaptive-range" if entropy_coded else "none",
        bitrate=float(bitrate),
    )


def _write_plan(
    codec: torch.nn.Module,
    source: str | Path,
    out: str | Path,
    info: audio.AudioInfo,
    plan: tuple[str, list[int]],
    bitrate: float,
    entropy_coded: bool,
    chunk_blocks: int,
    on_progress: Progress,
    duration: float,
) -> Header:
    header = _header(codec, info, plan, bitrate, entropy_coded, chunk_blocks)
    writer = VqaWriter(out, header)
    try:
        num_samples = 0
        for streams, num_samples in _encode_chunks(codec, source, header, on_progress, duration):  # noqa: B007 (last value used below)
            writer.write_chunk(pack_chunk(streams, header, entropy_coded))
    except BaseException:
        writer.abort()
        raise
    return writer.close(num_samples=num_samples)


def _encode_chunks(
    codec: torch.nn.Module,
    source: str | Path,
    header: Header,
    on_progress: Progress,
    duration: float,
) -> Iterator[tuple[list[np.ndarray], int]]:
    """Yield (code streams of chunk k, samples read so far) with constant memory."""
    config: CodecConfig = codec.config
    block = config.block_samples
    chunk = header.chunk_blocks * block
    margin = encoder_margin_blocks(config) * block
    buf = np.zeros((len(header.levels), 0), dtype=np.float32)
    buf_start = pos = total = 0
    for piece in audio.stream(source, chunk, sample_rate=config.sample_rate):
        buf = np.concatenate([buf, _to_coded(piece, header.channel_coding)], axis=1)
        total += piece.shape[1]
        while total >= pos + chunk + margin:
            yield _encode_window(codec, header, buf, buf_start, pos, pos + chunk + margin), total
            pos += chunk
            drop = max(0, pos - margin - buf_start)
            buf, buf_start = buf[:, drop:], buf_start + drop
            if on_progress:
                on_progress(min(pos / config.sample_rate, duration), duration)
    if total == 0:  # a file shorter than one output sample after resampling
        buf, total = np.zeros((len(header.levels), 1), dtype=np.float32), 1
    while pos < total:
        yield _encode_window(codec, header, buf, buf_start, pos, total), total
        pos += chunk
    if on_progress:
        on_progress(duration, duration)


def _release_freed_memory() -> None:
    """Hand memory freed by the last chunk back to the OS (glibc only; elsewhere a no-op).

    Every chunk allocates and frees hundreds of MB of activations of varying sizes; glibc keeps
    them in its heap, so without this the peak grows with the number of chunks (measured: 871 MB
    for a 10-minute file vs 795 MB with it; 1 minute: 790 MB).
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc():
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (musl has none)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


def _encode_window(
    codec: torch.nn.Module, header: Header, buf: np.ndarray, buf_start: int, pos: int, end: int
) -> list[np.ndarray]:
    """Codes of the blocks from sample ``pos`` on (up to one chunk), encoded with context."""
    config: CodecConfig = codec.config
    block = config.block_samples
    margin = encoder_margin_blocks(config) * block
    start = max(0, pos - margin)
    window = torch.from_numpy(np.ascontiguousarray(buf[:, start - buf_start : end - buf_start]))
    codes = codec.encode(
        window[:, None].to(_device(codec)), config.bitrates[max(header.levels) - 1]
    )
    first = (pos - start) // block
    count = min(header.chunk_blocks, -(-(end - pos) // block))
    central = codes.slice_blocks(first, first + count)
    _release_freed_memory()
    return [
        central.levels[k][c].cpu().numpy() for c, n in enumerate(header.levels) for k in range(n)
    ]


def check_codec(header: Header, codec: torch.nn.Module, name: str) -> None:
    """Refuse a codec other than the one that made the file, naming both ids and the fix."""
    have = codec_id(codec)
    where = getattr(codec, "checkpoint_path", None) or "the given codec"
    if have != header.codec_id:
        raise FormatError(
            f"{name} was made with codec {header.codec_id[:8]}…, but {where} is {have[:8]}…; "
            "pass --codec"
        )
    config: CodecConfig = codec.config
    if (config.sample_rate, config.hop_length, config.codebook_size) != (
        header.sample_rate,
        header.hop_length,
        header.codebook_size,
    ) or tuple(config.level_strides[: len(header.level_strides)]) != header.level_strides:
        raise FormatError(f"{name}: its header does not fit codec {have[:8]}… (corrupt file?)")


def decode_chunks(
    reader: VqaReader, codec: torch.nn.Module, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Yield the audio (source channels, t) at the codec's rate of chunks ``start:stop``.

    Each chunk is decoded with neighbouring codes as context and cropped, so seeking to chunk k
    gives the same samples as decoding from the start.
    """
    header = reader.header
    check_codec(header, codec, reader.name)
    margin = decoder_margin_blocks(codec.config)
    block = header.block_samples
    cache: dict[int, list[np.ndarray]] = {}
    for k in range(start, header.num_chunks if stop is None else stop):
        first, end = header.chunk_range(k)
        lo, hi = max(0, first - margin), min(header.num_blocks, end + margin)
        needed = range(lo // header.chunk_blocks, (hi - 1) // header.chunk_blocks + 1)
        cache = {j: cache[j] if j in cache else reader.read_chunk(j) for j in needed}
        wav = _decode_window(codec, header, [cache[j] for j in needed], lo, hi, needed.start)
        _release_freed_memory()
        wav = wav[:, (first - lo) * block : (end - lo) * block]
        wav = wav[:, : header.num_samples - first * block]
        yield _from_coded(wav, header.channel_coding)


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
    for n in header.levels:
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


def decompress(
    source: str | Path,
    out: str | Path,
    codec: torch.nn.Module,
    sample_rate: int | None = None,
    on_progress: Progress = None,
    fmt: str | None = None,
) -> Header:
    """Decode the .vqa file ``source`` into the audio file ``out`` (wav/flac by extension).

    Writes the source's channel count at ``sample_rate`` (default: the source's rate), with the
    source's length. ``fmt`` ('wav', 'flac') overrides the extension. Progress is reported in
    seconds of audio. Returns the file's header.
    """
    with VqaReader(source) as reader:
        header = reader.header
        check_codec(header, codec, reader.name)
        rate = sample_rate or header.source_sample_rate
        target = round(header.source_num_samples * rate / header.source_sample_rate)
        target = max(target, 1)
        resampler = audio.StreamResampler(header.sample_rate, rate, header.channels)
        written = 0
        with audio.Writer(out, rate, header.channels, fmt=fmt) as writer:
            chunks = decode_chunks(reader, codec)
            for k, wav in enumerate(chunks):
                wav = resampler(wav.astype(np.float32), last=k == header.num_chunks - 1)
                wav = wav[:, : target - written]
                writer.write(wav)
                written += wav.shape[1]
                if on_progress:
                    on_progress(written / rate, target / rate)
            if written < target:  # resampling filters may come up a few samples short
                writer.write(np.zeros((header.channels, target - written), dtype=np.float32))
    return header
