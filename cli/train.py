"""`vqaudio train RECIPE` / `vqaudio train --resume RUN_DIR`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TextColumn

from vqaudio.errors import ConfigError

from .console import err, pick_device, progress, reports_errors


def train(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML (see recipes/).")] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue the run in this folder from its last checkpoint."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe value: --set train.steps=500 (repeatable)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run folder (default: runs/<recipe name>)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto, cpu or cuda (default: the recipe's device).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="Start over in a run folder that already holds a run."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Plain log lines instead of a progress bar.")
    ] = False,
) -> None:
    """Train a codec or a prior from a recipe into runs/<name>/ (model, metrics, plots).

    Example: vqaudio train recipes/music-24k-codec.yaml --set data.path=~/Music
    """
    from vqaudio.recipe import load_recipe
    from vqaudio.train import resume_recipe
    from vqaudio.train import train as run_training

    chosen = pick_device(device) if device else None  # refused before any recipe is read
    if (recipe is None) == (resume is None):
        raise ConfigError("give either a RECIPE file or --resume RUN_DIR (exactly one)")
    if resume is not None:
        loaded = resume_recipe(resume, overrides or ())
        run_dir = resume
    else:
        loaded = load_recipe(recipe, overrides or ())
        run_dir = output or Path("runs") / loaded.name
    chosen = chosen or pick_device(loaded.device)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    bar = progress(
        unit="steps", extra=(TextColumn("{task.fields[info]}"), TextColumn("{task.fields[rate]}"))
    )
    state = {"task": None}

    def on_progress(step: int, total: int, metrics: dict) -> None:
        if quiet or not main_rank:
            return
        if state["task"] is None:  # started at the first step, after data caching messages
            bar.start()
            state["task"] = bar.add_task("train", total=total, completed=step - 1, info="", rate="")
        info = f"loss {metrics['loss']:.3f}" if "loss" in metrics else ""  # at each log
        if metrics.get("usage"):
            info += f" usage {sum(metrics['usage']) / len(metrics['usage']):.2f}"
        speed = bar.tasks[state["task"]].speed
        rate = f"{speed:.2f} steps/s" if speed else ""
        bar.update(state["task"], completed=step, info=info, rate=rate)

    def on_message(text: str) -> None:
        if main_rank:
            bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

    try:
        model_path = run_training(
            loaded, run_dir, chosen, resume is not None, force, on_progress, on_message
        )
    finally:
        bar.stop()
    if main_rank:
        err.print(f"done: {model_path}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(reports_errors(train))


if __name__ == "__main__":  # torchrun --nproc_per_node N -m vqaudio_cli.train RECIPE [options]
    _app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
    register(_app)
    _app()
