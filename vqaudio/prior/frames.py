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

from ..codes import block_slots, token_levels
from ..config import PriorConfig
from .base import Prior, Stream
from .transformer import (
    Block,
    _init_weights,
    _rotary_table,
    block_weights,
    rotated_qkv,
    step_blocks,
)

COUNT_GATE_INIT = (0.6, 0.4)  # (g_all, g_recent) before training


def code_counts(frames: Tensor, vocab_size: int, recent: int) -> Tensor:
    """frames (B, F, P) token ids -> (B, F, 2, vocab_size): the count of each id over frames
    0..f-1, and over frames f-recent..f-1, at frame f (whole numbers: exact in float)."""
    batch, count, _ = frames.shape
    ones = torch.ones(frames.shape, dtype=torch.float32, device=frames.device)
    per_frame = torch.zeros(batch, count, vocab_size, device=frames.device)
    per_frame.scatter_add_(2, frames.clamp(max=vocab_size - 1), ones)
    before = torch.zeros_like(per_frame)
    before[:, 1:] = per_frame[:, :-1].cumsum(1)  # frames < f
    latest = before.clone()
    latest[:, recent:] -= before[:, :-recent]  # frames f - recent .. f - 1
    return torch.stack([before, latest], dim=2)


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
            self._init_controls(config)

    def _init_controls(self, config: PriorConfig) -> None:
        """Per-frame controls (B, F, controls) enter the temporal input, the depth bias, and,
        for the beat's sub-slot, each depth slot that covers it; all start at zero, so a
        warm-started prior computes as before until it learns to follow them."""
        from ..controls.grid import SUB_SLOTS

        self.control_in = nn.Linear(config.controls, config.dim)
        self.control_depth = nn.Linear(config.controls, config.depth_dim)
        self.beat_slots = nn.Parameter(torch.zeros(config.tokens_per_block, config.depth_dim))
        for layer in (self.control_in, self.control_depth):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        # (P, SUB_SLOTS): 1 where slot j's code spans sub-slot s of the frame
        with torch.device("cpu"):
            strides = config.level_strides
            cover = torch.zeros(config.tokens_per_block, SUB_SLOTS)
            for j, (level, index) in enumerate(block_slots(strides)):
                width = strides[level] * SUB_SLOTS // strides[0]
                cover[j, index * width : (index + 1) * width] = 1.0
        self.register_buffer("slot_cover", cover, persistent=False)
        # statistics of the training music that plans are sampled from (controls.plan)
        from ..controls.plan import plan_buffers

        for name, value in plan_buffers().items():
            self.register_buffer(name, value)

    def control_terms(self, controls: Tensor) -> tuple[Tensor, Tensor]:
        """controls (B, F, C) -> (temporal input terms (B, F, D), depth bias terms (B, F, P, d))."""
        beat = (controls[..., : self.slot_cover.shape[1]] @ self.slot_cover.T).clamp(max=1.0)
        depth = self.control_depth(controls)[:, :, None] + beat[..., None] * self.beat_slots
        return self.control_in(controls), depth

    # --- the pieces ------------------------------------------------------------------------

    def _frame_inputs(self, frames: Tensor) -> Tensor:
        """frames (B, F, P) token ids -> temporal inputs (B, F, D): start, then frames 0..F-2."""
        batch, count, per_block = frames.shape
        previous = self.token_embedding(frames[:, :-1]).flatten(2)  # (B, F - 1, P * width)
        start = self.frame_start.expand(batch, 1, -1)
        return torch.cat([start, self.frame_in(previous)], dim=1)

    def _window_controls(self, controls: Tensor | None, count: int) -> Tensor | None:
        """controls (B, >= count - 1, C) -> (B, count, C): the window's frames, the last row
        repeated for the extra frame the window predicts into; None without controls."""
        if controls is None or not self.config.controls:
            return None
        if controls.shape[1] < count:
            pad = controls[:, -1:].expand(-1, count - controls.shape[1], -1)
            controls = torch.cat([controls, pad], dim=1)
        return controls[:, :count].to(self.frame_start.dtype)

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

    def _features(self, frames: Tensor) -> Tensor | None:
        if not self.config.code_counts:
            return None
        return code_counts(frames, self.config.vocab_size, self.config.code_counts).log1p()

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
        controls = self._window_controls(controls, frames.shape[1])
        depth_terms = None
        if controls is not None:  # the frame's own controls: known ahead, as a plan is
            temporal_terms, depth_terms = self.control_terms(controls)
            x = x + temporal_terms
        h = self._temporal(x)
        inputs = self._depth_inputs(h, frames, seen)
        if depth_terms is not None:
            inputs = inputs + depth_terms.reshape(inputs.shape)
        out = self._depth(inputs)
        return out.view(batch, frames.shape[1], self.tokens_per_block, -1), frames, seen

    # --- the Prior interface ------------------------------------------------------------------

    def window_logits(
        self, tokens: Tensor, cache_scale: float = 1.0, controls: Tensor | None = None
    ) -> Tensor:
        """As Prior.window_logits; ``cache_scale`` multiplies the unigram cache's gates (a
        sampling setting, ``sample_tokens``: training and scoring use 1); ``controls`` (B, F,
        C) are the window's per-frame controls (None: none given)."""
        batch, length = tokens.shape
        out, frames, _ = self._outputs(tokens, controls=controls)
        logits = self._copy(self.head(out), out, self._earlier(frames), 0)
        features = self._features(frames)  # (B, F, 2, V) -> each slot of frame f
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
        self, tokens: Tensor, cache_scale: float = 1.0, controls: Tensor | None = None
    ) -> Tensor:
        """As Prior.next_logits; ``controls`` (B, F, C) cover frames 0.. of ``tokens``."""
        start = self.window_start(tokens.shape[1])
        if controls is not None:
            controls = controls[:, start // self.tokens_per_block :]
        return self.window_logits(tokens[:, start:], cache_scale, controls)[:, -1]

    def stream(
        self, tokens: Tensor, cache_scale: float = 1.0, controls: Tensor | None = None
    ) -> FrameStream:
        """``controls`` (B, F, C): per-frame controls from frame 0 of ``tokens`` to the last
        frame that will be generated (or None)."""
        return FrameStream(self, tokens, cache_scale, controls)


class FrameStream(Stream):
    """KV-cached decoding: a temporal step once per frame, a depth step per token."""

    def __init__(
        self,
        prior: FramePrior,
        tokens: Tensor,
        cache_scale: float = 1.0,
        controls: Tensor | None = None,
    ):
        config = prior.config
        self.prior, self.vocab_size = prior, config.vocab_size
        self.cache_scale = cache_scale
        self.temporal_terms = self.depth_terms = None  # per absolute frame, with controls
        if controls is not None and config.controls:
            with torch.no_grad():
                temporal, depth = prior.control_terms(controls.to(prior.frame_start.dtype))
            self.temporal_terms, self.depth_terms = temporal, depth.transpose(1, 2)
        batch = tokens.shape[0]
        weight = prior.head.weight
        self.temporal_cache = torch.zeros(
            (config.num_layers, 2, batch, config.num_heads, config.context_blocks)
            + (config.dim // config.num_heads,),
            dtype=weight.dtype,
            device=weight.device,
        )
        self.depth_cache = torch.zeros(
            (config.depth_layers, 2, batch, config.depth_heads, config.tokens_per_block)
            + (config.depth_dim // config.depth_heads,),
            dtype=weight.dtype,
            device=weight.device,
        )
        self.temporal_weights = block_weights(prior.blocks)
        self.rotation = torch.view_as_complex(prior.rotation.float().contiguous())
        # a depth step runs once per token at one of only P positions: fold each position's
        # rotation into its own copy of the qkv weights, and the depth's token projection into
        # the embedding table, so a token costs fewer, equally large ops
        depth_rotation = torch.view_as_complex(prior.depth_rotation.float().contiguous())
        heads = config.depth_heads
        self.depth_weights = [
            [
                (w[0], w[1], rotated_qkv(w[2], depth_rotation[j], heads), *w[3:])
                for w in block_weights(prior.depth_blocks)
            ]
            for j in range(config.tokens_per_block)
        ]
        self.depth_tokens = F.linear(prior.token_embedding.weight, prior.depth_token.weight)
        self.depth_earlier = F.linear(prior.token_embedding.weight, prior.depth_previous.weight)
        self.head_rows = [prior.head.weight[lo:hi] for lo, hi in prior.slot_ranges]
        self.features = None  # (B, 2, V) of the current frame, with code_counts
        # the copy gate and the cache's two gates in one linear op per token
        gates = [prior.copy_gate] + ([prior.count_gate] if prior.count_gate is not None else [])
        self.gate_weight = torch.cat([g.weight for g in gates])
        self.gate_bias = torch.cat([g.bias for g in gates])
        self.offsets = torch.tensor([lo for lo, _ in prior.slot_ranges], device=weight.device)
        self.window = tokens.new_zeros(batch, config.context_tokens)
        self.num_tokens = tokens.shape[1]
        self.start = prior.window_start(self.num_tokens)
        kept = tokens[:, self.start :]
        self.window[:, : kept.shape[1]] = kept
        self._prefill()

    def _prefill(self, depth: bool = True) -> Tensor | None:
        """Temporal states of the window's frames (cache filled), then (``depth``) the current
        frame's depth positions up to the next token."""
        prior, per_block = self.prior, self.prior.tokens_per_block
        length = self.num_tokens - self.start
        count = length // per_block + 1
        frames = self.window.new_zeros(self.window.shape[0], count * per_block)
        frames[:, :length] = self.window[:, :length]
        frames = frames.view(-1, count, per_block)
        caches = [(layer[0], layer[1]) for layer in self.temporal_cache]
        x = prior._frame_inputs(frames)
        if self.temporal_terms is not None:
            first = self.start // per_block
            x = x + self._rows(self.temporal_terms, first, count)
        h = prior._temporal(x, caches)[:, -1]  # (B, D)
        self.frame = frames[:, -1].clone()  # (B, P), filled up to the slot of the next token
        if prior.config.code_counts:  # counted as in training: frames before it in the window
            counts = code_counts(frames, prior.config.vocab_size, prior.config.code_counts)
            self.counts = counts[:, -1].clone()  # (B, 2, V)
            self.features = self.counts.log1p()
        self.earlier = (  # the frame before it (start ids at the window's first frame)
            frames[:, -2] if count > 1 else torch.full_like(self.frame, prior.start_id)
        )
        self._set_depth_bias(h, self.earlier, self.start // per_block + count - 1)
        slot = length % per_block
        if not depth:
            return None
        for j in range(slot):
            self._depth_step(j)
        return self._depth_step(slot)

    def _depth_step(self, slot: int) -> Tensor:
        """Depth position ``slot`` of the current frame -> that slot's logits (B, V)."""
        prior = self.prior
        if slot > 0:
            x = self.depth_tokens[self.frame[:, slot - 1]] + self.depth_bias[slot]
        else:
            x = self.depth_bias[0] + self.depth_tokens[prior.start_id]
        x = step_blocks(
            self.depth_weights[slot], self.depth_cache, x, None, slot, prior.config.depth_heads
        )
        x = F.layer_norm(x, x.shape[-1:], prior.depth_norm.weight, prior.depth_norm.bias)
        lo, hi = prior.slot_ranges[slot]
        logits = F.linear(x, self.head_rows[slot])
        gates = F.linear(x, self.gate_weight, self.gate_bias)  # (B, 1 or 3)
        # the copy logit at the code this slot held one frame earlier (none at the window start)
        copy = gates[:, :1] * self.copy_on[slot]
        logits = logits.scatter_add(1, self.copy_index[slot], copy.to(logits.dtype))
        if self.features is not None:  # + g_all * log(1 + count) + g_recent * log(1 + recent)
            count_gates = gates[:, None, 1:].to(logits.dtype)
            if self.cache_scale != 1.0:
                count_gates = count_gates * self.cache_scale
            cache = torch.bmm(count_gates, self.features[..., lo:hi])
            logits = logits + cache[:, 0]
        return self._set_logits(logits, (lo, hi))

    def _set_logits(self, values: Tensor, ids: tuple[int, int]) -> Tensor:
        self.values, self.ids = values, ids  # the full-vocabulary logits only when asked for
        return values

    @property
    def logits(self) -> Tensor:
        lo, hi = self.ids
        full = self.values.new_full((self.values.shape[0], self.vocab_size), float("-inf"))
        full[:, lo:hi] = self.values
        return full

    def slot_logits(self, ids: tuple[int, int]) -> Tensor:
        assert ids == self.ids, "the stream predicts another slot"
        return self.values

    def _frame_step(self, position: int, fast=None) -> None:
        """The frame just completed becomes the temporal input at window frame ``position``
        (in C with ``fast``, a ``fast_depth.FastFrames`` of this prior)."""
        prior = self.prior
        frame = self.start // prior.tokens_per_block + position  # absolute, for the controls
        extra = None
        if self.temporal_terms is not None:
            extra = self._rows(self.temporal_terms, frame, 1)[:, 0]
        if fast is not None:
            h = fast.temporal_step(self.frame, self.temporal_cache, position, extra)
        else:
            previous = prior.token_embedding.weight[self.frame].flatten(1)  # (B, P * width)
            x = F.linear(previous, prior.frame_in.weight, prior.frame_in.bias)
            if extra is not None:
                x = x + extra
            x = step_blocks(
                self.temporal_weights,
                self.temporal_cache,
                x,
                self.rotation[position],
                position,
                prior.config.num_heads,
            )
            h = F.layer_norm(x, x.shape[-1:], prior.norm.weight, prior.norm.bias)
        self.earlier = self.frame.clone()
        if self.features is not None:
            self._count_frame(position)
        self._set_depth_bias(h, self.earlier, frame)

    @staticmethod
    def _rows(terms: Tensor, first: int, count: int) -> Tensor:
        """terms (B, F, ...) rows first..first + count - 1, the last row repeated past F."""
        index = torch.arange(first, first + count).clamp(max=terms.shape[1] - 1)
        return terms[:, index.to(terms.device)]

    def _count_frame(self, position: int) -> None:
        """Counts at window frame ``position``: + the frame just completed (position - 1), and
        the recent ones - the frame that leaves their span (position - 1 - code_counts)."""
        per_block, recent = self.prior.tokens_per_block, self.prior.config.code_counts
        ones = torch.ones(self.frame.shape, dtype=self.counts.dtype, device=self.counts.device)
        self.counts[:, 0].scatter_add_(1, self.frame, ones)
        self.counts[:, 1].scatter_add_(1, self.frame, ones)
        gone = position - 1 - recent
        if gone >= 0:
            old = self.window[:, gone * per_block : (gone + 1) * per_block]
            self.counts[:, 1].scatter_add_(1, old, -ones)
        self.features = self.counts.log1p()

    def _set_depth_bias(self, h: Tensor, earlier: Tensor, frame: int) -> None:
        """What each depth position of absolute frame ``frame`` adds: W h + b + its slot's
        embedding + the code at its slot one frame earlier (+ the frame's controls) -> (P, B,
        d)."""
        prior = self.prior
        bias = F.linear(h, prior.depth_in.weight, prior.depth_in.bias)  # (B, d)
        self.depth_bias = (
            bias[None]
            + prior.slot_embedding.weight[:, None]
            + self.depth_earlier[earlier].transpose(0, 1)
        )
        if self.depth_terms is not None:  # (B, P, F, d) -> (P, B, d)
            index = min(frame, self.depth_terms.shape[2] - 1)
            self.depth_bias = self.depth_bias + self.depth_terms[:, :, index].transpose(0, 1)
        size = prior.config.codebook_size  # per slot: where its copy logit goes, and if at all
        self.copy_index = (earlier - self.offsets).clamp(0, size - 1).T[..., None].contiguous()
        self.copy_on = (earlier != prior.start_id).T[..., None].to(bias.dtype).contiguous()

    def sample_frame(
        self,
        fast,
        uniform: Tensor,
        held: Tensor,
        settings: tuple[Tensor, Tensor, Tensor],
        last: bool = False,
        offset: Tensor | None = None,
        hold_cap: float = 1.0,
    ) -> Tensor:
        """The next whole frame (B, P), sampled by ``fast`` (a ``fast_depth.FastFrames`` of this
        prior) row by row with ``uniform`` (B, P) draws, ``held`` (B, P) ids within each slot's
        codebook (-1: none) and ``settings`` (temperature, top_k, top_p) per slot; then the
        stream moves on as after ``push`` of its tokens. ``last``: no frame follows (the
        temporal step is skipped). ``offset`` (P, codebook) is added to each slot's logits (or
        None); a held id's probability is at most ``hold_cap``. The stream must stand at a
        frame's first slot."""
        prior, per_block = self.prior, self.prior.tokens_per_block
        length = self.num_tokens - self.start
        assert length % per_block == 0, "sample_frame starts at a frame's first slot"
        copy = torch.where(self.copy_on[..., 0] > 0, self.copy_index[..., 0], -1).T  # (B, P)
        temperature, top_k, top_p = settings
        rows = []
        for b in range(self.frame.shape[0]):
            features = None if self.features is None else self.features[b]
            rows.append(
                fast.frame(
                    self.depth_bias[:, b],
                    copy[b],
                    features,
                    self.cache_scale,
                    temperature,
                    top_k,
                    top_p,
                    held[b],
                    uniform[b],
                    offset,
                    hold_cap,
                )
            )
        tokens = torch.stack(rows).to(self.window.device)
        self.window[:, length : length + per_block] = tokens
        self.frame.copy_(tokens)
        self.num_tokens += per_block
        if last:
            return tokens
        start = prior.window_start(self.num_tokens)
        if start != self.start:  # slide, as push does
            kept = self.window[:, start - self.start : length + per_block].clone()
            self.window[:, : kept.shape[1]] = kept
            self.start = start
            self._prefill(depth=False)
        else:
            self._frame_step((length + per_block) // per_block, fast)
        return tokens

    def push(self, token: Tensor) -> Tensor:
        prior, per_block = self.prior, self.prior.tokens_per_block
        length = self.num_tokens - self.start  # window tokens before this one
        self.window[:, length] = token
        slot = length % per_block
        self.frame[:, slot] = token
        self.num_tokens += 1
        if slot + 1 < per_block:
            return self._depth_step(slot + 1)
        start = prior.window_start(self.num_tokens)
        if start != self.start:  # slide: keep the latest frames, rebuild the caches from them
            kept = self.window[:, start - self.start : length + 1].clone()
            self.window[:, : kept.shape[1]] = kept
            self.start = start
            return self._prefill()
        self._frame_step((length + 1) // per_block)
        return self._depth_step(0)
