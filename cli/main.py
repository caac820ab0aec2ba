"""`vqaudio` Typer app: one module per command (or small group), registered here."""

from __future__ import annotations

from typing import Annotated

import typer

import vqaudio

from . import compress as _compress
from . import evaluate as _evaluate
from . import generate as _generate
from . import info as _info
from . import train as _train

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
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """vqaudio: neural audio codec with hierarchical multi-scale VQ codes, and music priors."""


# Each command module exposes register(app); the order here is the order in --help.
for _module in (_compress, _info, _generate, _train, _evaluate):
    _module.register(app)
