"""Generation: prompt -> tokens -> audio.

``generate`` encodes a prompt's end (if any) to tokens, continues them with a prior under one
``Sampling`` (``SHIPPED`` unless told otherwise, as ``vqaudio generate``), and decodes the
tokens in chunks. With a prompt the output is the *decoded prompt codes* followed by the new
audio, decoded in one pass, so there is no seam between the prompt and its continuation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .codec.code_space import check_compatible as check_compatible_codec
from .codec.margins import decoder_margin_blocks, with_margin
from .codes import Codes, token_levels
from .controls.requests import Request, controls_for
from .errors import AudioError, CheckpointError, ConfigError
from .prior.base import Prior
from .prior.frame_controls import chord_ids
from .prior.frame_loop import frame_loop
from .prior.sampling import SHIPPED, Sampling, draw, probabilities, uniforms

DECODE_CHUNK_BLOCKS = 750  # 60 s of the default codec per decoder call: bounded memory
# Griffin-Lim iterations for generated music (or the codec's own, if fewer): the same chroma as
# 32 in 40 % less decoding time (docs/MODEL_CARD.md, Generation table)
GENERATED_GRIFFIN_LIM_ITERS = 16
# a piece whose peak would pass -1 dBFS is scaled down as a whole: loud codes can decode past
# full scale (docs/MODEL_CARD.md, Generation table)
GENERATED_PEAK = 10 ** (-1 / 20)

ProgressCallback = Callable[[int, int], None]


def check_compatible(prior: Prior, codec) -> None:
    """Refuse a codec of another code space than the prior's, or whose levels or codebook do
    not fit it (``codec.code_space.check_compatible``, the one check compress shares)."""
    path = getattr(prior, "checkpoint_path", None)
    made = f"{path.name}: prior was trained on" if path is not None else "prior was trained on"
    fix = "pass --codec with a codec of the prior's code space"
    if getattr(prior, "codec_path", None) is not None:
        fix += f" (it recorded {prior.codec_path})"
    config = prior.config
    fields = {"codebook_size": config.codebook_size, "level_strides": tuple(config.level_strides)}
    codec_id, space = getattr(prior, "codec_id", None), getattr(prior, "code_space_id", None)
    check_compatible_codec(codec, made, codec_id, space, fields, CheckpointError, fix)


def check_sampling_fits(prior: Prior, sampling: Sampling) -> None:
    """Refuse a ``cache_scale`` other than 1 for a prior without a unigram cache."""
    if sampling.cache_scale != 1.0 and not getattr(prior.config, "code_counts", 0):
        raise ConfigError(
            f"cache_scale {sampling.cache_scale:g} needs a frame prior with code_counts (a "
            f"unigram cache); this prior (kind {prior.config.kind}) has none: leave it at 1"
        )


def generate(
    prior: Prior,
    codec,
    seconds: float,
    n: int = 1,
    seed: int = 0,
    sampling: Sampling = SHIPPED,
    prompt_wav: Tensor | None = None,
    prompt_seconds: float | None = 10.0,
    on_progress: ProgressCallback | None = None,
    use_cache: bool = True,
    griffin_lim_iters: int | None = GENERATED_GRIFFIN_LIM_ITERS,
    request: Request | None = None,
    on_plan: Callable[[list[str]], None] | None = None,
) -> Tensor:
    """Sample ``n`` pieces of music -> wav (n, C, T) at ``codec.sample_rate``, as ``vqaudio
    generate`` does (its defaults; ``sampling``: how tokens are drawn, ``SHIPPED`` by default).

    A prior trained with controls follows ``request`` (a tempo, chords, a reference's beat and
    chords; ``controls.requests``); with nothing asked, each piece follows a plan sampled from
    its training music's statistics, and a continuation carries on its prompt's beat grid.
    ``on_plan`` receives each piece's plan as the options that ask for it again. A prior
    without controls refuses a request (ConfigError).

    Without a prompt T = round(seconds * sample_rate). With ``prompt_wav`` (C, T) at the codec's
    rate, its last ``prompt_seconds`` (None: all of it), cut to whole coarse frames, are encoded
    and continued: T = that prompt length + round(seconds * sample_rate), the output starting
    with the decoded prompt codes. Piece i is drawn with seed ``seed + i``. A piece whose peak
    would pass -1 dBFS is scaled down to it as a whole (``fit_peak``). ``on_progress(done,
    total)`` counts generated tokens. A spectral codec renders with ``griffin_lim_iters``
    Griffin-Lim iterations, or its own count where that is lower (None: its own).
    """
    if not seconds > 0 or not math.isfinite(seconds):
        raise ConfigError(f"seconds {seconds:g} must be a positive number")
    if n < 1:
        raise ConfigError(f"n {n} must be >= 1")
    check_compatible(prior, codec)
    if griffin_lim_iters is not None:
        griffin_lim_iters = min(griffin_lim_iters, codec.config.griffin_lim_iters)
    config = prior.config
    device = prior.level_mask.device
    new_samples = round(seconds * codec.config.sample_rate)
    new_blocks = math.ceil(new_samples / codec.config.block_samples)
    prompt_samples, prompt = 0, torch.zeros(n, 0, dtype=torch.long, device=device)
    if prompt_wav is not None:
        codes = encode_prompt(codec, prompt_wav, config.num_levels, prompt_seconds)
        prompt_samples = codes.num_samples
        prompt = codes.to_tokens(config.codebook_size).to(device).expand(n, -1)
    num_tokens = new_blocks * config.tokens_per_block
    used = None if prompt_wav is None else prompt_wav[:, prompt_wav.shape[-1] - prompt_samples :]
    controls, plans = piece_controls(
        prior, codec, request or Request(), seconds, n, seed, prompt.shape[1], new_blocks, used
    )
    if on_plan is not None and plans:
        on_plan(plans)
    tokens = sample_tokens(
        prior,
        num_tokens,
        prompt,
        sampling,
        seed,
        on_progress=on_progress,
        use_cache=use_cache,
        controls=controls,
    )
    codes = Codes.from_tokens(
        tokens, config.level_strides, config.codebook_size, prompt_samples + new_samples
    )
    codec_device = next(codec.parameters()).device
    with torch.inference_mode():
        wav = decode_codes(codec, codes.to(codec_device), griffin_lim_iters=griffin_lim_iters)
    return fit_peak(wav)


def piece_controls(prior, codec, request, seconds, n, seed, prompt_tokens, new_blocks, prompt_wav):
    """Per-frame controls (n, F, C) for pieces seeded seed .. seed + n - 1 and their plans, or
    (None, []) for a prior without controls (which refuses a request)."""
    config = codec.config
    frame_seconds = config.block_samples / config.sample_rate
    num_frames = prompt_tokens // prior.config.tokens_per_block + new_blocks
    prompt = None
    if prompt_wav is not None:
        prompt = (prompt_wav.float().mean(0).cpu().numpy(), config.sample_rate)
    total = num_frames * frame_seconds
    seeds = [seed + i for i in range(n)]
    controls, plans = controls_for(prior, request, total, frame_seconds, num_frames, seeds, prompt)
    device = prior.level_mask.device
    return (None if controls is None else controls.to(device)), plans


def encode_prompt(
    codec, prompt_wav: Tensor, num_levels: int, prompt_seconds: float | None
) -> Codes:
    """The last ``prompt_seconds`` of prompt_wav (C, T), cut to whole blocks, as Codes (B=1)."""
    config = codec.config
    if prompt_wav.dim() != 2 or prompt_wav.shape[0] != config.channels:
        raise AudioError(
            f"prompt has shape {tuple(prompt_wav.shape)}; expected ({config.channels}, samples) at "
            f"{config.sample_rate} Hz"
        )
    block = config.block_samples
    limit = (
        prompt_wav.shape[-1]
        if prompt_seconds is None
        else round(prompt_seconds * config.sample_rate)
    )
    length = min(limit, prompt_wav.shape[-1]) // block * block
    if length == 0:
        raise AudioError(
            f"prompt is shorter than one coarse frame ({1000 * block / config.sample_rate:g} ms); "
            "give a longer prompt or a larger prompt_seconds"
        )
    wav = prompt_wav[None, :, prompt_wav.shape[-1] - length :]
    param = next(codec.parameters())
    return codec.encode(wav.to(param.device, param.dtype)).keep(num_levels)


def sample_tokens(
    prior: Prior,
    num_tokens: int,
    prompt: Tensor,
    sampling: Sampling = Sampling(),  # noqa: B008 (frozen)
    seed: int = 0,
    on_progress: ProgressCallback | None = None,
    use_cache: bool = True,
    num_threads: int | None = 1,
    controls: Tensor | None = None,
) -> Tensor:
    """Continue ``prompt`` (B, P) token ids (P may be 0) by ``num_tokens`` -> (B, P + num_tokens),
    drawn by ``sampling`` (default: plain sampling from the prior as it is). ``controls`` (B, F,
    C): per-frame controls of a prior trained with them, from the prompt's first frame on.

    Same seed, device and inputs give the same tokens; the cached, uncached and C loops see the
    same windows and draw the same. Row b draws from its own generator seeded ``seed + b``, so row
    b of a batch is row 0 of a batch of one with seed ``seed + b``. Progress is reported once per
    frame. On CPU, sampling runs with ``num_threads`` intra-op threads (None: torch's setting).
    """
    check_sampling_fits(prior, sampling)
    batch, start = prompt.shape
    device = prompt.device
    generators = [torch.Generator(device=device).manual_seed(seed + b) for b in range(batch)]
    tokens = torch.empty(batch, start + num_tokens, dtype=torch.long, device=device)
    tokens[:, :start] = prompt
    every = prior.config.tokens_per_block
    scaled = {} if sampling.cache_scale == 1.0 else {"cache_scale": sampling.cache_scale}
    # a cached step is ~100 ops on small vectors: a thread pool costs more hand-offs than it
    # saves, and where cores are shared a pool waits for descheduled workers
    threads = num_threads if device.type == "cpu" else None
    with _intra_op_threads(threads), torch.inference_mode():
        shift = contrast_offsets(prior, sampling.contrast, device) if sampling.contrast else None
        if controls is not None:  # the terms are linear in them: scaled terms, scaled controls
            controls = controls.to(device)
            scaled["controls"] = controls * sampling.control_scale
            if sampling.cache_by_chord and getattr(prior.config, "code_counts", 0):
                # a continuation recalls its prompt under every chord
                scaled["chords"] = chord_ids(controls, start // every)
                scaled["forget"] = sampling.cache_by_chord
        free = None  # the same, without controls (classifier-free guidance)
        if controls is not None and sampling.guidance != 1.0:
            free = {**scaled, "controls": torch.zeros_like(scaled["controls"])}
        stream = prior.stream(prompt, **scaled) if use_cache else None
        whole_frames = start % every == 0 and num_tokens % every == 0
        loop = None
        if stream is not None and whole_frames and free is None:
            loop = frame_loop(prior, sampling)
        if loop is not None:
            loop.sample(stream, tokens, start, generators, shift, on_progress)
        else:
            streams = (
                stream,
                None if free is None or not use_cache else prior.stream(prompt, **free),
            )
            _token_loop(
                prior,
                tokens,
                start,
                sampling,
                generators,
                streams,
                shift,
                on_progress,
                scaled,
                free,
            )
    return tokens


def _logits(prior, tokens, i, ids, stream, given) -> Tensor:
    """The next token's logits over ids (lo, hi): from the stream, or recomputed."""
    if stream is not None:
        return stream.slot_logits(ids)
    return prior.next_logits(tokens[:, :i], **given)[:, ids[0] : ids[1]]


def _token_loop(
    prior, tokens, start, sampling, generators, streams, shift, on_progress, given, free
) -> None:
    """Fill ``tokens`` (B, N) from ``start`` one token at a time, in PyTorch; ``streams``: the
    stream (or None: recompute) and, with guidance, the stream without controls. Nothing per
    token waits for the device or sends it host numbers: the uniform numbers come once per frame
    (on a CPU generator the numbers one per token would give, as the C loop draws them), and
    what the host decides depends on the position alone."""
    every, end = prior.config.tokens_per_block, tokens.shape[1]
    levels = token_levels(prior.config.level_strides).tolist()  # each slot's level
    top_k, top_p = sampling.per_level(prior.config.num_levels)
    stream, plain_stream = streams
    for i in range(start, end):
        slot = i % every
        if slot == 0 or i == start:  # the uniform numbers of the rest of the frame
            first, count = i, min(every - slot, end - i)
            draws = uniforms(generators, tokens.shape[0], count, tokens.device)
        lo, hi = prior.slot_ranges[slot]  # only the next level's ids can follow
        logits = _logits(prior, tokens, i, (lo, hi), stream, given)
        if free is not None:
            plain = _logits(prior, tokens, i, (lo, hi), plain_stream, free)
            logits = plain + sampling.guidance * (logits - plain)
        level = levels[slot]
        held = None
        if sampling.exact_hold and level == 0 and i >= every:
            held = tokens[:, i - every] - lo  # the same slot one frame earlier
        offset = None if shift is None or level else shift[slot]
        probs = probabilities(
            logits,
            sampling.temperature,
            top_k[level],
            top_p[level],
            held,
            offset,
            sampling.hold_cap,
        )
        token = draw(probs, draws[:, i - first]) + lo
        tokens[:, i] = token
        if stream is not None and i + 1 < end:
            stream.push(token)
            if plain_stream is not None:
                plain_stream.push(token)
        done = i + 1 - start
        if on_progress is not None and (done % every == 0 or i + 1 == end):
            on_progress(done, end - start)


def contrast_offsets(prior: Prior, contrast: float, device: torch.device | str = "cpu") -> Tensor:
    """(tokens per frame, codebook) offsets added to each slot's logits while sampling: at level
    0's slots ``-contrast * log p(code | no context)``, the prior's own level-0 distribution with
    nothing before it; zero at the finer levels.

    Sampling then draws from p(code | piece) / p(code)^contrast (pointwise mutual information
    decoding, as in Li et al. 2016's anti-LM): a code the piece makes likely keeps its chance,
    a code likely anywhere (the codec's generic, pitchless textures) loses some."""
    levels = token_levels(prior.config.level_strides)
    size = prior.config.codebook_size
    offsets = torch.zeros(len(levels), size, device=device)
    if contrast == 0:
        return offsets
    with torch.inference_mode():
        stream = prior.stream(torch.zeros(1, 0, dtype=torch.long, device=device))
        lo, hi = prior.slot_ranges[0]
        free = torch.log_softmax(stream.slot_logits((lo, hi))[0].float(), dim=-1)
    offsets[levels == 0] = -contrast * free
    return offsets


@contextlib.contextmanager
def _intra_op_threads(num_threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``num_threads`` (None: unchanged), then restored."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def decode_codes(
    codec,
    codes: Codes,
    chunk_blocks: int = DECODE_CHUNK_BLOCKS,
    margin_blocks: int | None = None,
    griffin_lim_iters: int | None = None,
) -> Tensor:
    """Codes -> wav (B, C, num_samples), in chunks of ``chunk_blocks`` coarse frames with
    ``margin_blocks`` (default: the decoder's reach, ``margins.decoder_margin_blocks``) of
    neighbouring codes decoded on each side and cropped away, so memory stays bounded on long
    outputs and chunk edges leave no seam (the decoder is convolutional). A spectral decoder
    renders with ``griffin_lim_iters`` (None: the codec's own; ``Codec.decode``)."""
    if codes.num_blocks <= chunk_blocks:
        return codec.decode(codes, griffin_lim_iters=griffin_lim_iters)
    if margin_blocks is None:
        margin_blocks = decoder_margin_blocks(codec.config)
    block = codec.config.block_samples
    parts = []
    for first in range(0, codes.num_blocks, chunk_blocks):
        lo, hi = with_margin(first, first + chunk_blocks, margin_blocks, codes.num_blocks)
        wav = codec.decode(
            codes.slice_blocks(lo, hi), griffin_lim_iters=griffin_lim_iters, offset_blocks=lo
        )
        count = min(chunk_blocks, codes.num_blocks - first)  # this chunk's own blocks
        parts.append(wav[..., (first - lo) * block : (first - lo + count) * block])
    wav = torch.cat(parts, dim=-1)
    return wav[..., : codes.num_samples] if codes.num_samples is not None else wav


def fit_peak(wav: Tensor, peak: float = GENERATED_PEAK) -> Tensor:
    """wav (B, C, T) with each item whose absolute peak passes ``peak`` scaled down to it."""
    top = wav.abs().amax(dim=tuple(range(1, wav.dim())), keepdim=True)
    return wav * torch.where(top > peak, peak / top.clamp_min(1e-12), torch.ones_like(top))
