"""compress(codec, audio file -> .vqa) and decompress(.vqa -> audio file), chunked, constant memory.

The top of the stack, read top-down: compress checks the source, asks ``rate`` for the levels to
keep, streams the codes out of ``streaming`` and writes them with ``bitstream``; decompress checks
that the codec is the file's (:func:`check_codec`, once), streams the audio back and resamples it
to the source's rate. The rooms below: ``rate`` (which levels fit a bitrate), ``streaming``
(chunked encoding/decoding with context margins), ``channels`` (mono, mid/side, separate),
``memory`` (returning freed heap to the OS), ``bitstream`` (the .vqa container).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from . import audio, rate, streaming
from .bitstream import VqaReader, VqaWriter, pack_chunk
from .checkpoint import accepts, checkpoint_id
from .config import CodecConfig
from .errors import AudioError, FormatError
from .header import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Header
from .rate import Plan
from .streaming import Progress


def compress(
    codec: torch.nn.Module,
    source: str | Path,
    out: str | Path,
    bitrate: float = rate.DEFAULT_BITRATE,
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
    info = _check_source(source)
    duration = info.num_samples / info.sample_rate
    fallback = rate.plan_levels(codec.config, info.channels, bitrate, duration)
    chunk_blocks = chunk_blocks or rate.chunk_blocks(codec.config)
    header = _header(codec, info, fallback, bitrate, entropy_coded, chunk_blocks)
    if not entropy_coded:
        return _write_plan(codec, source, out, header, on_progress, duration)
    return _write_fitting(codec, source, out, header, on_progress, duration, fallback)


def _check_source(source: str | Path) -> audio.AudioInfo:
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
    return info


def _header(
    codec: torch.nn.Module,
    info: audio.AudioInfo,
    plan: Plan,
    bitrate: float,
    entropy_coded: bool,
    chunk_blocks: int,
) -> Header:
    config: CodecConfig = codec.config
    coding, levels = plan
    return Header(
        codec_id=checkpoint_id(codec),
        code_space_id=codec.code_space_id,
        sample_rate=config.sample_rate,
        channels=info.channels,
        num_samples=max(1, round(info.num_samples * config.sample_rate / info.sample_rate)),
        source_sample_rate=info.sample_rate,
        source_num_samples=info.num_samples,
        hop_length=config.hop_length,
        codebook_size=config.codebook_size,
        level_strides=config.level_strides[: max(levels)],
        levels_per_channel=tuple(levels),
        channel_coding=coding,
        chunk_blocks=chunk_blocks,
        entropy_coder="context-range" if entropy_coded else "none",
        bitrate=float(bitrate),
    )


def _write_plan(
    codec: torch.nn.Module,
    source: str | Path,
    out: str | Path,
    header: Header,
    on_progress: Progress,
    duration: float,
) -> Header:
    """Encode ``source`` with the levels of ``header`` and write the file chunk by chunk."""
    entropy_coded = header.entropy_coder != "none"
    writer = VqaWriter(out, header)
    try:
        num_samples = 0
        chunks = streaming.encode_chunks(codec, source, header, on_progress, duration)
        for streams, num_samples in chunks:  # noqa: B007 (last value used below)
            writer.write_chunk(pack_chunk(streams, header, entropy_coded))
    except BaseException:
        writer.abort()
        raise
    return writer.close(num_samples=num_samples)


def _write_fitting(
    codec: torch.nn.Module,
    source: str | Path,
    out: str | Path,
    fallback_header: Header,
    on_progress: Progress,
    duration: float,
    fallback: Plan,
) -> Header:
    """Encode every level once, then write the most levels whose entropy-coded size fits."""
    config: CodecConfig = codec.config
    coding, channels = fallback[0], fallback_header.channels
    everything = [config.num_levels] * len(fallback[1])
    full = _with_plan(fallback_header, config, (coding, everything))
    chunks, num_samples = [], 0
    dtype = np.int16 if config.codebook_size <= 32768 else np.int32
    for streams, num_samples in streaming.encode_chunks(  # noqa: B007 (last value used below)
        codec, source, full, on_progress, duration
    ):
        chunks.append([s.astype(dtype) for s in streams])  # codes only: ~5 MB per hour of stereo
    budget = full.bitrate * duration / 8
    parents = full.stream_parents()
    costs = [rate.stream_costs(chunk, config.codebook_size, parents) for chunk in chunks]
    fitting = [
        plan
        for plan in rate.candidate_plans(config, channels, fallback)
        if rate.estimate_bytes(plan, everything, costs, channels) <= budget
    ]
    for plan in fitting or [fallback]:
        header = _with_plan(fallback_header, config, plan)
        writer = VqaWriter(out, header)
        try:
            for streams in chunks:
                wanted = rate.select_streams(streams, everything, plan[1])
                writer.write_chunk(pack_chunk(wanted, header, True))
        except BaseException:
            writer.abort()
            raise
        header = writer.close(num_samples=num_samples)
        if Path(out).stat().st_size <= budget or duration < rate.SHORT_SECONDS:
            break  # the estimate is conservative; a rare miss steps down to the next plan
    return header


def _with_plan(header: Header, config: CodecConfig, plan: Plan) -> Header:
    """``header`` with the levels of ``plan`` instead of its own."""
    coding, levels = plan
    return dataclasses.replace(
        header,
        channel_coding=coding,
        levels_per_channel=tuple(levels),
        level_strides=config.level_strides[: max(levels)],
    )


def check_codec(header: Header, codec: torch.nn.Module, name: str) -> None:
    """Refuse a codec of another code space than the file's, naming both ids and the fix.

    A file records its code space from format 4 on; an older one decodes with the codec that
    made it or with one that records that codec as of its code space (``codec_lineage``)."""
    have = checkpoint_id(codec)
    where = getattr(codec, "checkpoint_path", None) or "the given codec"
    if not accepts(codec, header.codec_id, header.code_space_id or None):
        if header.code_space_id:
            raise FormatError(
                f"{name} was made with codec {header.codec_id[:8]}… (code space "
                f"{header.code_space_id[:8]}…), but {where} is codec {have[:8]}… of code space "
                f"{codec.code_space_id[:8]}…; pass --codec with a codec of the file's code space"
            )
        raise FormatError(
            f"{name} was made with codec {header.codec_id[:8]}…, but {where} is {have[:8]}… "
            "and does not record it as one of its code space; pass --codec"
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
    """Yield the audio (source channels, t) at the codec's rate of chunks ``start:stop``, after
    checking that ``codec`` made the file (:func:`check_codec`); see ``streaming.decode_chunks``.
    """
    check_codec(reader.header, codec, reader.name)
    yield from streaming.decode_chunks(reader, codec, start, stop)


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
        out_rate = sample_rate or header.source_sample_rate
        target = round(header.source_num_samples * out_rate / header.source_sample_rate)
        target = max(target, 1)
        resampler = audio.StreamResampler(header.sample_rate, out_rate, header.channels)
        written = 0
        with audio.Writer(out, out_rate, header.channels, fmt=fmt) as writer:
            chunks = streaming.decode_chunks(reader, codec)  # checked above
            for k, wav in enumerate(chunks):
                wav = resampler(wav.astype(np.float32), last=k == header.num_chunks - 1)
                wav = wav[:, : target - written]
                writer.write(wav)
                written += wav.shape[1]
                if on_progress:
                    on_progress(written / out_rate, target / out_rate)
            if written < target:  # resampling filters may come up a few samples short
                writer.write(np.zeros((header.channels, target - written), dtype=np.float32))
    return header
