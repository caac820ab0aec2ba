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
from ..checkpoint import load_codec, load_into, read_model_file
from ..errors import ConfigError
from ..recipe import Recipe
from .data import held_out_names, recipe_files

ENCODE_SECONDS = 30.0  # audio encoded per codec call while extracting codes (memory stays flat)


class _PriorLoss(nn.Module):
    """Wraps the prior so DDP / torch.compile see the loss as ``forward``."""

    def __init__(self, prior: nn.Module, own_context: float = 0.0, passes: int = 1, span: int = 1):
        super().__init__()
        self.prior = prior
        self.own_context, self.passes, self.span = own_context, passes, span

    def forward(self, tokens: Tensor) -> Tensor:
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
        self.train_tokens = [t for t in self.train_tokens if len(t) >= context]
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

    def _tokens(self, path: Path, cache: Path, device: str, on_message) -> np.ndarray:
        return cached_tokens(self.codec, path, self.config.num_levels, cache, device, on_message)

    def batch(self, rng: np.random.Generator, batch_size: int) -> Tensor:
        """(B, context_tokens) windows starting at random block boundaries of random files."""
        context, per_block = self.config.context_tokens, self.config.tokens_per_block
        windows = []
        for _ in range(batch_size):
            tokens = self.train_tokens[rng.choice(len(self.train_tokens), p=self.weights)]
            start = int(rng.integers(0, (len(tokens) - context) // per_block + 1)) * per_block
            windows.append(np.asarray(tokens[start : start + context], dtype=np.int64))
        return torch.from_numpy(np.stack(windows))

    def loss(self, module: nn.Module, tokens: Tensor, autocast) -> tuple[Tensor, dict[str, float]]:
        with autocast():
            loss = module(tokens).float()
        # float64 on the device: the figure float(loss) / log(2) gave, without waiting for it
        return loss, {"bits_per_token": loss.detach().double() / float(np.log(2))}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, run_dir: Path, step: int, device: str) -> dict:
        """Bits per token and bits/s on up to ``eval.num_clips`` windows of each held-out file."""
        from ..prior.likelihood import bits_per_token

        if not self.val_tokens:
            return {}
        context, per_block = self.config.context_tokens, self.config.tokens_per_block
        windows = []
        for tokens in self.val_tokens:
            usable = len(tokens) // per_block * per_block
            for start in range(0, usable - context + 1, context)[: self.recipe.eval.num_clips]:
                windows.append(np.asarray(tokens[start : start + context], dtype=np.int64))
        if not windows:
            return {}
        was_training = model.training
        model.eval()
        bits = bits_per_token(model, torch.from_numpy(np.stack(windows)).to(device))
        model.train(was_training)
        return {"val_bits_per_token": bits, "val_bits_per_second": bits * self.tokens_per_second}

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
