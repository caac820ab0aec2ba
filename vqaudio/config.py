"""Frozen config dataclasses and the strict YAML/dict builder that makes them.

Every number a later stage needs is derived here as a property (``hop_length``, ``frame_rates``,
``bitrates``), never stored twice.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class CodecConfig:
    """Codec architecture and quantizer options.

    The encoder downsamples by ``prod(strides)`` = ``hop_length`` samples per latent frame;
    quantizer level k (coarse -> fine) runs at ``sample_rate / hop_length / level_strides[k]``
    frames/s.
    """

    sample_rate: int = 24000
    channels: int = 1  # channels the network sees; files with more are coded channel by channel
    encoder_dim: int = 16  # channels after the first conv; doubled at every downsampling stage
    strides: tuple[int, ...] = (2, 4, 6, 10)  # hop_length = 480 samples -> 50 frames/s at 24 kHz
    latent_dim: int = 128  # D of z
    latent_norm: str = "batch"  # batch: BatchNorm1d on z (running statistics at inference) | none
    decoder_dim: int = 256  # channels before the first upsampling; halved at every stage
    dilations: tuple[int, ...] = (1, 3, 9)  # residual units per stage
    activation: str = "snake"  # snake | elu
    # conv: strided convs on the waveform | fourier: a Fourier-basis strided conv of n_fft samples
    # at the hop, log-magnitude, ConvNeXt blocks at the frame rate (codec/spectral.py)
    encoder: str = "conv"
    frontend: str = "stft"  # fourier encoder: stft (fixed basis, fast) | learned (trainable conv)
    n_fft: int = 2048  # fourier encoder / spectral decoder: analysis window (85 ms at 24 kHz)
    spectral_dim: int = 384  # fourier encoder / spectral decoder: channels of their ConvNeXt blocks
    encoder_layers: int = 4  # fourier encoder: ConvNeXt blocks
    spectral_layers: int = 8  # spectral decoder: ConvNeXt blocks
    griffin_lim_iters: int = 32  # spectral decoder: phase-retrieval iterations at inference
    # conv: transposed-conv mirror of the encoder; istft: ConvNeXt at a frame rate + inverse STFT;
    # spectral: ConvNeXt -> STFT magnitude at the latent frame rate, phase by Griffin-Lim
    decoder: str = "conv"
    istft_dim: int = 384  # istft decoder: channels of its ConvNeXt blocks
    istft_layers: int = 8  # istft decoder: ConvNeXt blocks
    istft_upsample: int = 4  # istft decoder: STFT hop = hop_length / istft_upsample
    level_strides: tuple[int, ...] = (4, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    codebook_size: int = 1024
    codebook_dim: int = 8  # factorized lookup dimension; 0 = look up in latent_dim directly
    l2_normalize: bool = True  # cosine-similarity lookup in the low-dim space (DAC / ViT-VQGAN)
    # quantize to the unit-norm code (vqaudio 0.1; breaks residual levels) instead of the raw one
    normalize_values: bool = False
    commitment_weight: float = 0.25  # beta of the VQ-VAE objective
    codebook_weight: float = 1.0
    ema_decay: float = 0.0  # > 0: EMA codebook updates instead of the codebook loss
    kmeans_init: bool = False  # initialise each codebook by k-means on the first training batch
    # restart codes whose EMA usage falls below this fraction of a uniform share of the batch
    dead_code_threshold: float = 0.0
    quantizer_dropout: float = 0.5  # probability a training batch keeps a random prefix of levels
    # fraction of training items decoded from the unquantized latent (Moshi's Mimi): the decoder
    # learns from the encoder's full signal while the codebooks catch up
    quantizer_bypass: float = 0.0

    def __post_init__(self) -> None:
        _require(self.sample_rate >= 1000, "codec.sample_rate must be at least 1000 Hz")
        _require(self.channels >= 1, "codec.channels must be >= 1")
        _require(
            len(self.strides) >= 1 and all(s >= 1 for s in self.strides),
            "codec.strides must be a non-empty list of positive integers",
        )
        _require(len(self.level_strides) >= 1, "codec.level_strides must name at least one level")
        for coarse, fine in zip(self.level_strides, self.level_strides[1:]):
            _require(
                fine >= 1 and coarse % fine == 0,
                f"codec.level_strides {list(self.level_strides)} must be coarse -> fine, "
                "each stride a multiple of the next (e.g. [4, 2, 1, 1])",
            )
        _require(self.codebook_size >= 2, "codec.codebook_size must be >= 2")
        _require(
            self.decoder in ("conv", "istft", "spectral"),
            "codec.decoder must be 'conv', 'istft' or 'spectral'",
        )
        _require(self.encoder in ("conv", "fourier"), "codec.encoder must be 'conv' or 'fourier'")
        _require(
            self.frontend in ("stft", "learned"), "codec.frontend must be 'stft' or 'learned'"
        )
        _require(
            self.n_fft >= 16 and self.n_fft % 2 == 0 and self.n_fft >= self.hop_length,
            "codec.n_fft must be even and at least the hop length (prod(codec.strides))",
        )
        _require(
            min(self.spectral_dim, self.encoder_layers, self.spectral_layers) >= 1
            and self.griffin_lim_iters >= 0,
            "codec.spectral_dim, encoder_layers and spectral_layers must be >= 1, "
            "griffin_lim_iters >= 0",
        )
        _require(0.0 <= self.quantizer_bypass < 1.0, "codec.quantizer_bypass must be in [0, 1)")
        _require(
            self.latent_norm in ("batch", "none"), "codec.latent_norm must be 'batch' or 'none'"
        )
        _require(
            self.decoder != "istft"
            or (self.istft_upsample >= 1 and self.hop_length % self.istft_upsample == 0),
            "codec.istft_upsample must divide the hop length (prod(codec.strides))",
        )
        _require(
            self.istft_dim >= 1 and self.istft_layers >= 1,
            "codec.istft_dim and codec.istft_layers must be >= 1",
        )
        _require(self.activation in ("snake", "elu"), "codec.activation must be 'snake' or 'elu'")
        _require(0.0 <= self.quantizer_dropout <= 1.0, "codec.quantizer_dropout must be in [0, 1]")
        _require(0.0 <= self.ema_decay < 1.0, "codec.ema_decay must be in [0, 1)")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame."""
        return math.prod(self.strides)

    @property
    def num_levels(self) -> int:
        return len(self.level_strides)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second (finest possible level)."""
        return self.sample_rate / self.hop_length

    @property
    def frame_rates(self) -> tuple[float, ...]:
        """Frames per second of each quantizer level, coarse -> fine."""
        return tuple(self.frame_rate / s for s in self.level_strides)

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    @property
    def block_samples(self) -> int:
        """Samples covered by one coarse frame: encodings are padded to a multiple of this."""
        return self.hop_length * self.level_strides[0]

    @property
    def bitrates(self) -> tuple[float, ...]:
        """Bits per second of one channel when keeping the first 1, 2, ... levels."""
        total, out = 0.0, []
        for rate in self.frame_rates:
            total += rate * self.bits_per_code
            out.append(total)
        return tuple(out)

    def levels_for_bitrate(self, bitrate: float | None) -> int:
        """Most levels whose bits/s stay at or under ``bitrate`` (None: all levels)."""
        if bitrate is None:
            return self.num_levels
        fits = [n for n, b in enumerate(self.bitrates, start=1) if b <= bitrate * (1 + 1e-9)]
        if not fits:
            raise ConfigError(
                f"bitrate {bitrate:g} bps is below this codec's lowest operating point "
                f"{self.bitrates[0]:g} bps; choose one of "
                + ", ".join(f"{b / 1000:g} kbps" for b in self.bitrates)
            )
        return fits[-1]


@dataclass(frozen=True)
class PriorConfig:
    """A prior over flattened codes (see codes.py for the token order).

    It models the first ``num_levels`` codec levels; level k's tokens are ids
    ``k * codebook_size ...``. ``codebook_size`` and ``level_strides`` are copied from the codec
    the prior is trained on, never set by hand.
    """

    kind: str = "transformer"  # transformer | wavenet
    num_levels: int = 5  # codec levels modelled (5 = 1.5 kbps for the default codec)
    codebook_size: int = 1024
    level_strides: tuple[int, ...] = (4, 4, 2, 1, 1)  # of the modelled levels
    dim: int = 256
    num_layers: int = 6
    num_heads: int = 4
    context_blocks: int = 64  # context length in coarse frames (blocks of the flatten order)
    dropout: float = 0.0
    # wavenet only: gated dilated causal convs, dilations 1, 2, ... 2**(dilation_cycle - 1),
    # repeated num_cycles times; receptive field 1 + num_cycles * (kernel_size - 1) * (2**cycle - 1)
    residual_channels: int = 128
    dilation_cycle: int = 8
    num_cycles: int = 3
    kernel_size: int = 2

    def __post_init__(self) -> None:
        _require(
            self.kind in ("transformer", "wavenet"), "prior.kind must be 'transformer' or 'wavenet'"
        )
        _require(
            len(self.level_strides) == self.num_levels,
            "prior.level_strides must have one stride per modelled level (prior.num_levels)",
        )
        _require(
            self.dim % max(self.num_heads, 1) == 0,
            "prior.dim must be a multiple of prior.num_heads",
        )
        _require(self.kernel_size >= 2, "prior.kernel_size must be >= 2")
        _require(
            self.dilation_cycle >= 1 and self.num_cycles >= 1,
            "prior.dilation_cycle and prior.num_cycles must be >= 1",
        )

    @property
    def vocab_size(self) -> int:
        return self.num_levels * self.codebook_size

    @property
    def tokens_per_block(self) -> int:
        return sum(self.level_strides[0] // s for s in self.level_strides)

    @property
    def context_tokens(self) -> int:
        return self.context_blocks * self.tokens_per_block

    @property
    def receptive_field(self) -> int:
        """Tokens a wavenet prior's prediction depends on (the start token included)."""
        return 1 + self.num_cycles * (self.kernel_size - 1) * (2**self.dilation_cycle - 1)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def build(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, strictly: unknown keys and wrong types name the key.

    Nested dataclass fields are built recursively; lists become tuples.
    """
    if dataclasses.is_dataclass(raw) and isinstance(raw, cls):
        return raw
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw.keys() - fields.keys():
        hint = "".join(
            f" (did you mean {m!r}?)" for m in difflib.get_close_matches(str(key), fields, n=1)
        )
        raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        values[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    try:
        return cls(**values)
    except ConfigError as e:
        message = f"{where}: {e}" if where and not str(e).startswith(where) else str(e)
        raise ConfigError(message) from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    return value


def to_dict(config: Any) -> dict:
    """Plain JSON-able dict of a config dataclass (tuples become lists, paths strings)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


# ---------------------------------------------------------------------------------------------
# Training recipes: one YAML file = one run (see recipes/ and vqaudio/train/).


@dataclass(frozen=True)
class DataConfig:
    """Where training audio comes from and how it is cut.

    ``path`` is a folder (searched recursively) or a glob of wav/flac/ogg/mp3 files. Each file is
    decoded and resampled once into ``cache_dir`` (one .npy per file), then random crops of
    ``segment_seconds`` are read from the memory-mapped arrays.
    """

    path: str = "data"
    segment_seconds: float = 1.0
    val_files: int = 1  # whole files held out for evaluation (chosen deterministically)
    cache_dir: str = "runs/.cache"
    channels: str = "mix"  # mix: downmix to mono | random: a random channel per crop (augmentation)

    def __post_init__(self) -> None:
        _require(self.segment_seconds > 0, "data.segment_seconds must be > 0")
        _require(self.val_files >= 0, "data.val_files must be >= 0")
        _require(self.channels in ("mix", "random"), "data.channels must be 'mix' or 'random'")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup, then cosine or exponential decay down to ``min_lr``."""

    lr: float = 5e-4
    betas: tuple[float, ...] = (0.8, 0.99)
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    schedule: str = "cosine"  # cosine | exponential | constant
    warmup: int = 100  # steps of linear warmup
    min_lr: float = 1e-5

    def __post_init__(self) -> None:
        _require(self.lr > 0, "optim.lr must be > 0")
        _require(len(self.betas) == 2, "optim.betas must be two numbers, e.g. [0.8, 0.99]")
        _require(
            self.schedule in ("cosine", "exponential", "constant"),
            "optim.schedule must be cosine, exponential or constant",
        )
        _require(
            self.warmup >= 0 and self.grad_clip >= 0,
            "optim.warmup and optim.grad_clip must be >= 0",
        )


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch_size: int = 8
    log_every: int = 10
    eval_every: int = 500  # 0 = only at the end
    checkpoint_every: int = 200
    threads: int = 0  # torch CPU threads; 0 = all cores
    compile: bool = False  # torch.compile the model (CUDA runs)
    # codec parts kept fixed (loaded from init_from): [encoder, quantizer] trains a new decoder
    # on unchanged codes, so files and priors made with the init_from codec stay valid
    freeze: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(
            self.steps >= 1 and self.batch_size >= 1,
            "train.steps and train.batch_size must be >= 1",
        )
        _require(
            self.log_every >= 1 and self.checkpoint_every >= 1,
            "train.log_every and train.checkpoint_every must be >= 1",
        )
        _require(
            self.eval_every >= 0 and self.threads >= 0,
            "train.eval_every and train.threads must be >= 0",
        )
        _require(
            set(self.freeze) <= {"encoder", "quantizer"},
            "train.freeze may name encoder and quantizer (the decoder is what trains)",
        )


@dataclass(frozen=True)
class EvalConfig:
    num_clips: int = 4  # clips cut from the validation files
    clip_seconds: float = 4.0
    levels: tuple[int, ...] = ()  # codec: operating points (levels kept) to evaluate; () = all

    def __post_init__(self) -> None:
        _require(
            self.num_clips >= 1 and self.clip_seconds > 0,
            "eval.num_clips must be >= 1 and eval.clip_seconds > 0",
        )


@dataclass(frozen=True)
class LossConfig:
    """Weights of the codec's reconstruction terms (codec.losses.ReconstructionLoss)."""

    l1: float = 1.0  # waveform L1
    mel: float = 15.0  # 7-scale log10-mel L1 (the quality metric)
    stft: float = 1.0  # spectral convergence + log-magnitude L1 at 512/1024/2048
    # spectral decoder only (its loss is on the predicted magnitude; mel above weighs its mel term)
    log_magnitude: float = 1.0  # L1 of log |STFT| at the codec's n_fft
    convergence: float = 1.0  # spectral convergence at the codec's n_fft

    def __post_init__(self) -> None:
        _require(
            min(self.l1, self.mel, self.stft) >= 0 and self.l1 + self.mel + self.stft > 0,
            "loss weights must be >= 0 and not all 0",
        )


@dataclass(frozen=True)
class AdversarialConfig:
    """Optional multi-scale STFT discriminator for codec training (hinge + feature matching)."""

    enabled: bool = False
    weight: float = 1.0  # adversarial hinge loss weight
    feature_weight: float = 2.0  # feature-matching loss weight
    window_lengths: tuple[int, ...] = (2048, 1024, 512)
    channels: int = 32
    start_step: int = 0  # train the codec alone until this step (GAN terms off before)

    def __post_init__(self) -> None:
        _require(len(self.window_lengths) >= 1, "adversarial.window_lengths must not be empty")
        _require(
            self.channels >= 1 and self.start_step >= 0,
            "adversarial.channels must be >= 1 and adversarial.start_step >= 0",
        )


@dataclass(frozen=True)
class Recipe:
    """A training run. ``stage: codec`` trains ``codec`` (a CodecConfig section); ``stage: prior``
    trains ``prior`` over the codes of the codec model file named by ``codec`` (a path)."""

    stage: str = "codec"  # codec | prior
    name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    init_from: str | None = None  # model file whose weights start the run (fine-tuning)
    data: DataConfig = DataConfig()
    codec: CodecConfig | str | None = None
    prior: PriorConfig | None = None
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    loss: LossConfig = LossConfig()
    adversarial: AdversarialConfig = AdversarialConfig()

    def __post_init__(self) -> None:
        _require(self.stage in ("codec", "prior"), "stage must be 'codec' or 'prior'")
        _require(
            self.stage == "codec" or not self.adversarial.enabled,
            "adversarial: only a codec recipe trains with a discriminator",
        )
        _require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "device must be auto, cpu or cuda",
        )
        _require(self.precision in ("fp32", "bf16"), "precision must be fp32 or bf16")
        _require(
            not self.train.freeze or (self.stage == "codec" and self.init_from is not None),
            "train.freeze needs init_from: the codec whose frozen parts the run keeps",
        )
        _require(bool(self.name) and "/" not in self.name, "name must be a non-empty file name")
        if self.stage == "codec":
            _require(
                not isinstance(self.codec, str),
                "codec: a codec recipe needs a codec: section (a mapping), not a path",
            )
            _require(self.prior is None, "prior: a codec recipe has no prior: section")
            if self.codec is None:
                object.__setattr__(self, "codec", CodecConfig())
        else:
            _require(
                isinstance(self.codec, str),
                "codec: a prior recipe names its codec model file, e.g. "
                "codec: runs/music-24k-codec/model.safetensors",
            )
            if self.prior is None:
                object.__setattr__(self, "prior", PriorConfig())


def _yaml_loader():
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.2; PyYAML's 1.1 wants ``1.0e-4``)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    exponent = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", exponent, list("-+0123456789"))
    return Loader


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key.sub=value`` strings (values parsed as YAML scalars) to a raw recipe mapping."""
    import copy

    import yaml

    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.steps=500")
        try:
            value = yaml.load(text, Loader=_yaml_loader()) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node, parts = raw, key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def recipe_from_dict(raw: Any, where: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Build a Recipe from a parsed YAML mapping; errors start with ``where`` (the file name)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where}: expected a YAML mapping of recipe keys, got {type(raw).__name__}"
        )
    raw = apply_overrides(raw, overrides)
    prior = raw.get("prior")
    if isinstance(prior, dict):
        for key in ("codebook_size", "level_strides"):
            if key in prior:
                raise ConfigError(
                    f"{where}: prior.{key} is copied from the codec model file; remove it "
                    "(set prior.num_levels to choose the levels)"
                )
        num_levels = prior.get("num_levels", PriorConfig.num_levels)
        if isinstance(num_levels, int) and not isinstance(num_levels, bool) and num_levels >= 1:
            # placeholder until the codec file is read (train/loop.py fills in the real ones)
            raw["prior"] = {**prior, "level_strides": [1] * num_levels}
    try:
        return build(Recipe, raw, "")
    except ConfigError as e:
        raise ConfigError(f"{where}: {str(e).removeprefix(': ')}") from None


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe YAML file, apply ``--set`` overrides, build it strictly."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    try:
        raw = yaml.load(path.read_text(), Loader=_yaml_loader())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    return recipe_from_dict(raw if raw is not None else {}, str(path), overrides)


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML (what a run folder keeps as recipe.yaml)."""
    import yaml

    raw = to_dict(recipe)
    if recipe.stage == "prior":  # copied from the codec file at train time: not user keys
        raw["prior"].pop("codebook_size", None)
        raw["prior"].pop("level_strides", None)
    return yaml.safe_dump(raw, sort_keys=False)
