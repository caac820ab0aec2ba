"""compress(codec, audio file -> .vqa) and decompress(.vqa -> audio file), chunked, constant memory.

The API of the .vqa format, whose bytes are ``container`` (as encodec's compress.py is to its
binary.py). Read top-down: compress checks the source, asks ``rate`` for the levels to keep,
streams the codes out of ``streaming`` and writes them with ``container``; decompress checks that
the codec fits the file (:func:`check_codec`, once), streams the audio back and resamples it to
the source's rate. The rooms below: ``rate`` (which levels fit a bitrate), ``streaming`` (chunked
encoding/decoding with context margins), ``channels`` (mono, mid/side, separate), ``chunk`` (a
chunk's payload: band levels, bit packing, ``entropy`` coding), ``header`` and ``record``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..checkpoint import checkpoint_id
from ..codec import band_levels
from ..codec.code_space import check_compatible
from ..config import CodecConfig
from ..errors import AudioError, FormatError
from . import rate, streaming
from .channels import coded_channels
from .chunk import band_level_section, pack_chunk
from .container import VqaReader, VqaWriter
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
    with_band_levels: bool = True,
    band_resolution: str = "auto",
) -> Header:
    """Compress the audio file ``source`` into the .vqa file ``out`` (written atomically).

    With ``with_band_levels`` (and a decoder that uses them: the spectral one), each chunk also
    carries the input's band levels (``band_levels``, ~40-150 bits/s per coded channel), charged to
    the bitrate like the codes; the decoder scales its magnitudes to them. ``band_resolution``
    names their bands and span (``band_levels.RESOLUTIONS``); "auto" sends 16 bands unless that
    costs a code level that 4 bands keep (short files at low rates), then 4.

    ``bitrate`` is in bits/s (not kbps: the CLI's ``--bitrate 6`` is ``bitrate=6000``, the
    default of both) of the whole file, all channels and the container included. The codes of
    every level are computed once (~5 MB per hour of stereo); without entropy coding the file
    keeps the levels of the operating point that fits with the overhead charged, with entropy
    coding the most levels whose *coded* size fits the budget (a trained codec's codes are far
    from uniform, so this is often well above the nominal operating point). The lengths in the
    header are those of the samples decoded: a file's announced length only sizes the progress
    reports, in seconds of audio. Returns the header written.
    """
    info = _check_source(source)
    config: CodecConfig = codec.config
    coding = rate.plan_levels(config, info.channels, bitrate)[0]  # a bitrate too low fails now
    everything = [config.num_levels] * coded_channels(coding, info.channels)
    chunk_blocks = chunk_blocks or rate.chunk_blocks(config)
    full = _header(codec, info, (coding, everything), bitrate, entropy_coded, chunk_blocks)
    sends_levels = with_band_levels and getattr(codec.decoder, "takes_band_levels", False)
    names = [] if not sends_levels else [band_resolution]
    if band_resolution == "auto" and sends_levels:
        names = list(band_levels.AUTO_RESOLUTIONS)  # fine, coarse: both measured in one pass
    layouts = [
        (
            band_levels.band_edges(config.sample_rate, name),
            band_levels.span_blocks(config.block_samples, config.sample_rate, chunk_blocks, name),
        )
        for name in names
    ]
    measured, full = _encode_all_levels(codec, source, full, on_progress, info.duration, layouts)
    costs = None  # each chunk's code costs: the same codes whichever band levels go with them
    if entropy_coded:
        parents = full.stream_parents()
        costs = [rate.stream_costs(s, config.codebook_size, parents) for s, _ in measured]
    options = [
        _plan(config, info, bitrate, full, measured, costs, layout, i)
        for i, layout in enumerate(layouts)
    ] or [_plan(config, info, bitrate, full, measured, costs)]
    chunks, full, plans, fits = options[0]
    if len(options) == 2:  # auto: the fine levels unless they cost a code level or overrun
        free = _plan(config, info, bitrate, full, measured, costs)[2]  # the codes alone
        coarse = options[1]
        if not fits or (_kept(plans) < _kept(free) and _kept(coarse[2]) > _kept(plans)):
            chunks, full, plans, fits = coarse  # the coarse levels cost fewer bits
    budget = bitrate * full.duration / 8
    for plan in plans:
        header = _write(out, _with_plan(full, config, plan), chunks, everything)
        if not entropy_coded or full.duration < rate.SHORT_SECONDS:
            break
        if Path(out).stat().st_size <= budget:
            break  # the estimate is conservative; a rare miss steps down to the next plan
    return header


def _kept(plans: list[Plan]) -> int:
    """Code levels (over all channels) of the first plan that fits: the one written."""
    return sum(plans[0][1])


def _plan(
    config: CodecConfig,
    info: audio.AudioInfo,
    bitrate: float,
    full: Header,
    measured: list[tuple[list[np.ndarray], list[np.ndarray]]],
    costs: list | None,
    layout: tuple[tuple[int, ...], int] | None = None,
    which: int = 0,
) -> tuple[list, Header, list[Plan], bool]:
    """The chunks and header with the band levels of ``layout`` (the ``which``-th measured with
    each chunk; None: no band levels), the plans that fit ``bitrate`` with them charged, best
    first, and whether any is estimated to fit. ``costs``: each chunk's code costs for entropy
    coding (None: fixed-width codes, whose one plan always counts as fitting)."""
    edges, span = layout if layout is not None else ((), 0)
    full = dataclasses.replace(full, band_edges=edges, band_span_blocks=span)
    chunks = [(s, None if layout is None else levels[which]) for s, levels in measured]
    sections = sum(len(band_level_section(lv, full, len(s[0]))) for s, lv in chunks)
    fallback = rate.plan_levels(config, info.channels, bitrate, full.duration, sections)
    if costs is None:
        return chunks, full, [fallback], True
    budget = bitrate * full.duration / 8
    everything = [config.num_levels] * coded_channels(full.channel_coding, info.channels)
    fitting = [
        plan
        for plan in rate.candidate_plans(config, info.channels, fallback)
        if rate.estimate_bytes(plan, everything, costs, info.channels) + sections <= budget
    ]
    return chunks, full, fitting or [fallback], bool(fitting)


def _check_source(source: str | Path) -> audio.AudioInfo:
    info = audio.info(source)
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
    """The header of ``plan``, its lengths the announced ones until the samples are counted."""
    config: CodecConfig = codec.config
    coding, levels = plan
    source_num_samples = max(1, info.num_samples)
    return Header(
        codec_id=checkpoint_id(codec),
        code_space_id=codec.code_space_id,
        sample_rate=config.sample_rate,
        channels=info.channels,
        num_samples=max(1, round(source_num_samples * config.sample_rate / info.sample_rate)),
        source_sample_rate=info.sample_rate,
        source_num_samples=source_num_samples,
        hop_length=config.hop_length,
        codebook_size=config.codebook_size,
        level_strides=config.level_strides[: max(levels)],
        levels_per_channel=tuple(levels),
        channel_coding=coding,
        chunk_blocks=chunk_blocks,
        entropy_coder="context-range" if entropy_coded else "none",
        bitrate=float(bitrate),
    )


def _encode_all_levels(
    codec: torch.nn.Module,
    source: str | Path,
    header: Header,
    on_progress: Progress,
    duration: float,
    layouts: list[tuple[tuple[int, ...], int]],
) -> tuple[list[tuple[list[np.ndarray], list[np.ndarray]]], Header]:
    """((code streams, band levels of each of ``layouts``) of each chunk, ``header`` with the
    lengths of the samples decoded)."""
    config: CodecConfig = codec.config
    dtype = np.int16 if config.codebook_size <= 32768 else np.int32
    lengths = streaming.Lengths()
    chunks = [
        ([s.astype(dtype) for s in streams], levels)  # codes only: ~5 MB per hour of stereo
        for streams, levels in streaming.encode_chunks(
            codec, source, header, on_progress, duration, lengths, layouts
        )
    ]
    return chunks, dataclasses.replace(
        header,
        num_samples=lengths.num_samples,
        source_num_samples=lengths.source_num_samples,
    )


def _write(
    out: str | Path,
    header: Header,
    chunks: list[tuple[list[np.ndarray], np.ndarray | None]],
    stored: list[int],
) -> Header:
    """Write the levels of ``header`` out of ``chunks``, which hold ``stored`` levels each."""
    entropy_coded = header.entropy_coder != "none"
    writer = VqaWriter(out, header)
    try:
        for streams, levels in chunks:
            wanted = rate.select_streams(streams, stored, list(header.levels_per_channel))
            writer.write_chunk(pack_chunk(wanted, header, entropy_coded, levels))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


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
    """Refuse a codec of another code space than the file's, or one its header does not fit.

    A file records its code space from format 4 on; an older one decodes with the codec that
    made it or with one that records that codec as of its code space (``codec_lineage``)."""
    fields = {
        "sample_rate": header.sample_rate,
        "hop_length": header.hop_length,
        "codebook_size": header.codebook_size,
        "level_strides": header.level_strides,
    }
    made, fix = f"{name} was made with", "pass --codec with a codec of the file's code space"
    space = header.code_space_id or None
    check_compatible(codec, made, header.codec_id, space, fields, FormatError, fix)


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

    ``codec`` must be of the file's code space (else FormatError naming both ids). Writes the
    source's channel count at ``sample_rate`` Hz (default: the source's rate), with the
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
