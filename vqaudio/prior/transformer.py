"""Causal decoder-only transformer over flattened codes, with a preallocated KV cache.

Pre-norm blocks (LayerNorm, a single fused op: cheaper per generated token than RMSNorm), rotary
positions counted from the window's start token, ``scaled_dot_product_attention``. Generation
slides the window: when it holds ``context_tokens`` tokens, it keeps the latest
``context_blocks // 2`` blocks (block-aligned, so slots and levels stay put) and rebuilds the
cache from them in one forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import PriorConfig
from .base import Prior, Stream


def _rotary_table(length: int, head_dim: int, device: torch.device | str) -> Tensor:
    """(length, head_dim / 2, 2) (cos, sin) of p * theta_j for positions p = 0..length-1 (kept real
    so that ``model.to(dtype)`` cannot drop the imaginary part)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim))
    angles = torch.outer(torch.arange(length, device=device).float(), inv_freq)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def _rotate(x: Tensor, rotation: Tensor) -> Tensor:
    """Rotary positions: x (..., L, hs) as hs/2 complex pairs times rotation (L, hs/2) complex."""
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * rotation).flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.dim // config.num_heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.proj = nn.Linear(config.dim, config.dim, bias=False)
        self.dropout = config.dropout

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, L, hs)

    def forward(
        self,
        x: Tensor,
        rotation: Tensor,
        cache: tuple[Tensor, Tensor] | None = None,
        start: int = 0,
    ) -> Tensor:
        """x (B, L, D) at window positions start..start+L-1; ``cache`` (k, v) each (B, nh, max, hs)
        receives this call's keys/values and supplies the earlier ones."""
        batch, length, dim = x.shape
        q, k, v = self._heads(x)
        q, k = _rotate(q, rotation), _rotate(k, rotation)
        if cache is not None:
            k_cache, v_cache = cache
            k_cache[:, :, start : start + length] = k
            v_cache[:, :, start : start + length] = v
            k, v = k_cache[:, :, : start + length], v_cache[:, :, : start + length]
        causal = length > 1  # one new query attends to every cached key
        assert not (causal and start > 0), "multi-token calls start at the window start"
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=causal)
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = nn.Sequential(
            nn.Linear(config.dim, 4 * config.dim),
            nn.GELU(),
            nn.Linear(4 * config.dim, config.dim),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, rotation: Tensor, cache=None, start: int = 0) -> Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), rotation, cache, start))
        return x + self.dropout(self.mlp(self.norm2(x)))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


def block_weights(blocks: nn.ModuleList) -> list[tuple[Tensor, ...]]:
    """Each block's tensors in the order :func:`step_blocks` takes them."""
    return [
        (
            b.norm1.weight,
            b.norm1.bias,
            b.attn.qkv.weight,
            b.attn.proj.weight,
            b.norm2.weight,
            b.norm2.bias,
            b.mlp[0].weight,
            b.mlp[0].bias,
            b.mlp[2].weight,
            b.mlp[2].bias,
        )
        for b in blocks
    ]


def rotated_qkv(weight: Tensor, rotation: Tensor, heads: int) -> Tensor:
    """The qkv weight (3 D, D_in) with one position's rotary rotation (hs / 2,) complex folded into
    its query and key rows: rotating a projection is the projection by rotated rows."""
    dim = weight.shape[0] // 3
    rows = weight.view(3, heads, dim // heads, -1).permute(0, 1, 3, 2)  # (3, nh, D_in, hs)
    qk = _rotate(rows[:2].contiguous(), rotation)
    return torch.cat([qk, rows[2:]]).permute(0, 1, 3, 2).reshape(weight.shape).contiguous()


def layer_caches(cache: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
    """A stream's KV cache (layers, 2, B, nh, max, hs) as each layer's views (keys and values
    (2, B, nh, max, hs), keys, values), taken once per stream rather than at every step."""
    return [(kv, kv[0], kv[1]) for kv in cache]


def step_blocks(
    weights: list[tuple[Tensor, ...]],
    caches: list[tuple[Tensor, Tensor, Tensor]],
    x: Tensor,
    rotation: Tensor | None,
    position: int,
    heads: int,
) -> Tensor:
    """One position x (B, D) through every block with plain functional calls, writing its keys and
    values at ``position`` of each block's preallocated cache (:func:`layer_caches`) and attending
    to all before it. At batch 1 the per-op overhead (Python and dispatch on a CPU, kernel
    launches on a GPU) is what a step costs, so this path skips the module calls, dropout and
    reshapes that the training forward needs (same arithmetic), and takes one matmul for the
    queries, keys and values and one write for the keys and values. ``rotation`` None: the qkv
    weights already hold this position's rotation (:func:`rotated_qkv`)."""
    batch, dim = x.shape
    end = position + 1
    for (n1w, n1b, qkv_w, proj_w, n2w, n2b, fc1_w, fc1_b, fc2_w, fc2_b), (kv, keys, values) in zip(
        weights, caches, strict=True
    ):
        qkv = F.linear(F.layer_norm(x, (dim,), n1w, n1b), qkv_w).view(batch, 3, heads, -1)
        if rotation is not None:
            qkv = torch.cat([_rotate(qkv[:, :2], rotation), qkv[:, 2:]], dim=1)
        kv[:, :, :, position] = qkv[:, 1:].transpose(0, 1)  # (2, B, nh, hs)
        y = F.scaled_dot_product_attention(
            qkv[:, :1].transpose(1, 2), keys[:, :, :end], values[:, :, :end]
        )  # (B, nh, 1, hs)
        x = x + F.linear(y.view(batch, dim), proj_w)
        h = F.gelu(F.linear(F.layer_norm(x, (dim,), n2w, n2b), fc1_w, fc1_b))
        x = x + F.linear(h, fc2_w, fc2_b)
    return x


class TransformerPrior(Prior):
    """Causal transformer prior. tokens (B, N) -> logits (B, N, vocab_size)."""

    def __init__(self, config: PriorConfig):
        super().__init__(config)
        self.token_embedding = nn.Embedding(config.vocab_size + 1, config.dim)  # + start token
        self.slot_embedding = nn.Embedding(config.tokens_per_block, config.dim)  # next token's slot
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.apply(_init_weights)
        rotation = _rotary_table(config.context_tokens + 1, config.dim // config.num_heads, "cpu")
        self.register_buffer("rotation", rotation, persistent=False)

    def _rotation(self, start: int, length: int) -> Tensor:
        if start + length > self.rotation.shape[0]:  # longer than the context: training may ask
            head_dim = self.config.dim // self.config.num_heads
            self.rotation = _rotary_table(start + length, head_dim, self.rotation.device)
        return torch.view_as_complex(self.rotation[start : start + length].float())

    def _run(self, ids: Tensor, start: int = 0, caches: list | None = None) -> Tensor:
        """ids (B, L) at window positions start... -> masked logits (B, L, V)."""
        length = ids.shape[1]
        positions = torch.arange(start, start + length, device=ids.device) % self.tokens_per_block
        x = self.token_embedding(ids) + self.slot_embedding(positions)
        rotation = self._rotation(start, length)
        for i, block in enumerate(self.blocks):
            x = block(x, rotation, None if caches is None else caches[i], start)
        return self.masked(self.head(self.norm(x)), start)

    def window_logits(self, tokens: Tensor) -> Tensor:
        return self._run(self.with_start(tokens))

    def next_logits(self, tokens: Tensor) -> Tensor:
        return self.window_logits(tokens[:, self.window_start(tokens.shape[1]) :])[:, -1]

    def stream(self, tokens: Tensor) -> TransformerStream:
        return TransformerStream(self, tokens)


class TransformerStream(Stream):
    """KV-cached decoding: one token per ``push``; a full window triggers a slide and a rebuild."""

    def __init__(self, prior: TransformerPrior, tokens: Tensor):
        config = prior.config
        self.prior = prior
        batch = tokens.shape[0]
        self.capacity = config.context_tokens + 1
        shape = (
            config.num_layers,
            2,
            batch,
            config.num_heads,
            self.capacity,
            config.dim // config.num_heads,
        )
        weight = prior.head.weight
        self.cache = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        self.window = tokens.new_zeros(batch, config.context_tokens)
        self.num_tokens = tokens.shape[1]
        self.start = prior.window_start(self.num_tokens)
        kept = tokens[:, self.start :]
        self.window[:, : kept.shape[1]] = kept
        self.vocab_size = config.vocab_size
        self.shape = (batch, config.dim, config.num_heads)
        self.rotation = torch.view_as_complex(prior.rotation.float().contiguous())
        self.weights = block_weights(prior.blocks)
        self.layers = layer_caches(self.cache)
        self._prefill()

    def _prefill(self) -> Tensor:
        length = self.num_tokens - self.start
        ids = self.prior.with_start(self.window[:, :length])
        caches = [(keys, values) for _, keys, values in self.layers]
        self.logits, self._filled = self.prior._run(ids, 0, caches)[:, -1], (0, self.vocab_size)
        return self.logits

    def push(self, token: Tensor) -> Tensor:
        prior = self.prior
        length = self.num_tokens - self.start  # window tokens before this one
        self.window[:, length] = token
        self.num_tokens += 1
        start = prior.window_start(self.num_tokens)
        if start != self.start:  # slide: keep the latest blocks, rebuild the cache from them
            kept = self.window[:, start - self.start : length + 1].clone()
            self.window[:, : kept.shape[1]] = kept
            self.start = start
            return self._prefill()
        return self._step(token, length + 1)

    def _step(self, token: Tensor, position: int) -> Tensor:
        """One token at window ``position`` through every block, with plain functional calls:
        at batch 1 the per-op Python overhead is what a token costs, so this path skips module
        calls, dropout and reshapes that the training forward needs (same arithmetic)."""
        prior, (_, dim, heads) = self.prior, self.shape
        slot = position % prior.tokens_per_block
        x = prior.token_embedding.weight[token] + prior.slot_embedding.weight[slot]  # (B, D)
        x = step_blocks(self.weights, self.layers, x, self.rotation[position], position, heads)
        lo, hi = prior.slot_ranges[slot]
        x = F.layer_norm(x, (dim,), prior.norm.weight, prior.norm.bias)
        return self._set_logits(F.linear(x, prior.head.weight[lo:hi]), (lo, hi))
