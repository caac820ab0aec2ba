"""Sampling from a prior (temperature, top-k, top-p, seeded); ``generate``: prior -> codes -> wav.

Continuation: the prompt's last ``prompt_seconds`` (cut to whole coarse frames) are encoded and
their tokens become the initial context. The returned audio is the *decoded prompt codes*
followed by ``seconds`` of new audio, all decoded in one pass, so there is no seam between the
prompt and its continuation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..codes import Codes, token_levels
from ..errors import AudioError, CheckpointError, ConfigError
from ..margins import decoder_margin_blocks, with_margin
from .base import Prior

DECODE_CHUNK_BLOCKS = 750  # 60 s of the default codec per decoder call
# Griffin-Lim iterations that generated music is rendered with, or the codec's own if fewer (the
# shipped codec's own are 16, from the locked phase start). For a codec of 32 from zero phase, 8
# pieces of 30 s rendered both ways: chroma flux 0.321 against 0.319, chroma peak 2.81 against
# 2.83, and 40 % less decoding time (python benchmarks/generated_levels.py; docs/MODEL_CARD.md)
GENERATED_GRIFFIN_LIM_ITERS = 16
# generated pieces are scaled down, each as a whole, where their peak would pass this (-1 dBFS).
# A piece's level comes from its codes, and loud codes can decode past full scale: 8-10 of 48
# pieces of 30 s had more than 0.1 % of their samples past it (temperature 0.95 / 1), and one in
# 32 had 62 % of its samples clipped once written (docs/MODEL_CARD.md, session 18). Quieter
# pieces keep their level.
GENERATED_PEAK = 10 ** (-1 / 20)


TopK = int | None | Sequence[int | None]
TopP = float | None | Sequence[float | None]


def _values(value, name: str) -> list:
    """A single value (None included) as a list of one; a sequence as a list."""
    if value is None or isinstance(value, (int, float)):
        return [value]
    values = list(value)
    if not values:
        raise ConfigError(f"{name}: give one value, or one per level")
    return values


def parse_per_level(text: str, name: str, kind: type) -> int | float | None | tuple:
    """'0.98' or '0.9,0.98' (one value, or one per level: level 0 first) -> the value or a tuple,
    as ``sample_tokens`` takes them; a top-k (``kind`` int) of 0 means none."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        example = "0.9,0.98" if kind is float else "100,0"
        raise ConfigError(
            f"{name} {text}: give a number, or numbers per level separated by commas "
            f"(level 0 first, e.g. {example})"
        ) from None
    if kind is int:
        values = tuple(v or None for v in values)
    return values[0] if len(values) == 1 else values


def per_level(value, num_levels: int, name: str) -> list:
    """One setting per level from a single value (every level) or a sequence (level 0, 1, ...;
    the last value repeats for the finer levels)."""
    values = _values(value, name)
    return (values + values[-1:] * num_levels)[:num_levels]


def check_sampling(temperature: float, top_k: TopK, top_p: TopP) -> None:
    """Refuse a temperature <= 0, a top-k < 1 or a top-p outside (0, 1], at any level."""
    if not temperature > 0:
        raise ConfigError(f"temperature {temperature:g} must be > 0 (use top_k=1 for greedy)")
    for k in _values(top_k, "top_k"):
        if k is not None and k < 1:
            raise ConfigError(f"top_k {k} must be >= 1")
    for q in _values(top_p, "top_p"):
        if q is not None and not 0 < q <= 1:
            raise ConfigError(f"top_p {q:g} must be in (0, 1]")


# generate's nucleus mass per level (level 0 first, the last repeating) and its level-0 rule:
# the code of the frame before keeps the prior's probability, the nucleus chooses among the
# others. A plain nucleus at level 0 makes a long hold certain once the prior gives the held code
# more than top_p (exact hold against top-p 0.98 everywhere, the previous prior, 16 pieces: the
# longest hold 4.7 s against 10.6 s). Level 0's 0.8 was measured for the shipped prior (trained
# on its own context, 2026-12-06) on 32 pieces (benchmarks/generation_music.py --num 16, seeds 0
# and 100, docs/MODEL_CARD.md): level-0 codes/s 1.41 (real music 1.13, the previous prior at 0.9
# 1.42), where 0.9 visits 1.96, over the 1.5x floor; 0.7 gives 1.16 codes/s with a lower chroma
# peak and continuation margin.
DEFAULT_TOP_P = (0.8, 0.98)
# generate's temperature. On the prior shipped in session 18, with the defaults below, 48 pieces
# (benchmarks/generation_sweep.py, seeds 1000-1047) at 1 / 0.95 / 0.9: level-0 codes/s 1.34 /
# 1.11 / 0.95 (real music 1.13), chroma flux 0.295 / 0.186 / 0.205, chroma peak 3.03 / 3.15 /
# 2.96, drones 0 / 1 / 0. On the 32 pieces of benchmarks/generation_music.py, 0.95 against 1:
# flux 0.231 against 0.346 (real music 0.257), peak 3.05 against 2.61, continuation margin 0.41
# against 0.51 (real 0.65), no silent hole. (Without the hold cap, temperatures below 1 once fed
# the unigram cache until a piece stuck on one frame.)
DEFAULT_TEMPERATURE = 0.95
DEFAULT_EXACT_HOLD = True
# generate's contrast at level 0 (contrast_offsets). It was 0.3 for the session-16 prior (80
# pieces: chroma flux 0.351 against 0.451, chroma peak 2.18 against 2.00). On the prior shipped
# since session 18 (more music), 32 pieces at temperature 1 (benchmarks/generation_music.py
# --num 16, seeds 0 and 100, docs/MODEL_CARD.md): 0.3 gives more notes (chroma peak 2.96
# against 2.61) but one piece in 32 falls near-silent and stays there (a 2.85 s silent hole; the
# floor allows none over 0.5 s), and it visits 1.70 level-0 codes/s against 1.21 (real music
# 1.13). 0 has no hole over 0.1 s.
DEFAULT_CONTRAST = 0.0
# generate's cap on level 0's exact hold (sample_next's hold_cap). On its own pieces a prior is
# surer of a long hold than real music bears out (0.970 after 33+ frames against 0.946,
# benchmarks/hold_hazard.py), and that certainty is what drones. 0.93 was measured on the
# session-16 prior (80 pieces: 4 drones against 23 uncapped). On the prior shipped since session
# 18, 48 pieces at contrast 0 and temperature 1 (benchmarks/generation_sweep.py, seeds 1000-1047,
# docs/MODEL_CARD.md): 0 drones at 0.9 against 5 at 0.93, level-0 codes/s 1.34 against 1.25 (real
# music 1.13), chroma flux 0.295 against 0.284 and chroma peak 3.03 against 3.02 (within one
# standard error, 0.03 and 0.2).
DEFAULT_HOLD_CAP = 0.9


def check_cache_scale(prior: Prior, cache_scale: float) -> None:
    """A ``cache_scale`` other than 1 needs a prior with a unigram cache (``prior.code_counts``).

    generate keeps 1, as trained. On 16 pieces of the shipped prior (benchmarks/generation_music.py
    --cache-scale 0.8 0.6, docs/MODEL_CARD.md) a weaker cache ends the drones but the pieces
    wander: level 0 visits 3.8 / 5.6 codes/s at 0.8 / 0.6 (real music 1.1), chroma flux 0.70 /
    0.81 (0.42 at 1), and the continuation margin falls from 0.48 to 0.39 / 0.14."""
    if not (cache_scale >= 0 and math.isfinite(cache_scale)):
        raise ConfigError(f"cache_scale {cache_scale:g} must be a number >= 0")
    if cache_scale != 1.0 and not getattr(prior.config, "code_counts", 0):
        raise ConfigError(
            f"cache_scale {cache_scale:g} needs a frame prior with code_counts (a unigram cache); "
            f"this prior (kind {prior.config.kind}) has none: leave it at 1"
        )


def check_contrast(contrast: float) -> None:
    """Refuse a contrast that is not a finite number >= 0."""
    if not (contrast >= 0 and math.isfinite(contrast)):
        raise ConfigError(f"contrast {contrast:g} must be a number >= 0 (0: none)")


def check_hold_cap(hold_cap: float, exact_hold: bool) -> None:
    """Refuse a hold cap outside (0, 1], or below 1 without the exact hold (which it caps)."""
    if not 0 < hold_cap <= 1:
        raise ConfigError(f"hold_cap {hold_cap:g} must be in (0, 1] (1: none)")
    if hold_cap < 1 and not exact_hold:
        raise ConfigError(f"hold_cap {hold_cap:g} caps the exact hold: turn exact_hold on")


def contrast_offsets(prior: Prior, contrast: float, device: torch.device | str = "cpu") -> Tensor:
    """(tokens per frame, codebook) offsets added to each slot's logits while sampling: at level
    0's slots ``-contrast * log p(code | no context)``, the prior's own level-0 distribution with
    nothing before it; zero at the finer levels.

    Sampling then draws from p(code | piece) / p(code)^contrast (pointwise mutual information
    decoding, as in Li et al. 2016's anti-LM and Shi et al. 2023's context-aware decoding): a
    code the piece makes likely keeps its chance, a code likely anywhere loses some. The codes
    likely anywhere are the codec's generic, pitchless textures: held alone for 2 s, most of the
    20 most frequent level-0 codes of the training music have a chroma peak of 1.2-1.7 where the
    mean code has 3.0, and the shipped prior's own pieces used them far more than real music
    does (benchmarks/tonal_probe.py --code-peaks, docs/MODEL_CARD.md)."""
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


def _truncate(logits: Tensor, top_k: int | None, top_p: float | None) -> Tensor:
    """Logits (B, V) with all but the top-k, then all but the top-p nucleus, set to -inf."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # mass before a token already exceeds top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    held: Tensor | None = None,
    offset: Tensor | None = None,
    hold_cap: float = 1.0,
) -> Tensor:
    """Draw one token per row of logits (B, V) -> (B,) after temperature, ``offset`` (V,) added
    (the contrast, ``contrast_offsets``), top-k, then top-p.

    With a list of B generators, row b draws from generator b alone, so a row's sample does not
    depend on the other rows of the batch. With ``held`` (B,) ids, each row's held id keeps its
    probability after the temperature, and the offset, top-k and top-p choose among the other
    ids only. A nucleus never makes a hold certain: a plain one leaves only the held id once the
    prior gives it more than top_p; nor does the contrast make a hold likelier than the prior
    says (it would raise the hold of every rare code). ``hold_cap``: the held id's probability
    is at most this; the rest goes to the others.
    """
    logits = logits / temperature if temperature != 1.0 else logits
    truncating = (top_k is not None and top_k < logits.shape[-1]) or (
        top_p is not None and top_p < 1.0
    )
    if held is not None and (truncating or offset is not None or hold_cap < 1):
        rows = torch.arange(logits.shape[0], device=logits.device)
        p_held = torch.softmax(logits, dim=-1)[rows, held].clamp(max=hold_cap)
        shifted = logits if offset is None else logits + offset
        others = shifted.index_put((rows, held), logits.new_tensor(float("-inf")))
        probs = torch.softmax(_truncate(others, top_k, top_p), dim=-1) * (1 - p_held)[:, None]
        probs = probs.index_put((rows, held), p_held)
    else:
        shifted = logits if offset is None else logits + offset
        probs = torch.softmax(_truncate(shifted, top_k, top_p), dim=-1)
    return draw(probs, uniforms(generator, probs.shape[0], 1, probs.device)[:, 0])


def uniforms(
    generator: torch.Generator | list[torch.Generator] | None, rows: int, count: int, device
) -> Tensor:
    """(rows, count) uniform numbers in [0, 1): row b from generator b where a list is given (so a
    row's draws do not depend on the other rows), else all from the one generator. A row's
    ``count`` numbers are those of ``count`` calls for one each (CPU generator)."""
    if isinstance(generator, list):
        return torch.stack([torch.rand(count, generator=g, device=device) for g in generator])
    return torch.rand(rows, count, generator=generator, device=device)


def draw(probs: Tensor, uniform: Tensor) -> Tensor:
    """The inverse-CDF draw: per row of probs (B, V) (not necessarily normalised), the first id
    whose running sum (in float64, in id order) exceeds ``uniform`` (B,) times the row's total.
    The C sampler (``_depth.c``) draws the same way, so both paths give the same tokens."""
    cdf = probs.double().cumsum(-1)
    target = uniform.double() * cdf[:, -1]
    index = (cdf <= target[:, None]).sum(-1)
    last = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(-1)  # the last possible id
    return torch.minimum(index, last)


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


def sample_tokens(
    prior: Prior,
    num_tokens: int,
    prompt: Tensor,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: TopK = None,
    top_p: TopP = None,
    on_progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
    num_threads: int | None = 1,
    cache_scale: float = 1.0,
    exact_hold: bool = False,
    contrast: float = 0.0,
    hold_cap: float = 1.0,
    controls: Tensor | None = None,
    guidance: float = 1.0,
) -> Tensor:
    """Continue ``prompt`` (B, P) token ids (P may be 0) by ``num_tokens`` -> (B, P + num_tokens).

    ``controls`` (B, F, C): per-frame controls of a prior trained with them, frames 0.. of the
    prompt and the new tokens (``vqaudio.controls``). ``guidance`` g > 1 samples from
    u + g (c - u), the logits with (c) and without (u) the controls (classifier-free guidance,
    per token in PyTorch; 1: the controlled logits alone).

    ``exact_hold``: at level 0, the code of the frame before keeps the prior's probability and
    top-k / top-p choose among the other codes (``sample_next``'s ``held``), so a nucleus never
    makes a hold certain (see DEFAULT_EXACT_HOLD).

    ``top_k`` and ``top_p`` are one value for every level, or one per level (level 0 first; the
    last repeats): e.g. ``top_p=(1.0, 0.98)`` leaves level 0 untruncated (see DEFAULT_TOP_P).

    ``cache_scale`` multiplies a frame prior's unigram-cache gates while sampling (1: as trained;
    below 1 the piece's own earlier codes pull less: fewer drones, more wandering; see
    ``check_cache_scale``).

    ``contrast``: level 0 draws from p(code | piece) / p(code | no context)^contrast
    (``contrast_offsets``; 0: the prior as it is).

    ``hold_cap`` (with ``exact_hold``): at level 0, the code of the frame before keeps at most
    this probability (1: the prior's own).

    Same seed, device and inputs give the same tokens; the cached and uncached paths see the
    same windows. Row b draws from its own generator seeded ``seed + b``, so row b of a batch is
    the row 0 of a batch of one with seed ``seed + b``. Progress is reported once per block. On
    CPU, sampling runs with ``num_threads`` intra-op threads (None: torch's current setting),
    restored afterwards.
    """
    check_sampling(temperature, top_k, top_p)
    check_cache_scale(prior, cache_scale)
    check_contrast(contrast)
    check_hold_cap(hold_cap, exact_hold)
    scaled = {} if cache_scale == 1.0 else {"cache_scale": cache_scale}
    batch, start = prompt.shape
    device = prompt.device
    generator = [torch.Generator(device=device).manual_seed(seed + b) for b in range(batch)]
    tokens = torch.empty(batch, start + num_tokens, dtype=torch.long, device=device)
    tokens[:, :start] = prompt
    every = prior.config.tokens_per_block
    levels = token_levels(prior.config.level_strides).tolist()  # each slot's level
    num_levels = prior.config.num_levels
    slot_k = [per_level(top_k, num_levels, "top_k")[level] for level in levels]
    slot_p = [per_level(top_p, num_levels, "top_p")[level] for level in levels]
    # A cached step is ~100 ops on vectors of a few hundred numbers: a thread pool costs more
    # hand-offs than it saves, and where cores are shared a pool waits for descheduled
    # workers (measured: 2 threads 8-10x slower than 1 on a loaded 2-core machine).
    threads = num_threads if device.type == "cpu" else None
    end = start + num_tokens
    with _intra_op_threads(threads), torch.inference_mode():
        shift = contrast_offsets(prior, contrast, device) if contrast else None
        if controls is not None:
            scaled["controls"] = controls.to(device)
        guided = controls is not None and guidance != 1.0
        stream = prior.stream(prompt, **scaled) if use_cache else None
        free = None
        if guided:
            free = {**scaled, "controls": torch.zeros_like(scaled["controls"])}
            free = prior.stream(prompt, **free) if use_cache else free
        fast = None if guided else _fast_frames(prior, stream, start, num_tokens)
        if fast is not None:
            settings = (
                torch.full((every,), float(temperature)),
                torch.tensor([k or 0 for k in slot_k], dtype=torch.int32),
                torch.tensor([1.0 if q is None else q for q in slot_p], dtype=torch.float32),
            )
            hold_slots = torch.tensor([exact_hold and level == 0 for level in levels])
            offsets = torch.tensor([lo for lo, _ in prior.slot_ranges])
        i = start
        while fast is not None and i < end:  # whole frames in C (fast_depth)
            held = torch.full((batch, every), -1, dtype=torch.long)
            if i >= every:
                held = torch.where(hold_slots, tokens[:, i - every : i].cpu() - offsets, held)
            draws = uniforms(generator, batch, every, device).cpu()
            frame = stream.sample_frame(
                fast, draws, held, settings, last=i + every == end, offset=shift, hold_cap=hold_cap
            )
            tokens[:, i : i + every] = frame.to(device)
            i += every
            if on_progress is not None:
                on_progress(i - start, num_tokens)
        first = i
        for i in range(first, end):
            slot = i % every
            lo, hi = prior.slot_ranges[slot]  # only the next level's ids can follow
            if stream is not None:
                logits = stream.slot_logits((lo, hi))
            else:
                logits = prior.next_logits(tokens[:, :i], **scaled)[:, lo:hi]
            if guided:
                if use_cache:
                    plain = free.slot_logits((lo, hi))
                else:
                    plain = prior.next_logits(tokens[:, :i], **free)[:, lo:hi]
                logits = plain + guidance * (logits - plain)
            held = None
            if exact_hold and levels[slot] == 0 and i >= every:
                held = tokens[:, i - every] - lo  # the same slot one frame earlier
            offset = None if shift is None or levels[slot] else shift[slot]
            token = sample_next(
                logits, temperature, slot_k[slot], slot_p[slot], generator, held, offset, hold_cap
            )
            token = token + lo
            tokens[:, i] = token
            if stream is not None and i + 1 < start + num_tokens:
                stream.push(token)
                if guided:
                    free.push(token)
            done = i + 1 - start
            if on_progress is not None and (done % every == 0 or done == num_tokens):
                on_progress(done, num_tokens)
    return tokens


def _fast_frames(prior: Prior, stream, start: int, num_tokens: int):
    """A ``fast_depth.FastFrames`` where whole frames can be sampled in C: a frame prior's stream
    on the CPU (float32, the library built), starting at a frame's first slot and asked for
    whole frames; else None."""
    from .fast_depth import fast_frames

    every = prior.config.tokens_per_block
    if stream is None or not hasattr(stream, "sample_frame") or start % every or num_tokens % every:
        return None
    return fast_frames(prior)


def check_compatible(prior: Prior, codec) -> None:
    """Refuse a prior of another code space than the codec's (``checkpoint.accepts``: the code
    space when the prior records it, else its codec's id), or whose levels or codebook do not
    fit the codec's."""
    from ..checkpoint import accepts

    codec_id, space = getattr(prior, "codec_id", None), getattr(prior, "code_space_id", None)
    if not accepts(codec, codec_id, space):
        recorded = f"code space {space}" if space else f"codec {codec_id}"
        raise CheckpointError(
            f"prior was trained on {recorded}, but the codec has code space "
            f"{codec.code_space_id} (id {getattr(codec, 'checkpoint_id', '?')}); "
            "use the codec the prior was trained on"
        )
    p, c = prior.config, codec.config
    if (
        p.codebook_size != c.codebook_size
        or tuple(p.level_strides) != c.level_strides[: p.num_levels]
    ):
        raise CheckpointError(
            f"prior (codebook_size {p.codebook_size}, level_strides {list(p.level_strides)}) "
            f"does not fit codec (codebook_size {c.codebook_size}, "
            f"level_strides {list(c.level_strides)}); "
            "use the codec the prior was trained on"
        )


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


def generate(
    prior: Prior,
    codec,
    seconds: float,
    n: int = 1,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: TopK = None,
    top_p: TopP = None,
    prompt_wav: Tensor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
    prompt_seconds: float | None = None,
    griffin_lim_iters: int | None = GENERATED_GRIFFIN_LIM_ITERS,
    cache_scale: float = 1.0,
    exact_hold: bool = False,
    contrast: float = 0.0,
    hold_cap: float = 1.0,
) -> Tensor:
    """Sample ``n`` pieces of music -> wav (n, C, T) at ``codec.sample_rate``.

    Without a prompt T = round(seconds * sample_rate). With ``prompt_wav`` (C, T) at the codec's
    rate, its last ``prompt_seconds`` (None: all of it), cut to whole coarse frames, are encoded
    and continued: T = that prompt length + round(seconds * sample_rate), the output starting with
    the decoded prompt codes. A piece whose peak would pass GENERATED_PEAK (-1 dBFS) is scaled
    down to it as a whole, prompt included (``fit_peak``). ``on_progress(done, total)`` counts
    generated tokens. A spectral codec renders with ``griffin_lim_iters`` Griffin-Lim
    iterations, or its own count where that is lower (None: its own). ``cache_scale``,
    ``exact_hold``, ``contrast``, ``hold_cap``: as ``sample_tokens``.
    """
    if not seconds > 0 or not math.isfinite(seconds):
        raise ConfigError(f"seconds {seconds:g} must be a positive number")
    if n < 1:
        raise ConfigError(f"n {n} must be >= 1")
    check_compatible(prior, codec)
    check_cache_scale(prior, cache_scale)
    check_contrast(contrast)
    check_hold_cap(hold_cap, exact_hold)
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
    tokens = sample_tokens(
        prior,
        new_blocks * config.tokens_per_block,
        prompt,
        seed,
        temperature,
        top_k,
        top_p,
        on_progress,
        use_cache,
        cache_scale=cache_scale,
        exact_hold=exact_hold,
        contrast=contrast,
        hold_cap=hold_cap,
    )
    codes = Codes.from_tokens(
        tokens, config.level_strides, config.codebook_size, prompt_samples + new_samples
    )
    codec_device = next(codec.parameters()).device
    with torch.inference_mode():
        wav = decode_codes(codec, codes.to(codec_device), griffin_lim_iters=griffin_lim_iters)
    return fit_peak(wav)


def fit_peak(wav: Tensor, peak: float = GENERATED_PEAK) -> Tensor:
    """wav (B, C, T) with each item whose absolute peak passes ``peak`` scaled down to it."""
    top = wav.abs().amax(dim=tuple(range(1, wav.dim())), keepdim=True)
    return wav * torch.where(top > peak, peak / top.clamp_min(1e-12), torch.ones_like(top))
