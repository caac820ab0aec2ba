"""The prior stage: codes extracted ONCE with the frozen codec, then next-token training on
block-aligned windows of ``prior.context_tokens`` tokens."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .. import audio
from ..atomic import atomic_write
from ..checkpoint import load_into, read_model_file
from ..codec.io import load_codec
from ..errors import ConfigError
from ..prior.frame_controls import CONTROL_PARAMETERS
from ..recipe import Recipe
from .data import held_out_names, recipe_files

CONTROL_KEYS = (*CONTROL_PARAMETERS, "plan_")  # a prior's control parts
ENCODE_SECONDS = 30.0  # audio encoded per codec call while extracting codes (memory stays flat)


class _PriorLoss(nn.Module):
    """Wraps the prior so DDP / torch.compile see the loss as ``forward``."""

    def __init__(self, prior: nn.Module, own_context: float = 0.0, passes: int = 1, span: int = 1):
        super().__init__()
        self.prior = prior
        self.own_context, self.passes, self.span = own_context, passes, span

    def forward(self, tokens: Tensor, controls: Tensor | None = None) -> Tensor:
        if controls is not None:
            return self.prior.loss(tokens, controls)
        if self.own_context > 0:  # draws from torch's generator, seeded per step by the loop
            return self.prior.own_context_loss(
                tokens, self.own_context, passes=self.passes, span=self.span
            )
        return self.prior.loss(tokens)


@torch.no_grad()
def extract_tokens(codec, path: Path, num_levels: int, device: str) -> np.ndarray:
    """Token ids (N,) of a file's first ``num_levels`` levels, mono, in the one flatten order."""
    config = codec.config
    chunk = (
        max(1, round(ENCODE_SECONDS * config.sample_rate / config.block_samples))
        * config.block_samples
    )
    parts = []
    for block in audio.stream(path, chunk, config.sample_rate):
        wav = torch.from_numpy(audio.mix_channels(block, 1, str(path)))[None].to(device)
        codes = codec.encode(wav).keep(num_levels)
        parts.append(codes.to_tokens(config.codebook_size)[0].cpu().numpy())
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    dtype = np.int16 if num_levels * config.codebook_size <= np.iinfo(np.int16).max else np.int32
    return tokens.astype(dtype)


def cached_tokens(
    codec,
    path: Path,
    num_levels: int,
    cache: Path,
    device: str = "cpu",
    on_message: Callable[[str], None] | None = None,
) -> np.ndarray:
    """:func:`extract_tokens` of ``path``, kept in ``cache`` (memory-mapped on later calls) under a
    name that changes with the file, the codec's id and ``num_levels``."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{codec.checkpoint_id}"
    key += f"|{num_levels}"
    target = cache / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npy"
    if not target.is_file():
        if on_message is not None:
            on_message(f"extracting codes: {path.name}")
        tokens = extract_tokens(codec, path, num_levels, device)
        cache.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as f:
            np.save(f, tokens, allow_pickle=False)
    return np.load(target, mmap_mode="r", allow_pickle=False)


def _widened(state: dict[str, Tensor], own: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` of a prior trained with fewer controls (or none) -> the state with the control
    parts it lacks taken from ``own`` (where they start at zero) and its control layers' weights
    padded with zero columns, so it computes as it did; ``state`` itself where nothing lacks."""
    lacking = {k: v for k, v in own.items() if k.startswith(CONTROL_KEYS) and k not in state}
    out = {**state, **lacking}
    layers = ("control_in.weight", "control_depth.weight")
    narrow = [k for k in layers if out[k].shape != own[k].shape]
    if not lacking and not narrow:
        return state
    for name in narrow:
        old, wide = out[name], own[name]
        if old.shape[0] != wide.shape[0] or old.shape[1] > wide.shape[1]:
            raise ConfigError(
                f"init_from: {name} {tuple(old.shape)} cannot widen to {tuple(wide.shape)}"
            )
        out[name] = torch.zeros_like(wide, dtype=old.dtype)
        out[name][:, : old.shape[1]] = old
    return out


@dataclasses.dataclass
class Windows:
    """A batch of token windows (B, N) with their per-frame controls (B, N // P, C) or None."""

    tokens: Tensor
    controls: Tensor | None = None

    def to(self, device) -> Windows:
        controls = None if self.controls is None else self.controls.to(device)
        return Windows(self.tokens.to(device), controls)


class PriorTask:
    """Everything stage-specific about training a prior; the loop in loop.py drives it."""

    plot_keys = ("loss", "val_bits_per_token")
    best_key, best_lower = "val_bits_per_token", True  # best.safetensors: fewest held-out bits

    def after_step(self, step: int) -> dict[str, float]:
        return {}

    def save_extra_state(self, run_dir: Path, step: int) -> None:
        """A prior has no state beyond its weights and optimizer."""

    def load_extra_state(self, run_dir: Path) -> None:
        """A prior has no state beyond its weights and optimizer."""

    def __init__(
        self, recipe: Recipe, run_dir: Path, device: str, on_message: Callable[[str], None]
    ):
        from ..prior import build_prior
        from ..prior.likelihood import tokens_per_second

        self.recipe = recipe
        if not Path(recipe.codec).expanduser().is_file():
            raise ConfigError(
                f"codec: {recipe.codec}: no such model file; train the codec first "
                "(vqaudio train recipes/<name>-codec.yaml) or pass --set codec=PATH"
            )
        self.codec = load_codec(Path(recipe.codec).expanduser(), device)
        self.codec_id = self.codec.checkpoint_id
        codec_config = self.codec.config
        num_levels = recipe.prior.num_levels
        if num_levels > codec_config.num_levels:
            raise ConfigError(
                f"prior.num_levels is {num_levels} but codec {recipe.codec} has only "
                f"{codec_config.num_levels} levels; lower prior.num_levels"
            )
        self.config = dataclasses.replace(  # copied from the codec file, never typed by hand
            recipe.prior,
            codebook_size=codec_config.codebook_size,
            level_strides=codec_config.level_strides[:num_levels],
        )
        self.model = build_prior(self.config)
        if recipe.init_from:
            state, _, _ = read_model_file(recipe.init_from, "prior")
            if self.config.controls:
                given, state = state, _widened(state, self.model.state_dict())
                if state is not given:
                    on_message("control parts the file lacks start at zero: it computes as before")
            load_into(self.model, state, recipe.init_from)  # must fit the recipe's prior section
            on_message(f"initialised from {recipe.init_from}")
        train = recipe.train
        self.train_module = _PriorLoss(  # kind frames: checked by the recipe
            self.model, train.own_context, train.own_passes, train.own_span
        )
        self.tokens_per_second = tokens_per_second(
            codec_config.sample_rate, codec_config.hop_length, self.config.level_strides
        )
        train_files, val_files = recipe_files(recipe.data)
        cache = run_dir / "codes"
        self.train_tokens = [self._tokens(f, cache, device, on_message) for f in train_files]
        self.val_tokens = [self._tokens(f, cache, device, on_message) for f in val_files]
        context = self.config.context_tokens
        kept = [(f, t) for f, t in zip(train_files, self.train_tokens) if len(t) >= context]
        train_files = [f for f, _ in kept]  # the files trained on, in the order of their tokens
        self.train_tokens = [t for _, t in kept]
        if not self.train_tokens:
            raise ConfigError(
                "no training file is longer than the prior's context "
                f"({self.config.context_blocks} blocks); lower prior.context_blocks or add "
                "longer files"
            )
        lengths = np.array([len(t) for t in self.train_tokens], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        hours = lengths.sum() / self.tokens_per_second / 3600
        params = sum(p.numel() for p in self.model.parameters()) / 1e6
        on_message(
            f"data: {len(self.train_tokens)} training files ({hours:.2f} h), {len(val_files)} held "
            f"out; {self.tokens_per_second:g} tokens/s; windows of {context} tokens; prior "
            f"{params:.2f} M params"
        )
        on_message(held_out_names(val_files))
        self.train_grids = self.val_grids = None
        if self.config.controls:
            self._load_grids(run_dir, train_files, val_files, codec_config, on_message)

    def _load_grids(self, run_dir, train_files, val_files, codec_config, on_message) -> None:
        """Beat grids of every file (analysed once into the run folder), and the plan
        statistics they give, written into the prior's buffers."""
        from ..controls.grid import NUM_CONTROLS
        from ..controls.plan import statistics
        from ..controls.store import cached_grid, grid_path

        cache = run_dir / "grids"
        self.train_grids = []
        for path in train_files:
            if not grid_path(path, cache).is_file():
                on_message(f"analysing beats and chords: {path.name}")
            self.train_grids.append(cached_grid(path, cache))
        self.val_grids = [cached_grid(path, cache) for path in val_files]
        found = [g for g in self.train_grids if g is not None]
        patterns = self.config.controls >= NUM_CONTROLS
        for name, value in statistics(found, patterns).items():
            getattr(self.model, name).copy_(value)
        self.frame_seconds = codec_config.hop_length * self.config.level_strides[0]
        self.frame_seconds /= codec_config.sample_rate
        on_message(f"controls: beat grids in {len(found)} of {len(self.train_grids)} files")

    def _tokens(self, path: Path, cache: Path, device: str, on_message) -> np.ndarray:
        return cached_tokens(self.codec, path, self.config.num_levels, cache, device, on_message)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Tensor | Windows:
        """(B, context_tokens) windows starting at random block boundaries of random files
        (with their controls, for a prior with controls)."""
        context, per_block = self.config.context_tokens, self.config.tokens_per_block
        windows, controls = [], []
        for _ in range(batch_size):
            index = rng.choice(len(self.train_tokens), p=self.weights)
            tokens = self.train_tokens[index]
            start = int(rng.integers(0, (len(tokens) - context) // per_block + 1)) * per_block
            windows.append(np.asarray(tokens[start : start + context], dtype=np.int64))
            if self.train_grids is not None:
                drop = rng.random(3) < self.recipe.train.control_dropout
                controls.append(self._controls(self.train_grids[index], start, drop))
        tokens = torch.from_numpy(np.stack(windows))
        if self.train_grids is None:
            return tokens
        return Windows(tokens, torch.from_numpy(np.stack(controls)))

    def _controls(self, grid, start: int, drop=(False, False)) -> np.ndarray:
        """Controls (context_blocks, C) of the window from token ``start`` of ``grid``'s file;
        ``drop``: (rhythm, harmony, onsets) parts left out."""
        from ..controls.grid import drop as drop_parts
        from ..controls.grid import render

        first = start // self.config.tokens_per_block
        out = render(grid, True, self.config.context_blocks, self.frame_seconds, first)
        return drop_parts(out, *(bool(d) for d in drop))

    def loss(
        self, module: nn.Module, batch: Tensor | Windows, autocast
    ) -> tuple[Tensor, dict[str, float]]:
        with autocast():
            if isinstance(batch, Windows):
                loss = module(batch.tokens, batch.controls).float()
            else:
                loss = module(batch).float()
        # float64 on the device: the figure float(loss) / log(2) gave, without waiting for it
        return loss, {"bits_per_token": loss.detach().double() / float(np.log(2))}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, run_dir: Path, step: int, device: str) -> dict:
        """Bits per token and bits/s on up to ``eval.num_clips`` windows of each held-out file."""
        from ..prior.likelihood import bits_per_token

        if not self.val_tokens:
            return {}
        context, per_block = self.config.context_tokens, self.config.tokens_per_block
        windows, controls = [], []
        for i, tokens in enumerate(self.val_tokens):
            usable = len(tokens) // per_block * per_block
            for start in range(0, usable - context + 1, context)[: self.recipe.eval.num_clips]:
                windows.append(np.asarray(tokens[start : start + context], dtype=np.int64))
                if self.val_grids is not None:
                    controls.append(self._controls(self.val_grids[i], start))
        if not windows:
            return {}
        was_training = model.training
        model.eval()
        tokens = torch.from_numpy(np.stack(windows)).to(device)
        result = {}
        if controls:  # with the controls, and (as before) without
            given = torch.from_numpy(np.stack(controls)).to(device)
            bits = bits_per_token(model, tokens, controls=given)
            result["val_bits_free"] = bits_per_token(model, tokens)
        else:
            bits = bits_per_token(model, tokens)
        model.train(was_training)
        result.update(val_bits_per_token=bits, val_bits_per_second=bits * self.tokens_per_second)
        return result

    @staticmethod
    def describe_eval(result: dict) -> str:
        return (
            f"{result['val_bits_per_token']:.3f} bits/token, "
            f"{result['val_bits_per_second']:.0f} bits/s on held-out codes"
        )

    def save(self, model: nn.Module, path: Path) -> str:
        from ..prior import save_prior

        return save_prior(
            model,
            path,
            self.codec_id,
            codec_path=self.codec.checkpoint_path,
            code_space_id=self.codec.code_space_id,
        )
