"""Strict dataclass building: the one way a mapping (YAML, JSON metadata, a .vqa header) becomes a
frozen config dataclass, and back.

``build`` refuses unknown keys (naming the nearest known one) and wrong types (naming the key);
``to_dict`` gives the plain JSON-able mapping; ``require`` is the check every ``__post_init__``
uses. The model configs (config.py), the recipe (recipe.py), model files and .vqa headers share it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

from .errors import ConfigError


def require(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``ok`` (the ``__post_init__`` checks of every config)."""
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
