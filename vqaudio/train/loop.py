"""The training loop shared by both stages: optimizer, schedule, logging, eval, checkpoints, resume.

A run folder holds everything ``--resume`` needs:

    recipe.yaml              the resolved recipe (with --set overrides applied)
    metrics.jsonl            one JSON line per log interval ("kind": "train") and per evaluation
    checkpoint.safetensors   weights + optimizer + step + RNG (written atomically)
    model.safetensors        the model alone (what --codec / --prior take), at every checkpoint
    *.png                    spectrograms, codebook usage, loss curves (at each evaluation)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from ..errors import ConfigError
from ..recipe import OptimConfig, Recipe, load_recipe, recipe_to_yaml
from . import distributed, plots
from .state import STATE_FILE, load_train_state, save_train_state

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.safetensors"

ProgressCallback = Callable[[int, int, dict[str, Any]], None]
MessageCallback = Callable[[str], None]


def learning_rate(optim: OptimConfig, step: int, total: int) -> float:
    """Linear warmup over ``optim.warmup`` steps, then decay to ``optim.min_lr`` at ``total``."""
    if optim.warmup and step <= optim.warmup:
        return optim.lr * step / optim.warmup
    if optim.schedule == "constant":
        return optim.lr
    progress = min(1.0, (step - optim.warmup) / max(1, total - optim.warmup))
    low = min(optim.min_lr, optim.lr)
    if optim.schedule == "cosine":
        return low + (optim.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))
    return optim.lr * (low / optim.lr) ** progress


def resume_recipe(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """The recipe a run folder was started with (``--set`` may still change e.g. train.steps)."""
    run_dir = Path(run_dir)
    if not (run_dir / RECIPE_FILE).is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {RECIPE_FILE}); start it with a recipe")
    return load_recipe(run_dir / RECIPE_FILE, overrides)


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by kill -9
            rows.append(json.loads(line))
    return rows


def _holds_run(run_dir: Path) -> bool:
    return (run_dir / STATE_FILE).exists() or (run_dir / METRICS_FILE).exists()


def _check_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    if resume and not (run_dir / STATE_FILE).is_file():
        raise ConfigError(
            f"{run_dir}: no {STATE_FILE} to resume from yet; start the run again with -f"
        )
    if not resume and not force and _holds_run(run_dir):
        raise ConfigError(
            f"{run_dir}: already holds a run; continue it with `vqaudio train --resume "
            f"{run_dir}`, or use -f/--force to start over"
        )


def _prepare_run_dir(run_dir: Path, recipe: Recipe, resume: bool) -> None:
    if not resume:  # --force: start over
        for name in (STATE_FILE, METRICS_FILE, MODEL_FILE):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    # on resume too: --set overrides stick for the next one
    with atomic_write(run_dir / RECIPE_FILE, "w") as f:
        f.write(recipe_to_yaml(recipe))


def _make_task(recipe: Recipe, run_dir: Path, device: str, on_message: MessageCallback):
    if recipe.stage == "codec":
        from .codec_task import CodecTask

        return CodecTask(recipe, on_message, device)
    from .prior_task import PriorTask

    return PriorTask(recipe, run_dir, device, on_message)


def _as_floats(metrics: dict[str, Any]) -> dict[str, Any]:
    """A step's metrics (0-dim tensors, lists of them, or numbers) as Python floats: the one
    place training waits for the device, once per log interval."""
    return {
        k: [float(x) for x in v] if isinstance(v, list) else float(v) for k, v in metrics.items()
    }


def _check_finite(first_bad: torch.Tensor, bad_loss: torch.Tensor) -> None:
    """Raise at the first step whose loss was not finite (tracked on the device, read here)."""
    step = int(first_bad)
    if step:
        raise ConfigError(
            f"step {step}: loss is {float(bad_loss)}; lower optim.lr or set precision: fp32"
        )


def _mean_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = dict.fromkeys(key for r in rows for key in r)  # some figures come every few steps
    for key in keys:
        values = [r[key] for r in rows if key in r]
        if isinstance(values[0], list):
            out[key] = [float(np.mean(v)) for v in zip(*values, strict=True)]
        else:
            out[key] = float(np.mean(values))
    return out


def format_log(step: int, row: dict[str, Any]) -> str:
    """`step 120: loss 3.21, mel 1.02, l1 0.031, usage [0.12 0.35], 1.8 steps/s` (nanoGPT style)."""
    parts = [f"loss {row['loss']:.4g}"]
    terms = ("mel", "l1", "stft", "logmag", "sc", "chroma", "rchroma", "level", "adv", "feat")
    for key in (*terms, "disc", "vq", "bits_per_token"):
        if key in row:
            parts.append(f"{key} {row[key]:.4g}")
    if "usage" in row:
        parts.append("usage [" + " ".join(f"{u:.2f}" for u in row["usage"]) + "]")
    if "stage_rms" in row:
        parts.append("rms [" + " ".join(f"{u:.2g}" for u in row["stage_rms"]) + "]")
    parts.append(f"lr {row['lr']:.2g}")
    parts.append(f"{row['steps_per_s']:.2f} steps/s")
    return f"step {step}: " + ", ".join(parts)


def train(
    recipe: Recipe,
    run_dir: str | Path,
    device: str = "cpu",
    resume: bool = False,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    on_message: MessageCallback | None = None,
) -> Path:
    """Run (or continue, ``resume``) the recipe in ``run_dir``; returns the model file's path.

    Under ``torchrun`` every rank calls this; gradients are averaged with DDP and only rank 0
    writes files. ``on_progress(step, total, metrics)`` is called after every step with the
    metrics of the last log interval (empty before the first): a step never waits for the
    device, except every ``train.log_every`` steps, at evaluations and at checkpoints. A loss
    that is not finite stops the run at the next of those, before anything is written.
    """
    run_dir = Path(run_dir)
    world = distributed.setup(device)
    device = distributed.device_for(device, world)
    say = on_message if (on_message is not None and world.is_main) else (lambda _: None)
    try:
        return _train(recipe, run_dir, device, resume, force, world, on_progress, say)
    finally:
        distributed.teardown(world)


def _train(recipe, run_dir, device, resume, force, world, on_progress, say) -> Path:
    _check_run_dir(run_dir, resume, force)
    torch.set_num_threads(recipe.train.threads or max(1, (os.cpu_count() or 1) // world.size))
    torch.set_flush_denormal(True)  # quiet passages of real music otherwise slow CPU math a lot
    torch.manual_seed(recipe.seed)  # same initial weights on every rank
    task = _make_task(recipe, run_dir, device, say)  # bad data or codec fail here, before any write
    if world.is_main:
        _prepare_run_dir(run_dir, recipe, resume)
    model = task.model.to(device)
    model.train()
    optim = recipe.optim
    groups = model.parameter_groups() if hasattr(model, "parameter_groups") else model.parameters()
    optimizer = torch.optim.AdamW(
        groups, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay
    )
    rng = np.random.default_rng([recipe.seed, world.rank])  # each rank draws its own crops
    torch.manual_seed(recipe.seed + 1 + world.rank)
    step = 0
    if resume:
        step, _ = load_train_state(run_dir / STATE_FILE, model, optimizer, rng)
        task.load_extra_state(run_dir)
        if world.rank > 0:  # the file holds rank 0's RNG: give the other ranks their own streams
            rng = np.random.default_rng([recipe.seed, world.rank, step])
            torch.manual_seed(recipe.seed + 1 + world.rank + step)
        say(f"resuming {run_dir} at step {step}")
    history = (
        [r for r in read_metrics(run_dir) if r.get("step", 0) <= step] if world.is_main else []
    )
    if world.is_main:  # drop lines logged after the checkpoint we resume from
        _write_metrics(run_dir, history)
    forward_model = task.train_module.to(device)  # the model, or a module whose forward is the loss
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        forward_model = DistributedDataParallel(
            forward_model,
            device_ids=[torch.device(device).index] if device.startswith("cuda") else None,
        )
    if recipe.train.compile:
        forward_model = torch.compile(forward_model)
    device_type = torch.device(device).type
    bf16 = recipe.precision == "bf16"

    def autocast():
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)

    total, cfg = recipe.train.steps, recipe.train
    rows: list[dict[str, Any]] = []
    logged: dict[str, Any] = {}  # the last log interval's metrics, for on_progress
    first_bad = torch.zeros((), dtype=torch.long, device=device)  # step of a non-finite loss
    bad_loss = torch.zeros((), device=device)
    tick, tick_step = time.perf_counter(), step
    while step < total:
        step += 1
        lr = learning_rate(optim, step, total)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = task.batch(rng, cfg.batch_size).to(device)
        loss, metrics = task.loss(forward_model, batch, autocast)
        first = (first_bad == 0) & ~torch.isfinite(loss.detach())
        first_bad = torch.where(first, step, first_bad)
        bad_loss = torch.where(first, loss.detach().float(), bad_loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optim.grad_clip > 0:
            metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                model.parameters(), optim.grad_clip
            )
        optimizer.step()
        metrics.update(task.after_step(step))  # e.g. the discriminator's own update
        if world.size > 1:
            distributed.sync_quantizer_state(model)
        metrics["loss"] = loss.detach()
        rows.append(metrics)
        if on_progress is not None and world.is_main:
            on_progress(step, total, logged)
        evaluate = (cfg.eval_every and step % cfg.eval_every == 0) or step == total
        checkpoint = step % cfg.checkpoint_every == 0 or step == total
        if step % cfg.log_every == 0 or evaluate or checkpoint:
            _check_finite(first_bad, bad_loss)
        if step % cfg.log_every == 0 or step == total:
            elapsed = time.perf_counter() - tick
            rows = [_as_floats(r) for r in rows]
            row = {"step": step, "kind": "train", "lr": lr, **_mean_metrics(rows)}
            logged = {k: v for k, v in row.items() if k not in ("step", "kind")}
            row["time"] = round(time.time(), 1)  # wall clock: equal-time comparisons of runs
            row["steps_per_s"] = (step - tick_step) / max(elapsed, 1e-9)
            rows, tick, tick_step = [], time.perf_counter(), step
            if world.is_main:
                say(format_log(step, row))
                history.append(row)
                _append_metrics(run_dir, row)
        paused = time.perf_counter()  # eval and checkpoint time is left out of steps/s
        if evaluate and world.is_main:
            result = task.evaluate(model, run_dir, step, device)
            if result:
                row = {"step": step, "kind": "eval", **result}
                history.append(row)
                _append_metrics(run_dir, row)
                say(f"eval step {step}: {task.describe_eval(result)}")
                best = _keep_best(task, model, run_dir, history, row)
                if best:
                    say(f"best so far by {task.best_key}: {best}")
            plots.plot_losses(history, run_dir / "loss.png", task.plot_keys)
        if checkpoint and world.is_main:
            save_train_state(run_dir / STATE_FILE, model, optimizer, step, rng)
            task.save_extra_state(run_dir, step)
            model_id = task.save(model, run_dir / MODEL_FILE)
            say(f"checkpoint step {step}: {run_dir / MODEL_FILE} (id {model_id})")
        tick += time.perf_counter() - paused
    return run_dir / MODEL_FILE


BEST_FILE = "best.safetensors"


def _keep_best(task, model, run_dir: Path, history: list[dict], row: dict) -> str | None:
    """Save the model as best.safetensors when this evaluation's ``task.best_key`` (higher is
    better; a codec: held-out chroma at the top operating point) beats every earlier one of the
    run, resumed parts included. Spectral losses can keep falling while the notes are lost."""
    key = getattr(task, "best_key", None)
    if key is None or key not in row:
        return None
    earlier = [
        r[key]
        for r in [*read_metrics(run_dir), *history]
        if r.get("kind") == "eval" and key in r and r is not row and r.get("step") != row["step"]
    ]
    sign = -1.0 if getattr(task, "best_lower", False) else 1.0  # e.g. a prior's bits/token
    if earlier and sign * row[key] <= max(sign * e for e in earlier):
        return None
    model_id = task.save(model, run_dir / BEST_FILE)
    return f"{run_dir / BEST_FILE} (step {row['step']}, {key} {row[key]:.3f}, id {model_id})"


def _append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    with open(run_dir / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def _write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(run_dir / METRICS_FILE, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
