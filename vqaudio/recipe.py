"""Training recipes: one YAML file = one run (see recipes/ and vqaudio/train/).

The schema (``Recipe`` and its sections ``DataConfig``, ``OptimConfig``, ``TrainConfig``,
``EvalConfig``, ``LossConfig``, ``AdversarialConfig``), reading it from YAML (``load_recipe``),
``--set KEY=VALUE`` overrides (``apply_overrides``) and writing the resolved recipe back
(``recipe_to_yaml``). Built strictly by ``strict.build``: unknown keys and wrong types name the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import CodecConfig, PriorConfig
from .errors import ConfigError
from .strict import build, require, to_dict


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
    # more audio for the training split only (folders or globs, as ``path``): the held-out files
    # stay those chosen from ``path``, so adding music keeps evaluations comparable
    extra_paths: tuple[str, ...] = ()
    # train on every N-th training file only (held-out files unchanged): a quicker run on a
    # small machine, e.g. a fine-tune whose base already saw all of them
    train_every: int = 1

    def __post_init__(self) -> None:
        require(self.segment_seconds > 0, "data.segment_seconds must be > 0")
        require(self.train_every >= 1, "data.train_every must be >= 1 (1 = every file)")
        require(self.val_files >= 0, "data.val_files must be >= 0")
        require(self.channels in ("mix", "random"), "data.channels must be 'mix' or 'random'")


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
        require(self.lr > 0, "optim.lr must be > 0")
        require(len(self.betas) == 2, "optim.betas must be two numbers, e.g. [0.8, 0.99]")
        require(
            self.schedule in ("cosine", "exponential", "constant"),
            "optim.schedule must be cosine, exponential or constant",
        )
        require(
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
    # prior (kind frames): the share of context frames replaced by the prior's own draws
    # (parallel scheduled sampling), so training sees contexts like those sampling makes
    own_context: float = 0.0
    # ... drawn in own_passes passes, each given the mixed frames of the one before (a rollout
    # own_passes - 1 frames deep), and chosen by a coin per run of own_span frames
    own_passes: int = 1
    own_span: int = 1
    # prior with controls: each window drops its rhythm controls, and on its own coin its
    # harmony controls, with this probability, so one model also runs with either or none
    # (and classifier-free guidance has an unconditioned prediction; MusicGen drops half)
    control_dropout: float = 0.3

    def __post_init__(self) -> None:
        require(
            self.steps >= 1 and self.batch_size >= 1,
            "train.steps and train.batch_size must be >= 1",
        )
        require(
            self.log_every >= 1 and self.checkpoint_every >= 1,
            "train.log_every and train.checkpoint_every must be >= 1",
        )
        require(
            self.eval_every >= 0 and self.threads >= 0,
            "train.eval_every and train.threads must be >= 0",
        )
        require(0.0 <= self.own_context <= 1.0, "train.own_context must be in [0, 1] (a share)")
        require(
            0.0 <= self.control_dropout <= 1.0, "train.control_dropout must be in [0, 1] (a share)"
        )
        require(
            self.own_passes >= 1 and self.own_span >= 1,
            "train.own_passes and train.own_span must be >= 1",
        )
        require(
            set(self.freeze) <= {"encoder", "quantizer"},
            "train.freeze may name encoder and quantizer (the decoder is what trains)",
        )


@dataclass(frozen=True)
class EvalConfig:
    num_clips: int = 4  # clips cut from the validation files
    clip_seconds: float = 4.0
    levels: tuple[int, ...] = ()  # codec: operating points (levels kept) to evaluate; () = all

    def __post_init__(self) -> None:
        require(
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
    chroma: float = 0.0  # 1 - per-frame chroma correlation at the codec's n_fft (pitch-aware)
    rendered_chroma: float = 0.0  # the same of the audio a few Griffin-Lim iterations render
    # |log mean power of the prediction - log that of the input| per clip (spectral.level_loss):
    # the log-domain terms predict a median and decode too quiet; 1 dB of level error = 0.23
    level: float = 0.0
    # a band-level resolution ("16x0.4", band_levels.RESOLUTIONS; "" = off): the reconstruction
    # terms see the prediction scaled to the input's band levels at it, as a file with them
    # decodes (the level term still sees the unscaled prediction, for files without them)
    band_levels: str = ""

    def __post_init__(self) -> None:
        require(
            min(self.l1, self.mel, self.stft) >= 0 and self.l1 + self.mel + self.stft > 0,
            "loss weights must be >= 0 and not all 0",
        )
        require(self.level >= 0, "loss.level must be >= 0")
        from .codec.band_levels import RESOLUTIONS

        require(
            not self.band_levels or self.band_levels in RESOLUTIONS,
            f"loss.band_levels {self.band_levels!r}: choose one of {', '.join(RESOLUTIONS)}",
        )


@dataclass(frozen=True)
class AdversarialConfig:
    """Optional discriminator for codec training (hinge + feature matching): a waveform decoder
    gets the multi-scale STFT discriminator (``window_lengths``), a spectral decoder the
    multi-band discriminator on its log-magnitudes (``bands_hz``)."""

    enabled: bool = False
    weight: float = 1.0  # adversarial hinge loss weight
    feature_weight: float = 2.0  # feature-matching loss weight
    window_lengths: tuple[int, ...] = (2048, 1024, 512)
    # spectral decoder: the lower edge of each band in Hz, the last band up to Nyquist; the
    # lowest holds the fundamentals and first harmonics (the notes), each band its own convs
    bands_hz: tuple[float, ...] = (0.0, 1000.0, 4000.0)
    channels: int = 32
    start_step: int = 0  # train the codec alone until this step (GAN terms off before)

    def __post_init__(self) -> None:
        require(len(self.window_lengths) >= 1, "adversarial.window_lengths must not be empty")
        require(
            len(self.bands_hz) >= 1
            and self.bands_hz[0] == 0
            and list(self.bands_hz) == sorted(set(self.bands_hz)),
            "adversarial.bands_hz must start at 0 and rise, e.g. [0, 1000, 4000]",
        )
        require(
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
        require(self.stage in ("codec", "prior"), "stage must be 'codec' or 'prior'")
        require(
            self.stage == "codec" or not self.adversarial.enabled,
            "adversarial: only a codec recipe trains with a discriminator",
        )
        require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "device must be auto, cpu or cuda",
        )
        require(self.precision in ("fp32", "bf16"), "precision must be fp32 or bf16")
        require(
            not self.train.freeze or (self.stage == "codec" and self.init_from is not None),
            "train.freeze needs init_from: the codec whose frozen parts the run keeps",
        )
        require(bool(self.name) and "/" not in self.name, "name must be a non-empty file name")
        if self.stage == "codec":
            require(
                not isinstance(self.codec, str),
                "codec: a codec recipe needs a codec: section (a mapping), not a path",
            )
            require(self.prior is None, "prior: a codec recipe has no prior: section")
            if self.codec is None:
                object.__setattr__(self, "codec", CodecConfig())
        else:
            require(
                isinstance(self.codec, str),
                "codec: a prior recipe names its codec model file, e.g. "
                "codec: runs/music-24k-codec/model.safetensors",
            )
            if self.prior is None:
                object.__setattr__(self, "prior", PriorConfig())
        require(
            not self.train.own_context or (self.stage == "prior" and self.prior.kind == "frames"),
            "train.own_context needs a prior recipe with prior.kind frames; set it to 0",
        )
        require(
            not (self.train.own_context and self.prior.controls),
            "train.own_context does not combine with prior.controls; set one of them to 0",
        )


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
