"""Names a package loads on first use (PEP 562), so importing it imports no torch."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, public: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` that imports ``public[name]`` (a submodule, e.g.
    "codec.io") the first time ``name`` is asked for, and keeps it."""

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{public[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
