"""`vqaudio info FILE`: what a .vqa file or a model file holds, as a table or JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vqaudio.errors import VqaudioError

from .console import reports_errors


def vqa_info(path: Path) -> dict[str, Any]:
    """Format version, header fields (the code-space id None where the file predates it) plus
    duration, real bitrate and size of a .vqa file."""
    from vqaudio.strict import to_dict
    from vqaudio.vqa.container import VqaReader

    with VqaReader(path) as reader:
        header, size, version = reader.header, reader.file_bytes, reader.version
    fields = to_dict(header)
    index = fields.pop("chunk_bytes")
    ids = {"codec_id": fields.pop("codec_id"), "code_space_id": fields.pop("code_space_id") or None}
    return {
        "file": str(path),
        "kind": "vqa",
        "format": version,
        **ids,
        **fields,
        "duration_s": round(header.duration, 6),
        "chunks": len(index),
        "file_bytes": size,
        "real_bitrate_bps": round(8 * size / header.duration, 3),
    }


def _model_kinds() -> dict:
    """The kinds of model file ``info`` reads, and how to build each."""
    from vqaudio.checkpoint import ModelKind
    from vqaudio.codec.io import CODEC_FILE
    from vqaudio.config import PriorConfig
    from vqaudio.prior import build_prior

    return {"codec": CODEC_FILE, "prior": ModelKind(PriorConfig, build_prior)}


def model_info(path: Path) -> dict[str, Any]:
    """Kind, id, config, parameter count (and bitrates per level for a codec) of a model file.

    Reads the file's header only: the model is built on the meta device (no memory), after its
    config is checked against the file's tensors (vqaudio.checkpoint.inspect_model).
    """
    from vqaudio.checkpoint import checkpoint_id, inspect_model
    from vqaudio.codec.io import file_code_space_id
    from vqaudio.strict import to_dict

    metadata, config, model = inspect_model(path, _model_kinds())
    out: dict[str, Any] = {
        "file": str(path),
        "kind": metadata["vqaudio.kind"],
        "id": checkpoint_id(path),
        "format": metadata.get("vqaudio.format"),
        "vqaudio_version": metadata.get("vqaudio.version"),
        "tensor_elements": _tensor_elements(path),
        "config": to_dict(config),
        # trainable only; buffers excluded
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    if metadata["vqaudio.kind"] == "prior":  # its codec's code space (None: not recorded)
        out["code_space_id"] = metadata.get("vqaudio.code_space_id")
    if metadata["vqaudio.kind"] == "codec":
        # files saved before vqaudio recorded it: computed from the encoder and quantizer
        out["code_space_id"] = metadata.get("vqaudio.code_space_id") or file_code_space_id(
            path, config
        )
        out["bitrates_bps"] = {str(n): b for n, b in enumerate(config.bitrates, start=1)}
        out["frame_rates_hz"] = list(config.frame_rates)
    extra = {
        k: v
        for k, v in metadata.items()
        if k.startswith("vqaudio.")
        and k
        not in (
            "vqaudio.kind",
            "vqaudio.format",
            "vqaudio.version",
            "vqaudio.config",
            "vqaudio.code_space_id",
        )
    }
    out.update({k.removeprefix("vqaudio."): v for k, v in extra.items()})
    return out


def _tensor_elements(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())


def file_info(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise VqaudioError(f"{path}: is a directory, expected a .vqa or model file")
    if not path.is_file():
        raise VqaudioError(f"{path}: no such file")
    with open(path, "rb") as f:
        start = f.read(4)
    if start == b"VQAU" or path.suffix == ".vqa":
        return vqa_info(path)
    return model_info(path)


def _table(info: dict[str, Any]) -> Table:
    table = Table(title=info["file"], show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if key == "file":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        table.add_row(key, str(value))
    return table


def register(app: typer.Typer) -> None:
    @app.command()
    @reports_errors
    def info(
        file: Annotated[Path, typer.Argument(help="A .vqa file or a model .safetensors file.")],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of a table.")
        ] = False,
    ) -> None:
        """Show what a .vqa file or a model file holds.

        Example: vqaudio info song.vqa
        """
        data = file_info(file)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            Console().print(_table(data))
