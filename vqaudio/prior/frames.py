"""Frame prior: a temporal transformer over coarse frames and a depth transformer within a frame.

As in RQ-Transformer (Lee et al. 2022) and Moshi's Depformer: one *frame* (block) of the flatten
order holds ``tokens_per_block`` tokens (12 for the default codec's first 5 levels, 80 ms). The
temporal transformer (``dim`` x ``num_layers``) runs once per frame over the whole window, so
``context_blocks`` frames of context (30 s = 375 frames) cost what 375 tokens cost the flat
prior. Its input at frame f is the concatenated embeddings of frame f - 1's tokens, projected to
``dim`` (a learned start vector at the window's first frame); its output h_f conditions the
depth transformer (``depth_dim`` x ``depth_layers``), which predicts frame f's tokens one after
another: depth position j sees W h_f + the slot's embedding + the embedding of token j - 1 (a
learned start embedding at j = 0) + the embedding of frame f - 1's token at slot j, causally within
the frame. Each slot's logits cover its level's codebook only, as for every prior
(:mod:`vqaudio.prior.base`).

With ``code_counts`` N > 0, each slot's logits also add g_all * log(1 + count) + g_recent *
log(1 + recent count) of every code, counted over the window's earlier frames and over its last N
frames, with the two gates computed from the depth output (a unigram cache, Kuhn & De Mori 1990).

Windows slide as the flat transformer's do (``Prior.window_start``), so past ``context_blocks``
the window keeps its latest half; the stream rebuilds the temporal cache then.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..codes import token_levels
from ..config import PriorConfig
from .base import Prior
from .frame_controls import (
    PROMPT_CHORD,
    add_controls,
    control_terms,
    parameter_groups,
    window_controls,
    window_rows,
)
from .frame_stream import FrameStream, per_frame_counts
from .transformer import Block, _init_weights, _rotary_table

COUNT_GATE_INIT = (0.6, 0.4)  # (g_all, g_recent) before training


def code_counts(
    frames: Tensor,
    vocab_size: int,
    recent: int,
    chords: Tensor | None = None,
    forget: float = 1.0,
) -> Tensor:
    """frames (B, F, P) token ids -> (B, F, 2, vocab_size): the count of each id over frames
    0..f-1, and over frames f-recent..f-1, at frame f (whole numbers: exact in float). With
    ``chords`` (B, F) (``frame_controls.chord_ids``), the first count takes the earlier frames
    of another chord than frame f's at weight 1 - ``forget``: the cache recalls what the piece
    played under this chord, and lets go of the rest; the recent count keeps them all (a change
    of chord is no break). Frames of ``PROMPT_CHORD`` (a prompt) count under every chord."""
    count = frames.shape[1]
    per_frame = per_frame_counts(frames, vocab_size)
    before = torch.zeros_like(per_frame)
    before[:, 1:] = per_frame[:, :-1].cumsum(1)  # frames < f
    latest = before.clone()
    latest[:, recent:] -= before[:, :-recent]  # frames f - recent .. f - 1
    if chords is None:
        return torch.stack([before, latest], dim=2)
    earlier = torch.ones(count, count, dtype=torch.bool, device=frames.device).tril(-1)
    same = (chords[:, :, None] == chords[:, None, :]) | (chords[:, None, :] == PROMPT_CHORD)
    same = (same & earlier).to(per_frame.dtype)
    own = same @ per_frame  # (B, F, V): frames < f under frame f's chord
    return torch.stack([own + (1.0 - forget) * (before - own), latest], dim=2)


class FramePrior(Prior):
    """Temporal + depth transformer prior. tokens (B, N) -> logits (B, N, vocab_size)."""

    def __init__(self, config: PriorConfig):
        super().__init__(config)
        per_block, width = config.tokens_per_block, config.frame_embedding_dim
        depth = dataclasses.replace(config, dim=config.depth_dim, num_heads=config.depth_heads)
        # one table for the frame input and the depth input; id vocab_size = start of a frame
        self.token_embedding = nn.Embedding(config.vocab_size + 1, width)
        self.frame_in = nn.Linear(per_block * width, config.dim)
        self.frame_start = nn.Parameter(torch.zeros(config.dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.dim)
        self.depth_in = nn.Linear(config.dim, config.depth_dim)
        self.depth_token = nn.Linear(width, config.depth_dim, bias=False)
        # the code at the same slot one frame earlier: music holds its codes for many frames, and
        # through the temporal state alone that identity must survive a 12-token projection
        self.depth_previous = nn.Linear(width, config.depth_dim, bias=False)
        # a copy logit: the depth output says how much to add to the logit of that earlier code
        # (codes repeat for many frames; learning "the same again" through 1024 embeddings and
        # head rows is slow: sampled level-0 codes changed at 12 of 12.5 frames/s, real ones 2-6)
        self.copy_gate = nn.Linear(config.depth_dim, 1)
        # the unigram cache's gates (g_all, g_recent) per token; they start where fixed gates
        # already cut the shipped prior's held-out bits by 0.7 per token
        self.count_gate = nn.Linear(config.depth_dim, 2) if config.code_counts else None
        self.slot_embedding = nn.Embedding(per_block, config.depth_dim)
        self.depth_blocks = nn.ModuleList(Block(depth) for _ in range(config.depth_layers))
        self.depth_norm = nn.LayerNorm(config.depth_dim)
        self.head = nn.Linear(config.depth_dim, config.vocab_size, bias=False)
        self.apply(_init_weights)
        nn.init.zeros_(self.copy_gate.weight)  # starts as no copy: a warm start computes as before
        if self.count_gate is not None:
            nn.init.zeros_(self.count_gate.weight)
            with torch.no_grad():
                self.count_gate.bias.copy_(torch.tensor(COUNT_GATE_INIT))
        # unit-scale token embeddings: the depth adds its token term to W h (h layer-normed); at
        # the transformer's std 0.02 that term started ~1 % of the sum and stayed there (held-out
        # bits of the finest levels barely below a context-free model after 450 steps)
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        head_dim = config.dim // config.num_heads
        self.register_buffer(
            "rotation", _rotary_table(config.context_blocks, head_dim, "cpu"), persistent=False
        )
        depth_rotation = _rotary_table(per_block, config.depth_dim // config.depth_heads, "cpu")
        self.register_buffer("depth_rotation", depth_rotation, persistent=False)
        with torch.device("cpu"):  # plain ints, also on a "meta" skeleton
            levels = token_levels(config.level_strides).tolist()
        self.level_slots = [
            [j for j, k in enumerate(levels) if k == level] for level in range(config.num_levels)
        ]
        if config.controls:
            add_controls(self, config)

    # --- the pieces ------------------------------------------------------------------------

    def frame_input(self, frames: Tensor) -> Tensor:
        """frames (..., P) token ids -> the temporal input each makes for the frame after it
        (..., D): the frame's token embeddings, concatenated and projected."""
        return self.frame_in(self.token_embedding(frames).flatten(-2))

    def _frame_inputs(self, frames: Tensor) -> Tensor:
        """frames (B, F, P) token ids -> temporal inputs (B, F, D): start, then frames 0..F-2."""
        start = self.frame_start.expand(frames.shape[0], 1, -1)
        return torch.cat([start, self.frame_input(frames[:, :-1])], dim=1)

    def _temporal(self, x: Tensor, caches: list | None = None) -> Tensor:
        """(B, F, D) inputs at window frames 0..F-1 -> normalised states h (B, F, D)."""
        rotation = self._table(self.rotation, x.shape[1], self.config.dim // self.config.num_heads)
        for i, block in enumerate(self.blocks):
            x = block(x, rotation, None if caches is None else caches[i], 0)
        return self.norm(x)

    def _table(self, table: Tensor, length: int, head_dim: int) -> Tensor:
        if length > table.shape[0]:  # training may ask for more frames than the context
            table = _rotary_table(length, head_dim, table.device)
        return torch.view_as_complex(table[:length].float().contiguous())

    def _depth_inputs(self, h: Tensor, frames: Tensor, context: Tensor | None = None) -> Tensor:
        """h (B, F, D), frames (B, F, P) -> depth inputs (B * F, P, d). The code one frame
        earlier comes from ``context`` (default ``frames``), the frame's own tokens from
        ``frames``."""
        batch, count, per_block = frames.shape
        start = frames.new_full((batch, count, 1), self.start_id)
        previous = torch.cat([start, frames[:, :, :-1]], dim=2)  # token j - 1 at position j
        earlier = self._earlier(frames if context is None else context)
        x = self.depth_token(self.token_embedding(previous)) + self.slot_embedding.weight
        x = x + self.depth_previous(self.token_embedding(earlier))
        x = x + self.depth_in(h)[:, :, None]
        return x.reshape(batch * count, per_block, -1)

    def _earlier(self, frames: Tensor) -> Tensor:
        """(B, F, P) -> frame f - 1's tokens at frame f (start ids at the window's first)."""
        first = frames.new_full((frames.shape[0], 1, frames.shape[2]), self.start_id)
        return torch.cat([first, frames[:, :-1]], dim=1)

    def _copy(self, logits: Tensor, out: Tensor, earlier: Tensor, offset: int) -> Tensor:
        """logits (..., V') + the copy gate of ``out`` (..., d) at ids ``earlier - offset`` (...)
        (no copy where ``earlier`` is the start id)."""
        gate = self.copy_gate(out) * (earlier != self.start_id)[..., None]
        index = (earlier - offset).clamp(0, logits.shape[-1] - 1)[..., None]
        return logits.scatter_add(-1, index, gate.to(logits.dtype))

    def _counted(
        self, logits: Tensor, out: Tensor, features: Tensor | None, scale: float = 1.0
    ) -> Tensor:
        """logits (..., V') + the unigram cache: gates of ``out`` (..., d) times ``features``
        (..., 2, V') broadcast over the slots, times ``scale`` (no change without code_counts)."""
        if features is None:
            return logits
        gate = self.count_gate(out).to(features.dtype)  # (..., 2)
        if scale != 1.0:
            gate = gate * scale
        return logits + gate[..., 0:1] * features[..., 0, :] + gate[..., 1:2] * features[..., 1, :]

    def counts(self, frames: Tensor, chords: Tensor | None = None, forget: float = 1.0) -> Tensor:
        """frames (B, F, P) -> the unigram cache's counts (B, F, 2, V) (``code_counts``)."""
        config = self.config
        return code_counts(frames, config.vocab_size, config.code_counts, chords, forget)

    def _features(
        self, frames: Tensor, chords: Tensor | None = None, forget: float = 1.0
    ) -> Tensor | None:
        if not self.config.code_counts:
            return None
        return self.counts(frames, chords, forget).log1p()

    def _depth(self, x: Tensor) -> Tensor:
        """(B * F, P, d) -> normalised depth outputs (B * F, P, d), causal within the frame."""
        rotation = torch.view_as_complex(self.depth_rotation.float().contiguous())
        for block in self.depth_blocks:
            x = block(x, rotation)
        return self.depth_norm(x)

    def _frames(self, tokens: Tensor) -> Tensor:
        """tokens (B, N) -> frames (B, N // P + 1, P), zero-padded (later slots never reach
        earlier ones)."""
        batch, length = tokens.shape
        per_block = self.tokens_per_block
        count = length // per_block + 1
        padded = tokens.new_zeros(batch, count * per_block)
        padded[:, :length] = tokens
        return padded.view(batch, count, per_block)

    def _outputs(
        self, tokens: Tensor, context: Tensor | None = None, controls: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """tokens (B, N) -> (depth outputs (B, F, P, d), the padded frames (B, F, P), the padded
        frames seen as earlier ones (B, F, P)) for the N + 1 predictions of the window (token 0
        .. token N), F = N // P + 1. With ``context`` (B, N, as tokens), the earlier frames each
        prediction sees (temporal input, the code one frame earlier) are those of ``context``;
        the tokens earlier in its own frame stay those of ``tokens`` (``own_context_loss``)."""
        batch = tokens.shape[0]
        frames = self._frames(tokens)
        seen = frames if context is None else self._frames(context)
        x = self._frame_inputs(seen)
        controls = window_controls(self, controls, frames.shape[1])
        if controls is not None:  # the frame's own controls: known ahead, as a plan is
            temporal_terms, depth_terms = control_terms(self, controls)
            x = x + temporal_terms
        inputs = self._depth_inputs(self._temporal(x), frames, seen)
        if controls is not None:
            inputs = inputs + depth_terms.reshape(inputs.shape)
        out = self._depth(inputs)
        return out.view(batch, frames.shape[1], self.tokens_per_block, -1), frames, seen

    # --- the Prior interface ------------------------------------------------------------------

    def window_logits(
        self,
        tokens: Tensor,
        cache_scale: float = 1.0,
        controls: Tensor | None = None,
        chords: Tensor | None = None,
        forget: float = 1.0,
    ) -> Tensor:
        """As Prior.window_logits; ``cache_scale`` multiplies the unigram cache's gates (a
        sampling setting, ``Sampling.cache_scale``: training and scoring use 1); ``controls``
        (B, F, C): the window's per-frame controls (None: none given); ``chords`` (B, F): each
        frame's chord, the cache's whole-window count keeping the codes played under other
        chords at weight 1 - ``forget`` (``Sampling.cache_by_chord``)."""
        batch, length = tokens.shape
        out, frames, _ = self._outputs(tokens, controls=controls)
        logits = self._copy(self.head(out), out, self._earlier(frames), 0)
        chords = window_rows(chords, 0, frames.shape[1])
        features = self._features(frames, chords, forget)  # (B, F, 2, V) -> each slot of frame f
        features = None if features is None else features[:, :, None]
        logits = self._counted(logits, out, features, cache_scale)
        logits = logits.reshape(batch, -1, self.config.vocab_size)[:, : length + 1]
        return self.masked(logits)

    def token_nll(
        self, tokens: Tensor, context: Tensor | None = None, controls: Tensor | None = None
    ) -> Tensor:
        """-log p (nats) of each token (B, N), one level's codebook per slot: the vocabulary-wide
        logits are never built (1/num_levels of the memory and the head's arithmetic). With
        ``context`` (B, N), earlier frames are seen as in ``context`` (see ``_outputs``)."""
        batch, length = tokens.shape
        if length % self.tokens_per_block:
            if context is not None or controls is not None:
                raise ValueError("a context or controls need whole frames")
            return super().token_nll(tokens)
        nll = torch.empty_like(tokens, dtype=torch.float32)
        flat = nll.view(batch, -1, self.tokens_per_block)
        for slots, logits, target in self._level_logits(tokens, context, controls):
            flat[:, :, slots] = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
            ).view(target.shape)
        return nll

    def parameter_groups(self) -> list[dict]:
        """The optimizer's parameter groups (the control layers learn faster)."""
        return parameter_groups(self)

    def loss(self, tokens: Tensor, controls: Tensor | None = None) -> Tensor:
        return self.token_nll(tokens, controls=controls).float().mean()

    def _level_logits(
        self, tokens: Tensor, context: Tensor | None = None, controls: Tensor | None = None
    ):
        """Yield (slots, logits (B, F, S, size) float, targets (B, F, S) within the level's
        codebook) level by level, for whole-frame ``tokens`` (B, F * P)."""
        size = self.config.codebook_size
        out, frames, seen = self._outputs(tokens, context, controls)
        earlier = self._earlier(seen)[:, :-1]
        out, frames, seen = out[:, :-1], frames[:, :-1], seen[:, :-1]  # drop the extra frame
        features = self._features(seen)
        for level, slots in enumerate(self.level_slots):
            weight = self.head.weight[level * size : (level + 1) * size]
            logits = (out[:, :, slots] @ weight.T).float()  # (B, F, S, size)
            logits = self._copy(logits, out[:, :, slots], earlier[:, :, slots], level * size)
            if features is not None:
                level_features = features[:, :, None, :, level * size : (level + 1) * size]
                logits = self._counted(logits, out[:, :, slots], level_features)
            yield slots, logits, frames[:, :, slots] - level * size

    @torch.no_grad()
    def own_frames(
        self,
        tokens: Tensor,
        rate: float,
        generator: torch.Generator | None = None,
        passes: int = 1,
        span: int = 1,
    ) -> Tensor:
        """``tokens`` (B, N whole frames) with a share ``rate`` of its frames replaced by the
        prior's own draws (parallel scheduled sampling, Duckworth et al. 2019). A coin per run of
        ``span`` frames picks them, so runs of drawn frames as long as ``span`` occur. The first
        pass draws every token given the real tokens before it; each further pass draws again
        given the mixed frames of the pass before (the tokens earlier in a frame stay real), so
        after ``passes`` passes a drawn frame has seen up to ``passes - 1`` drawn frames before
        it that were themselves drawn from drawn context, as a sequential rollout would. The
        draws are made without dropout, as sampling makes them."""
        was_training = self.training
        self.eval()
        batch, length = tokens.shape
        per_block, size = self.tokens_per_block, self.config.codebook_size
        count = length // per_block
        runs = -(-count // span)
        coins = torch.rand(batch, runs, 1, generator=generator, device=tokens.device) < rate
        coins = coins.repeat_interleave(span, dim=1)[:, :count]
        real = tokens.view(batch, count, per_block)
        mixed = tokens
        for _ in range(passes):
            drawn = torch.empty_like(real)
            context = None if mixed is tokens else mixed
            for level, (slots, logits, _) in enumerate(self._level_logits(tokens, context)):
                probs = torch.softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
                draws = torch.multinomial(probs, 1, generator=generator)
                drawn[:, :, slots] = draws.view(batch, -1, len(slots)) + level * size
            mixed = torch.where(coins, drawn, real).view(batch, length)
        self.train(was_training)
        return mixed

    def own_context_loss(
        self,
        tokens: Tensor,
        rate: float,
        generator: torch.Generator | None = None,
        passes: int = 1,
        span: int = 1,
    ) -> Tensor:
        """Mean cross-entropy (nats) of the real ``tokens`` when a share ``rate`` of the earlier
        frames they are predicted from are the prior's own draws (``own_frames``): sampling sees
        its own frames, not real ones, and learns there what a hold is worth."""
        context = self.own_frames(tokens, rate, generator, passes, span)
        return self.token_nll(tokens, context).mean()

    def next_logits(
        self,
        tokens: Tensor,
        cache_scale: float = 1.0,
        controls: Tensor | None = None,
        chords: Tensor | None = None,
        forget: float = 1.0,
    ) -> Tensor:
        """As Prior.next_logits; ``controls`` (B, F, C) and ``chords`` (B, F) cover frames 0..
        of ``tokens``."""
        start = self.window_start(tokens.shape[1])
        first = start // self.tokens_per_block
        if controls is not None:
            controls = controls[:, first:]
        if chords is not None:
            chords = chords[:, first:]
        window = self.window_logits(tokens[:, start:], cache_scale, controls, chords, forget)
        return window[:, -1]

    def stream(
        self,
        tokens: Tensor,
        cache_scale: float = 1.0,
        controls: Tensor | None = None,
        chords: Tensor | None = None,
        forget: float = 1.0,
    ) -> FrameStream:
        """``controls`` (B, F, C): per-frame controls from frame 0 of ``tokens`` to the last
        frame that will be generated (or None); ``chords`` (B, F) over the same frames and
        ``forget``: as ``window_logits``."""
        terms = None
        if controls is not None and self.config.controls:
            with torch.no_grad():
                temporal, depth = control_terms(self, controls.to(self.frame_start.dtype))
            terms = (temporal, depth)
        return FrameStream(self, tokens, cache_scale, terms, chords, forget)
