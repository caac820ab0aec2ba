"""Console, progress bars and output-path handling shared by every command."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vqaudio.errors import UsageError, VqaudioError

err = Console(stderr=True)


BUG_REPORT = (
    "vqaudio hit a bug (not a problem with your input). Please report it with the command you "
    "ran, `vqaudio --version` and the traceback below on the issue tracker of the repository "
    "you installed vqaudio from"
)


def _error(message: str) -> typer.Exit:
    err.print(f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def os_error_message(e: OSError) -> str:
    """One line naming the path: 'out/x.vqa: Permission denied'."""
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    problem = e.strerror or str(e)
    return f"{' -> '.join(names)}: {problem}" if names else problem


def reports_errors(command: Callable) -> Callable:
    """Turn expected failures (a VqaudioError, an OSError such as a permission denied or a full
    disk) into one stderr line and exit code 1. Anything else is a bug: its traceback stays,
    introduced by how to report it."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UsageError as e:  # a malformed value: exit 2, as Typer's own usage errors
            _error(str(e))
            raise typer.Exit(code=2) from None
        except VqaudioError as e:
            raise _error(str(e)) from None
        except OSError as e:
            raise _error(os_error_message(e)) from None
        except KeyboardInterrupt:
            err.print("interrupted", style="red")
            raise typer.Exit(code=130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception:
            err.print(BUG_REPORT, style="red", markup=False, highlight=False, soft_wrap=True)
            raise

    return wrapper


def progress(
    quiet: bool = False, unit: str = "s", extra: tuple[ProgressColumn, ...] = ()
) -> Progress:
    """A rich progress bar on stderr; disabled with --quiet. ``extra`` columns follow the count."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn()
        if unit == "steps"
        else TextColumn("{task.completed:.1f}/{task.total:.1f} " + unit),
        *extra,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=False,
    )


def pick_device(device: str) -> str:
    """'auto' -> cuda when present, else cpu; refuse a device that is not there."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VqaudioError("--device cuda: no CUDA device is available here; use --device cpu")
    if device.startswith("mps"):  # sampling works in float64, which Apple GPUs lack
        raise VqaudioError("--device mps: Apple GPUs are not supported; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise VqaudioError(f"--device {device}: expected auto, cpu or cuda")
    return device


def check_distinct(targets: list[str]) -> None:
    """Refuse outputs that would overwrite one another within one command, before any is
    written (``compress d1/x.wav d2/x.flac -o out/`` would write out/x.vqa twice)."""
    seen: dict[str, str] = {}
    for target in targets:
        if target == "-":
            continue
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise VqaudioError(
                f"{target}: two inputs would be written to this one file; give them different "
                "names, or -o different folders"
            )
        seen[key] = target


def check_output(path: str, force: bool) -> None:
    """Refuse to overwrite without --force, and refuse unwritable destinations early."""
    if path == "-":
        if sys.stdout.isatty():
            raise VqaudioError(
                "refusing to write binary data to a terminal; redirect stdout or use -o FILE"
            )
        return
    target = Path(path)
    if target.is_dir():
        raise VqaudioError(f"{target}: is a directory; give a file name with -o")
    if target.exists() and not force:
        raise VqaudioError(f"{target}: already exists; use -f/--force to overwrite")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise VqaudioError(f"{target}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VqaudioError(f"{target}: folder {parent} is not writable")


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[Path]:
    """Yield a temp path beside ``path``; it replaces ``path`` only if the block succeeds.

    For '-', yields a temp file whose bytes are copied to stdout at the end.
    """
    import shutil
    import tempfile

    if path == "-":
        fd, tmp = tempfile.mkstemp(suffix=".tmp")
        os.close(fd)
        try:
            yield Path(tmp)
            with open(tmp, "rb") as f:
                shutil.copyfileobj(f, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    from vqaudio.atomic import atomic_path

    with atomic_path(path) as tmp:
        yield tmp


@contextlib.contextmanager
def spooled_input(path: str, suffix: str = "") -> Iterator[Path]:
    """'-' spools stdin to a temp file (so chunked reading still works); else the path itself."""
    import shutil
    import tempfile

    if path != "-":
        yield Path(path)
        return
    fd, tmp = tempfile.mkstemp(suffix=suffix or ".stdin")
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)
