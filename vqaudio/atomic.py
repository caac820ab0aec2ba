"""Atomic file writes: every file vqaudio writes appears whole under its name, or not at all.

The one recipe, used by every writer: a temp file in the target's folder (so the rename stays on
one file system), written, flushed and fsynced, then ``os.replace``-d over the target; on any
failure (an exception, Ctrl-C) the temp file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def _new_temp(path: Path, suffix: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should be like any new file
    return Path(tmp)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = TEMP_SUFFIX) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a library that writes by name (soundfile,
    safetensors, matplotlib); when the block succeeds the temp is fsynced and renamed to ``path``.

    ``suffix`` ends the temp name, for writers that pick a format by extension (``.tmp.png``).
    """
    path = Path(path)
    tmp = _new_temp(path, suffix)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """``with atomic_write(path) as f: f.write(...)``: an open temp file that becomes ``path``."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
