"""A frame prior's token loop in C (``_frame_loop.c``): whole frames drawn by one call each.

At batch 1 a depth step costs PyTorch ~60 small ops, and their dispatch, not their arithmetic, is
what a token costs. ``_frame_loop.c`` does per frame the depth steps of ``FrameStream`` with the
rule of ``sampling.sample_next`` (in float32, drawing as ``sampling.draw`` does, from the same
uniform numbers of the same torch generators), and the stream's temporal step; so both loops
give the same tokens. The stream keeps the model's state; this loop drives it by
``FrameStream.push_frame``. Built with the package as an optional extension: without a C
compiler the package installs without it and sampling runs in PyTorch, as it does with
``VQAUDIO_FAST_DEPTH=0``. Loaded with ctypes; only for float32 weights on the CPU.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .sampling import Sampling, uniforms

ABI = 3  # _frame_loop.c's depth_abi(): the struct layout this file describes
_F = ctypes.POINTER(ctypes.c_float)
_I32 = ctypes.POINTER(ctypes.c_int32)
_I64 = ctypes.POINTER(ctypes.c_int64)


class _Blocks(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("dim", "heads", "layers", "ffn")] + [
        (name, _F)
        for name in (
            "norm1_w",
            "norm1_b",
            "qkv",
            "proj",
            "norm2_w",
            "norm2_b",
            "fc1",
            "fc1_b",
            "fc2",
            "fc2_b",
            "norm_w",
            "norm_b",
            "rotation",
        )
    ]


class _Cache(ctypes.Structure):
    _fields_ = [("keys", _F)] + [
        (name, ctypes.c_int64) for name in ("values", "layer", "head", "step")
    ]


class _Depth(ctypes.Structure):
    _fields_ = (
        [("blocks", _Blocks)]
        + [(name, ctypes.c_int32) for name in ("per_block", "codebook", "gates")]
        + [(name, _F) for name in ("tokens", "head", "gate_w", "gate_b")]
        + [("slot_level", _I32)]
    )


class _Temporal(ctypes.Structure):
    _fields_ = (
        [("blocks", _Blocks)]
        + [(name, ctypes.c_int32) for name in ("per_block", "width", "context")]
        + [(name, _F) for name in ("embedding", "frame_in", "frame_in_b")]
    )


class _Frame(ctypes.Structure):
    _fields_ = [
        ("bias", _F),
        ("copy", _I64),
        ("features", _F),
        ("vocab", ctypes.c_int64),
        ("cache_scale", ctypes.c_float),
        ("temperature", _F),
        ("top_k", _I32),
        ("top_p", _F),
        ("held", _I64),
        ("uniform", _F),
        ("offset", _F),
        ("hold_cap", ctypes.c_float),
        ("start_id", ctypes.c_int64),
        ("out", _I64),
        ("scratch", _F),
    ]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled ``_frame_loop`` library next to this file, or None (not built, or disabled by
    ``VQAUDIO_FAST_DEPTH=0``)."""
    if os.environ.get("VQAUDIO_FAST_DEPTH", "1") == "0":
        return None
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_frame_loop{suffix}"
        if path.is_file():
            try:
                lib = ctypes.CDLL(str(path))
                abi = lib.depth_abi()
            except (OSError, AttributeError):  # unloadable, or built before depth_abi existed
                return None
            if abi != ABI:  # built from another _frame_loop.c (an old build): its structs differ
                return None
            lib.depth_frame.argtypes = [ctypes.POINTER(_Depth), ctypes.POINTER(_Frame)]
            lib.depth_frame.restype = ctypes.c_int
            lib.depth_scratch_floats.argtypes = [ctypes.POINTER(_Depth)]
            lib.depth_scratch_floats.restype = ctypes.c_int64
            lib.temporal_step.argtypes = [
                ctypes.POINTER(_Temporal),
                _I64,
                ctypes.POINTER(_Cache),
                ctypes.c_int,
                _F,
                _F,
            ]
            lib.temporal_step.restype = ctypes.c_int
            lib.temporal_scratch_floats.argtypes = [ctypes.POINTER(_Temporal)]
            lib.temporal_scratch_floats.restype = ctypes.c_int64
            return lib
    return None


def _ptr(tensor: Tensor, kind):
    return ctypes.cast(tensor.data_ptr(), kind)


def _blocks(blocks, norm, rotation: Tensor, keep: list) -> _Blocks:
    """A ``_Blocks`` over transformer.Block modules (matrices transposed, float32, contiguous),
    their final LayerNorm ``norm`` and rotary table (positions, head_dim / 2, 2); the tensors
    are appended to ``keep``, which must outlive the struct."""

    def stack(get, transpose: bool = False) -> Tensor:
        parts = [get(b).detach().float() for b in blocks]
        return torch.stack([p.t() if transpose else p for p in parts]).contiguous()

    arrays = {
        "norm1_w": stack(lambda b: b.norm1.weight),
        "norm1_b": stack(lambda b: b.norm1.bias),
        "qkv": stack(lambda b: b.attn.qkv.weight, True),
        "proj": stack(lambda b: b.attn.proj.weight, True),
        "norm2_w": stack(lambda b: b.norm2.weight),
        "norm2_b": stack(lambda b: b.norm2.bias),
        "fc1": stack(lambda b: b.mlp[0].weight, True),
        "fc1_b": stack(lambda b: b.mlp[0].bias),
        "fc2": stack(lambda b: b.mlp[2].weight, True),
        "fc2_b": stack(lambda b: b.mlp[2].bias),
        "norm_w": norm.weight.detach().float().contiguous(),
        "norm_b": norm.bias.detach().float().contiguous(),
        "rotation": rotation.detach().float().contiguous(),
    }
    keep.extend(arrays.values())
    first = blocks[0]
    return _Blocks(
        dim=first.norm1.weight.shape[0],
        heads=first.attn.num_heads,
        layers=len(blocks),
        ffn=first.mlp[0].out_features,
        **{k: _ptr(v, _F) for k, v in arrays.items()},
    )


class FrameLoop:
    """A FramePrior's temporal step and its depth + ``sampling`` rule for a whole frame, laid
    out for ``_frame_loop.c``. Build it with :func:`frame_loop`, which says None where the C
    loop does not apply. The weights are copied: changing the prior afterwards does not reach
    it."""

    def __init__(self, prior, lib: ctypes.CDLL, sampling: Sampling):
        self.lib = lib
        config = prior.config
        self.keep: list[Tensor] = []
        size = config.codebook_size
        gates = [prior.copy_gate] + ([prior.count_gate] if prior.count_gate is not None else [])
        with torch.no_grad():
            depth = {
                "tokens": F.linear(prior.token_embedding.weight, prior.depth_token.weight),
                "head": prior.head.weight.view(config.num_levels, size, -1).transpose(1, 2),
                "gate_w": torch.cat([g.weight for g in gates]),
                "gate_b": torch.cat([g.bias for g in gates]),
            }
            depth = {k: v.detach().float().contiguous() for k, v in depth.items()}
            temporal = {
                "embedding": prior.token_embedding.weight.detach().float().contiguous(),
                "frame_in": prior.frame_in.weight.detach().float().t().contiguous(),
                "frame_in_b": prior.frame_in.bias.detach().float().contiguous(),
            }
        self.keep.extend([*depth.values(), *temporal.values()])
        self.frame_in_b = temporal["frame_in_b"]  # the C step's view; rewritten per row
        self.base_frame_in_b = self.frame_in_b.clone()
        levels = [0] * config.tokens_per_block
        for level, slots in enumerate(prior.level_slots):
            for j in slots:
                levels[j] = level
        self.slot_level = torch.tensor(levels, dtype=torch.int32)
        self.depth = _Depth(
            blocks=_blocks(prior.depth_blocks, prior.depth_norm, prior.depth_rotation, self.keep),
            per_block=config.tokens_per_block,
            codebook=size,
            gates=len(depth["gate_b"]),
            slot_level=_ptr(self.slot_level, _I32),
            **{k: _ptr(v, _F) for k, v in depth.items()},
        )
        self.temporal = _Temporal(
            blocks=_blocks(prior.blocks, prior.norm, prior.rotation, self.keep),
            per_block=config.tokens_per_block,
            width=config.frame_embedding_dim,
            context=config.context_blocks,
            **{k: _ptr(v, _F) for k, v in temporal.items()},
        )
        self.depth_scratch = torch.empty(int(lib.depth_scratch_floats(ctypes.byref(self.depth))))
        self.temporal_scratch = torch.empty(
            int(lib.temporal_scratch_floats(ctypes.byref(self.temporal)))
        )
        self.start_id, self.vocab_size = prior.start_id, config.vocab_size
        self.per_block, self.dim = config.tokens_per_block, config.dim
        self._set_sampling(sampling, levels, prior.slot_ranges, config.num_levels)

    def _set_sampling(self, sampling: Sampling, levels: list[int], ranges, num_levels: int):
        """Each slot's settings as the C loop reads them."""
        top_k, top_p = sampling.per_level(num_levels)
        self.temperature = torch.full((self.per_block,), float(sampling.temperature))
        self.top_k = torch.tensor([top_k[level] or 0 for level in levels], dtype=torch.int32)
        self.top_p = torch.tensor(
            [1.0 if top_p[level] is None else top_p[level] for level in levels],
            dtype=torch.float32,
        )
        self.hold_slots = torch.tensor([sampling.exact_hold and level == 0 for level in levels])
        self.offsets = torch.tensor([lo for lo, _ in ranges])  # each slot's first id
        self.hold_cap = sampling.hold_cap

    def sample(
        self,
        stream,
        tokens: Tensor,
        start: int,
        generators: list[torch.Generator],
        shift: Tensor | None,
        on_progress=None,
    ) -> None:
        """Fill ``tokens`` (B, N) from ``start`` (a frame's first slot; N - start whole frames)
        frame by frame, moving ``stream`` (a FrameStream standing at ``start``) along. ``shift``
        (P, codebook): added to each slot's logits (the contrast), or None."""
        batch, end = tokens.shape
        every = self.per_block
        for i in range(start, end, every):
            held = torch.full((batch, every), -1, dtype=torch.long)
            if i >= every:  # the same slot one frame earlier, within its codebook
                earlier = tokens[:, i - every : i].cpu() - self.offsets
                held = torch.where(self.hold_slots, earlier, held)
            draws = uniforms(generators, batch, every, tokens.device).cpu()
            copy = stream.copy_ids
            rows = [
                self.frame(
                    stream.depth_bias[:, b],
                    copy[b],
                    None if stream.features is None else stream.features[b],
                    stream.cache_scale,
                    held[b],
                    draws[b],
                    shift,
                )
                for b in range(batch)
            ]
            frame = torch.stack(rows).to(stream.window.device)
            stream.push_frame(frame, last=i + every == end, temporal=self.temporal_step)
            tokens[:, i : i + every] = frame.to(tokens.device)
            if on_progress is not None:
                on_progress(i + every - start, end - start)

    def temporal_step(
        self, frame: Tensor, cache: Tensor, position: int, extra: Tensor | None = None
    ) -> Tensor:
        """The temporal step of every row: frame (B, P) ids at window ``position``, its keys
        and values written into ``cache`` (layers, 2, B, heads, context, head_dim) float32 (a
        FrameStream's temporal cache) -> normalised states h (B, dim). ``extra`` (B, dim) is
        added to each row's input (the frame's controls): it goes in through the input
        projection's bias, which the C step reads at each call."""
        layers, _, batch, heads, context, head_dim = cache.shape
        assert cache.is_contiguous() and cache.dtype == torch.float32
        frame = frame.to(torch.int64).contiguous()
        h = torch.empty(batch, self.dim)
        for b in range(batch):
            if extra is not None:
                self.frame_in_b.copy_(self.base_frame_in_b + extra[b].float())
            entry = _Cache(
                keys=_ptr(cache[0, 0, b], _F),
                values=batch * heads * context * head_dim,  # cache[l, 1, b] - cache[l, 0, b]
                layer=2 * batch * heads * context * head_dim,
                head=context * head_dim,
                step=head_dim,
            )
            self.lib.temporal_step(
                ctypes.byref(self.temporal),
                _ptr(frame[b], _I64),
                ctypes.byref(entry),
                position,
                _ptr(h[b], _F),
                _ptr(self.temporal_scratch, _F),
            )
        if extra is not None:
            self.frame_in_b.copy_(self.base_frame_in_b)
        return h

    def frame(
        self,
        bias: Tensor,
        copy: Tensor,
        features: Tensor | None,
        cache_scale: float,
        held: Tensor,
        uniform: Tensor,
        offset: Tensor | None = None,
    ) -> Tensor:
        """One row's frame -> its token ids (P,). bias (P, d) float32: what each depth position
        adds (``FrameStream.depth_bias``); copy (P,) int64: each slot's copy index in its
        codebook, -1 for none; features (2, V) float32 log(1 + counts) or None; held (P,) int64
        (-1: none); uniform (P,) float32 draws in [0, 1); offset (P, codebook) float32 added to
        each slot's logits, or None."""
        out = torch.empty(self.per_block, dtype=torch.int64)
        bias, copy = bias.contiguous(), copy.contiguous()
        offset = None if offset is None else offset.float().contiguous()
        features = None if features is None else features.contiguous()
        frame = _Frame(
            bias=_ptr(bias, _F),
            copy=_ptr(copy, _I64),
            features=None if features is None else _ptr(features, _F),
            vocab=self.vocab_size,
            cache_scale=cache_scale,
            temperature=_ptr(self.temperature, _F),
            top_k=_ptr(self.top_k, _I32),
            top_p=_ptr(self.top_p, _F),
            held=_ptr(held, _I64),
            uniform=_ptr(uniform, _F),
            offset=None if offset is None else _ptr(offset, _F),
            hold_cap=self.hold_cap,
            start_id=self.start_id,
            out=_ptr(out, _I64),
            scratch=_ptr(self.depth_scratch, _F),
        )
        self.lib.depth_frame(ctypes.byref(self.depth), ctypes.byref(frame))
        return out


def frame_loop(prior, sampling: Sampling) -> FrameLoop | None:
    """A FrameLoop for ``prior`` where the C loop applies: a frame prior with float32 weights
    on the CPU and the library built; else None (sampling stays in PyTorch)."""
    lib = library()
    if lib is None or not hasattr(prior, "depth_blocks"):
        return None
    weight = prior.head.weight
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return None
    return FrameLoop(prior, lib, sampling)
