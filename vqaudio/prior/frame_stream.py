"""A frame prior's KV-cached stream: a temporal step once per frame, a depth step per token.

The stream holds the window's tokens, the temporal and depth caches, and the one place where a
frame's per-position depth bias is formed (``_set_depth_bias``: W h + the slot's embedding + the
code one frame earlier) from the temporal state h of the frame input (``FramePrior.frame_input``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..controls.chords import NUM_CHORDS
from .base import Prior, Stream
from .frame_controls import PROMPT_CHORD, window_rows
from .transformer import block_weights, layer_caches, rotated_qkv, step_blocks

# (frame (B, P) ids, temporal cache, window position, what the frame's controls add to the
# temporal input (B, D) or None) -> normalised temporal states h (B, D)
TemporalStep = Callable[[Tensor, Tensor, int, Tensor | None], Tensor]


# the cache's counts under each chord id (row id + 2): a prompt (-2), no chord (-1), chords
NUM_CHORD_ROWS = NUM_CHORDS + 2


def per_frame_counts(frames: Tensor, vocab_size: int) -> Tensor:
    """frames (B, F, P) token ids -> (B, F, vocab_size) float32: each frame's count of each id
    (ids past the vocabulary, a frame's padding, count as the last)."""
    ones = torch.ones(frames.shape, dtype=torch.float32, device=frames.device)
    out = torch.zeros(*frames.shape[:2], vocab_size, device=frames.device)
    return out.scatter_add_(2, frames.clamp(max=vocab_size - 1), ones)


class FrameStream(Stream):
    """A FramePrior's KV-cached decoding: a temporal step once per frame, a depth step per
    token."""

    def __init__(
        self,
        prior: Prior,
        tokens: Tensor,
        cache_scale: float = 1.0,
        terms: tuple[Tensor, Tensor] | None = None,
        chords: Tensor | None = None,
        forget: float = 1.0,
    ):
        """``terms``: what per-frame controls add, from frame 0 of ``tokens`` on (the prior's
        ``control_terms``): to the temporal input (B, F, D) and to the depth bias (B, F, P,
        d). ``chords`` (B, F) over the same frames (``frame_controls.chord_ids``): the unigram
        cache's whole-window count keeps the codes played under other chords than the frame's
        at weight 1 - ``forget`` (``frames.code_counts``)."""
        config = prior.config
        self.prior, self.vocab_size = prior, config.vocab_size
        self.cache_scale = cache_scale
        self.chords, self.forget = chords, forget
        # with chords: the whole-window count (B, V), and it under each chord (B, NUM_CHORD_ROWS,
        # V)
        self.total = self.by_chord = None
        self.temporal_terms = self.depth_terms = None
        if terms is not None:
            self.temporal_terms, self.depth_terms = terms[0], terms[1].transpose(1, 2)
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
        self.temporal_layers = layer_caches(self.temporal_cache)
        self.depth_layers = layer_caches(self.depth_cache)
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
        self.features = None  # (B, 2, V) of the current frame, with code_counts
        # a level's head rows, the copy gate and the cache's two gates in one linear op per token
        gates = [prior.copy_gate] + ([prior.count_gate] if prior.count_gate is not None else [])
        gate_weight = torch.cat([g.weight for g in gates])
        gate_bias = torch.cat([g.bias for g in gates])
        size = config.codebook_size
        self.head_gates = [
            (torch.cat([rows, gate_weight]), torch.cat([rows.new_zeros(size), gate_bias]))
            for rows in prior.head.weight.split(size)
        ]
        self.slot_levels = [lo // size for lo, _ in prior.slot_ranges]
        self.slot_level_index = torch.tensor(self.slot_levels, device=weight.device)
        self.offsets = torch.tensor([lo for lo, _ in prior.slot_ranges], device=weight.device)
        self.gated = None  # what each gate multiplies, per slot of the current frame
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
        caches = [(keys, values) for _, keys, values in self.temporal_layers]
        x = prior._frame_inputs(frames)
        if self.temporal_terms is not None:
            x = x + self._rows(self.temporal_terms, self.start // per_block, count)
        h = prior._temporal(x, caches)[:, -1]  # (B, D)
        self.frame = frames[:, -1].clone()  # (B, P), filled up to the slot of the next token
        if prior.config.code_counts:  # counted as in training: frames before it in the window
            plain = prior.counts(frames)
            self.counts = plain[:, -1].clone()  # (B, 2, V)
            if self.chords is not None:
                chords = window_rows(self.chords, self.start // per_block, count) - PROMPT_CHORD
                batch, size = self.counts.shape[0], self.counts.shape[-1]
                self.total = plain[:, -1, 0].clone()
                per_frame = per_frame_counts(frames[:, :-1], size)  # the frames before the last
                self.by_chord = torch.zeros(batch, NUM_CHORD_ROWS, size, device=self.counts.device)
                self.by_chord.scatter_add_(1, chords[:, :-1, None].expand(-1, -1, size), per_frame)
                self._mix(chords[:, -1])
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
            self.depth_weights[slot], self.depth_layers, x, None, slot, prior.config.depth_heads
        )
        x = F.layer_norm(x, x.shape[-1:], prior.depth_norm.weight, prior.depth_norm.bias)
        lo, hi = prior.slot_ranges[slot]
        out = F.linear(x, *self.head_gates[self.slot_levels[slot]])  # (B, V' + G)
        logits, gates = out[:, None].split((hi - lo, out.shape[1] - (hi - lo)), dim=2)
        if self.gated is None:
            self.gated = self._gated()
        # + the copy logit at the code this slot held one frame earlier, + g_all * log(1 +
        # count) + g_recent * log(1 + recent): the gates (B, 1, G) times (B, G, V') in one op
        logits = torch.baddbmm(logits, gates, self.gated[slot])
        return self._set_logits(logits[:, 0], (lo, hi))

    def _gated(self) -> Tensor:
        """(P, B, G, V') what each gate adds per unit at each slot of the current frame: a one
        at the code the slot held one frame earlier (none at the window start), then (with
        code_counts) log(1 + count) and log(1 + recent count) of its level's codes times
        ``cache_scale``."""
        size = self.prior.config.codebook_size
        copy = self.depth_bias.new_zeros(*self.copy_on.shape[:2], 1, size)
        gated = copy.scatter_(-1, self.copy_index[..., None], self.copy_on[..., None])
        if self.features is None:
            return gated
        features = self.features.to(gated.dtype)
        if self.cache_scale != 1.0:
            features = features * self.cache_scale
        levels = features.view(features.shape[0], 2, -1, size).permute(2, 0, 1, 3)  # (L, B, 2, V')
        return torch.cat([gated, levels[self.slot_level_index]], dim=2)

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

    def _frame_step(self, position: int, temporal: TemporalStep | None = None) -> None:
        """The frame just completed becomes the temporal input at window frame ``position``
        (its temporal step by ``temporal``, the same step computed elsewhere, if given)."""
        step = self._temporal_step if temporal is None else temporal
        frame = self.start // self.prior.tokens_per_block + position  # absolute: the controls'
        extra = None
        if self.temporal_terms is not None:
            extra = self.temporal_terms[:, min(frame, self.temporal_terms.shape[1] - 1)]
        h = step(self.frame, self.temporal_cache, position, extra)
        self.earlier = self.frame.clone()
        if self.features is not None:
            self._count_frame(position)
        self._set_depth_bias(h, self.earlier, frame)

    @staticmethod
    def _rows(terms: Tensor, first: int, count: int) -> Tensor:
        """terms (B, F, ...) rows first .. first + count - 1, the last row repeated past F."""
        index = torch.arange(first, first + count, device=terms.device)
        return terms[:, index.clamp(max=terms.shape[1] - 1)]

    def _temporal_step(
        self, frame: Tensor, cache: Tensor, position: int, extra: Tensor | None = None
    ) -> Tensor:
        prior = self.prior
        x = prior.frame_input(frame)  # (B, D)
        if extra is not None:
            x = x + extra
        layers = self.temporal_layers if cache is self.temporal_cache else layer_caches(cache)
        x = step_blocks(
            self.temporal_weights,
            layers,
            x,
            self.rotation[position],
            position,
            prior.config.num_heads,
        )
        return F.layer_norm(x, x.shape[-1:], prior.norm.weight, prior.norm.bias)

    def _count_frame(self, position: int) -> None:
        """Counts at window frame ``position``: + the frame just completed (position - 1), and
        the recent ones - the frame that leaves their span (position - 1 - code_counts); with
        ``chords``, the whole-window count mixes the counts under this frame's chord and the
        rest (``_mix``)."""
        per_block, recent = self.prior.tokens_per_block, self.prior.config.code_counts
        counted = per_frame_counts(self.frame[:, None], self.counts.shape[-1])[:, 0]  # (B, V)
        self.counts[:, 1] += counted
        gone = position - 1 - recent
        if gone >= 0:
            old = self.window[:, None, gone * per_block : (gone + 1) * per_block]
            self.counts[:, 1] -= per_frame_counts(old, self.counts.shape[-1])[:, 0]
        if self.chords is None:
            self.counts[:, 0] += counted
        else:
            first = self.start // per_block + position - 1
            chords = window_rows(self.chords, first, 2) - PROMPT_CHORD
            self.total += counted
            rows = torch.arange(len(chords), device=chords.device)
            self.by_chord[rows, chords[:, 0]] += counted
            self._mix(chords[:, 1])
        self.features = self.counts.log1p()

    def _mix(self, chord_rows: Tensor) -> None:
        """The whole-window count of a frame under ``chord_rows`` (B,) (rows of ``by_chord``):
        its chord's codes, and the others' at weight 1 - forget, as ``frames.code_counts``."""
        own = self.by_chord[torch.arange(len(chord_rows), device=chord_rows.device), chord_rows]
        own = own + (chord_rows > 0)[:, None] * self.by_chord[:, 0]  # + the prompt's, always
        self.counts[:, 0] = own + (1.0 - self.forget) * (self.total - own)

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
        self.gated = None  # made at the frame's first depth step (the C loop needs none)

    @property
    def copy_ids(self) -> Tensor:
        """(B, P) each slot's copy index in its codebook, -1 where there is none."""
        return torch.where(self.copy_on[..., 0] > 0, self.copy_index[..., 0], -1).T

    def push_frame(
        self, tokens: Tensor, last: bool = False, temporal: TemporalStep | None = None
    ) -> None:
        """Append a whole frame of ``tokens`` (B, P), as ``push`` of each would, without the
        depth steps (the caller drew the frame). ``last``: no frame follows (no temporal step);
        ``temporal``: as ``_frame_step``. The stream must stand at a frame's first slot."""
        prior, per_block = self.prior, self.prior.tokens_per_block
        length = self.num_tokens - self.start
        assert length % per_block == 0, "push_frame starts at a frame's first slot"
        self.window[:, length : length + per_block] = tokens
        self.frame.copy_(tokens)
        self.num_tokens += per_block
        if last:
            return
        start = prior.window_start(self.num_tokens)
        if start != self.start:  # slide, as push does
            kept = self.window[:, start - self.start : length + per_block].clone()
            self.window[:, : kept.shape[1]] = kept
            self.start = start
            self._prefill(depth=False)
        else:
            self._frame_step((length + per_block) // per_block, temporal)

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
