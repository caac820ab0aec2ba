"""`vqaudio` Typer app: one module per command (or small group), registered here."""

from __future__ import annotations

from typing import Annotated

import typer

import vqaudio

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Neural audio codec and music generator: compress, decompress, train, generate.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vqaudio {vqaudio.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """vqaudio: neural audio codec with hierarchical multi-scale VQ codes, and music priors."""


# Each command module exposes register(app). Keep this list in one place.
# REGISTER-COMMANDS (helpers: add one import + register line per module below)
from . import train as _train; _train.register(app)  # noqa: E402, E702
from . import evaluate as _evaluate; _evaluate.register(app)  # noqa: E402, E702
from . import compress as _compress; _compress.register(app)  # noqa: E402, E702
from . import info as _info; _info.register(app)  # noqa: E402, E702
from . import generate as _generate; _generate.register(app)  # noqa: E402, E702
