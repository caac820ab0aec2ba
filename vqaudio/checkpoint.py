"""Model files of any kind: safetensors weights + JSON config and versions in metadata. No pickle.

A model's identity is its ``checkpoint_id``: the first 16 hex digits of its file's sha256 (or, for
a model never saved, of its weights). Whatever records which codec it was made with (a prior's
metadata, a .vqa header) stores that codec's checkpoint_id under the key ``codec_id``, and (from
vqaudio 0.2) the codec's ``code_space_id`` (``codec/code_space.py``: encoder + quantizer), which
is what decides whether another codec may decode it. A codec file records its code-space id in
``vqaudio.code_space_id`` (computed from the weights for older files, and checked on load) and in
``vqaudio.code_space_codecs`` the checkpoint ids of earlier codec files of the same code space
(the decoders it replaced), so files that recorded only a codec_id stay decodable: codec files are
``codec/io.py``, prior files ``prior/``; this module knows neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .errors import CheckpointError, ConfigError
from .strict import build, to_dict
from .version import __version__

MODEL_FORMAT_VERSION = 1  # of model files (metadata "vqaudio.format"); .vqa files have their own
MODEL_FORMATS_READ = (1,)
DEFAULT_DIR = Path(__file__).parent / "models"
DEFAULT_CODEC = DEFAULT_DIR / "codec.safetensors"
DEFAULT_PRIOR = DEFAULT_DIR / "prior.safetensors"


def checkpoint_id(model: str | Path | nn.Module) -> str:
    """16 hex digits naming a model: of a model file (a path), the sha256 of the file; of a loaded
    model, that of the file it was loaded from, else (never saved) the sha256 of its weights."""
    digest = hashlib.sha256()
    if isinstance(model, nn.Module):
        if getattr(model, "checkpoint_id", None):
            return model.checkpoint_id
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]
    with open(model, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def write_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]
) -> None:
    """``save_file`` to a temp file beside ``path``, then rename: never half a file."""
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_model(
    model: nn.Module,
    path: str | Path,
    kind: str,
    config: Any,
    extra: dict[str, str] | None = None,
    half: bool | tuple[str, ...] = False,
    drop: tuple[str, ...] = (),
) -> str:
    """Write ``model``'s weights with its config atomically; returns the new file's id.

    ``half`` stores floating weights as float16 (they are upcast to float32 on load): all of them
    (True) or those whose names start with one of the given prefixes. Tensors whose names end with
    one of ``drop`` are left out.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in model.state_dict().items():
        name = name.removeprefix("_orig_mod.").removeprefix("module.")
        if drop and name.endswith(drop):
            continue
        tensor = tensor.detach().cpu().contiguous()
        halve = half is True or (bool(half) and name.startswith(tuple(half)))
        if halve and tensor.is_floating_point():
            tensor = tensor.half()
        state[name] = tensor.clone()
    metadata = {
        "vqaudio.kind": kind,
        "vqaudio.format": str(MODEL_FORMAT_VERSION),
        "vqaudio.version": __version__,
        "vqaudio.config": json.dumps(to_dict(config)),
        **(extra or {}),
    }
    write_safetensors(state, path, metadata)
    return checkpoint_id(path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a vqaudio model file (checks it exists and is safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if header_len <= 0 or header_len > 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(header_len))
    except (ValueError, UnicodeDecodeError, OSError) as e:
        raise CheckpointError(f"{path}: not a safetensors model file ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors model file (header is not an object)")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CheckpointError(f"{path}: not a safetensors model file (malformed metadata)")
    if "vqaudio.kind" not in metadata:
        raise CheckpointError(f"{path}: not a vqaudio model file (no vqaudio metadata)")
    version = metadata.get("vqaudio.format")
    if version not in [str(v) for v in MODEL_FORMATS_READ]:
        raise CheckpointError(
            f"{path}: unsupported model format version {version}; this vqaudio reads "
            + ", ".join(str(v) for v in MODEL_FORMATS_READ)
        )
    return metadata


def read_model_file(
    path: str | Path, kind: str, complete=None
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, str]]:
    """(state dict, config dict, metadata) of a model file of the given kind, not yet built
    into a model (``load_model`` does that); ``complete``: see :class:`ModelKind`."""
    metadata = read_metadata(path)
    if metadata["vqaudio.kind"] != kind:
        raise CheckpointError(f"{path}: is a {metadata['vqaudio.kind']} model, expected a {kind}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from None
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}
    raw = read_config(path, metadata)
    if complete is not None:
        raw = complete(state, raw)
    return state, raw, metadata


MAX_CONFIG_INT = 1 << 20  # no size, count or rate of a vqaudio model comes near this
COUNT_FIELDS = (  # modules each
    "num_layers",
    "istft_layers",
    "encoder_layers",
    "spectral_layers",
    "num_cycles",
    "dilation_cycle",
)


def read_config(path: str | Path, metadata: dict[str, str]) -> dict[str, Any]:
    """The ``vqaudio.config`` JSON object of a model file, checked to be plausible: an object
    whose integers are all at most ``MAX_CONFIG_INT``."""
    try:
        raw = json.loads(metadata["vqaudio.config"])
    except (KeyError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: its vqaudio.config is missing or not JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: its vqaudio.config is not a JSON object")
    for key, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, (int, float)) and abs(v) > MAX_CONFIG_INT for v in values):
            raise CheckpointError(f"{path}: config {key} = {value!r} is implausible")
    return raw


_INIT_FUNCTIONS = (
    "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_", "orthogonal_",
    "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
)  # fmt: skip


@contextlib.contextmanager
def _without_init():
    """``torch.nn.init`` draws nothing while a loader builds a meta-device skeleton, which holds
    no values anyway: there the first draw imports torch's Python decompositions, 1.7-2.2 s of
    `vqaudio generate`'s start-up for a frame prior (build_prior under ``torch.device("meta")``,
    timed with and without it). Not for real models: some inits compute from
    the drawn weights (the quantizer's pseudo-inverse projection)."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    for name in _INIT_FUNCTIONS:
        setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def skeleton(path: str | Path, config: Any, factory, shapes: dict[str, tuple[int, ...]]):
    """``factory(config)`` on the meta device (no memory), refused unless its tensors have exactly
    the file's names and shapes, so a crafted config cannot make a loader allocate more than the
    file holds. Layer counts are checked against the file's tensor count first, which bounds the
    time to build it."""
    for name in COUNT_FIELDS:
        count = getattr(config, name, 0)
        if isinstance(count, int) and count > len(shapes):
            raise CheckpointError(
                f"{path}: config {name} = {count} cannot fit a file of {len(shapes)} tensors"
            )
    try:
        with torch.device("meta"), _without_init():
            model = factory(config)
    except (RuntimeError, ValueError, TypeError) as e:  # e.g. a negative width
        raise CheckpointError(f"{path}: config does not build a model ({e})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if expected != shapes:
        wrong = sorted(
            k for k in expected.keys() | shapes.keys() if expected.get(k) != shapes.get(k)
        )
        raise CheckpointError(
            f"{path}: weights do not fit the model its config describes "
            f"({len(wrong)} tensor(s) differ, e.g. {wrong[0]})"
        )
    return model


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Strict load with a readable error."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit the model ({first})") from None


def load_model(
    path: str | Path | None,
    kind: str,
    config_cls: type,
    factory,
    default: Path,
    device: str | torch.device = "cpu",
    complete=None,
) -> tuple[nn.Module, dict[str, str]]:
    """Load a model file of ``kind`` (None: the ``default`` shipped in the package) in eval mode.

    The model gets ``checkpoint_id`` and ``checkpoint_path``; returns it with the file's metadata.
    """
    if path is None:
        path = default
        if not path.is_file():
            raise CheckpointError(
                f"no default {kind} ships with this install; pass a model file (--{kind} PATH), "
                f"e.g. one made by `vqaudio train recipes/tiny-{kind}.yaml`"
            )
    state, raw, metadata = read_model_file(path, kind, complete)
    try:
        config = build(config_cls, raw, kind)
    except ConfigError as e:
        raise CheckpointError(f"{path}: config does not fit this vqaudio ({e})") from None
    skeleton(path, config, factory, {k: tuple(v.shape) for k, v in state.items()})
    model = factory(config)
    load_into(model, state, path)
    model.checkpoint_id = checkpoint_id(path)
    model.checkpoint_path = Path(path)
    return model.to(device).eval(), metadata


class ModelKind(NamedTuple):
    """How to build a model of one kind from its file: its config class, ``factory(config)``, and
    ``complete(state, raw_config) -> raw_config``, what that kind fills into older files."""

    config_cls: type
    factory: Callable[[Any], nn.Module]
    complete: Callable[[dict[str, torch.Tensor], dict[str, Any]], dict[str, Any]] | None = None


def inspect_model(
    path: str | Path, kinds: dict[str, ModelKind]
) -> tuple[dict[str, str], Any, nn.Module]:
    """(metadata, config, meta-device skeleton) of a model file of one of ``kinds``, reading only
    its header: no weights are loaded and nothing is allocated beyond what the file holds."""
    from safetensors import safe_open

    metadata = read_metadata(path)
    kind = metadata["vqaudio.kind"]
    if kind not in kinds:
        raise CheckpointError(f"{path}: is a {kind} file, expected a {' or a '.join(kinds)}")
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt weights ({e})") from None
    raw = read_config(path, metadata)
    config_cls, factory, complete = kinds[kind]
    if complete is not None:
        with torch.device("meta"):
            raw = complete(state, raw)
    try:
        config = build(config_cls, raw, kind)
    except ConfigError as e:
        raise CheckpointError(f"{path}: config does not fit this vqaudio ({e})") from None
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return metadata, config, skeleton(path, config, factory, shapes)
