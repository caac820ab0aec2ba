"""Resumable training state: weights + optimizer + step + RNG in one safetensors file. No pickle.

The optimizer's tensors are stored as ``optim.<param index>.<name>`` and its hyper-parameters and
the numpy generator's state as JSON metadata, so ``--resume`` continues bit-for-bit where the
last checkpoint left off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..checkpoint import write_safetensors
from ..errors import CheckpointError

STATE_FILE = "checkpoint.safetensors"


def save_train_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the training state atomically (``checkpoint.write_safetensors``)."""
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous().clone()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    metadata = {
        "vqaudio.kind": "train-state",
        "step": str(step),
        "optim.param_groups": json.dumps(opt["param_groups"]),
        "rng.numpy": json.dumps(rng.bit_generator.state),
        "extra": json.dumps(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(tensors, path, metadata)


def load_train_state(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, rng: np.random.Generator
) -> tuple[int, dict[str, Any]]:
    """Restore ``model``, ``optimizer`` and RNGs in place; returns (step, extra)."""
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(
            f"{path}: unreadable training state ({e}); start over with -f"
        ) from None
    if metadata.get("vqaudio.kind") != "train-state":
        raise CheckpointError(f"{path}: not a vqaudio training state")
    model_state = {
        k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")
    }
    try:
        model.load_state_dict(model_state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: weights do not fit the recipe's model ({str(e).splitlines()[0]})"
        ) from None
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(
        {"state": state, "param_groups": json.loads(metadata["optim.param_groups"])}
    )
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    rng.bit_generator.state = json.loads(metadata["rng.numpy"])
    return int(metadata["step"]), json.loads(metadata.get("extra", "{}"))


# Old names, for train/codec_task.py until it imports the ones above (then delete these two lines).
