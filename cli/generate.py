"""`vqaudio generate`: sample music from a prior and decode it with its codec."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskProgressColumn, TextColumn

from vqaudio.errors import ConfigError, UsageError, VqaudioError

from .console import (
    atomic_output,
    check_distinct,
    check_output,
    err,
    pick_device,
    progress,
    reports_errors,
)

DEFAULT_NAME = "generated"
OUTPUT_SUFFIXES = (".wav", ".flac", ".ogg")  # what audio.write accepts


def _free_names(n: int, folder: Path = Path(".")) -> list[str]:
    """generated.wav (n = 1) or generated-1.wav ... generated-n.wav, numbered past any existing
    generated[-k].wav so nothing is overwritten."""
    pattern = re.compile(rf"{DEFAULT_NAME}(?:-(\d+))?\.wav")
    taken = [m for p in folder.glob(f"{DEFAULT_NAME}*.wav") if (m := pattern.fullmatch(p.name))]
    if n == 1 and not taken:
        return [f"{DEFAULT_NAME}.wav"]
    last = max((int(m.group(1) or 0) for m in taken), default=0)
    return [f"{DEFAULT_NAME}-{last + i}.wav" for i in range(1, n + 1)]


def output_names(output: str | None, n: int) -> list[str]:
    """Destination of each of the n samples: -o OUT, numbered OUT-1.wav ... when n > 1."""
    if output is None:
        return _free_names(n)
    if n == 1:
        return [output]
    if output == "-":
        raise VqaudioError("-o -: stdout holds one file; use -n 1 or an output file name")
    path = Path(output)
    suffix = path.suffix or ".wav"
    return [str(path.with_name(f"{path.stem}-{i}{suffix}")) for i in range(1, n + 1)]


def _progress(quiet: bool) -> Progress:
    return progress(
        quiet,
        unit="steps",
        extra=(
            TextColumn("tokens"),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:.0f} tokens/s"),
        ),
    )


def _load_models(prior_path: Path | None, codec_path: Path | None, device: str):
    """The prior and its codec: --codec, else the codec file the prior recorded when it was
    trained (if it is still there), else the shipped one (``generate`` checks that it fits)."""
    from vqaudio.codec.io import load_codec
    from vqaudio.prior import load_prior

    prior = load_prior(prior_path, device)
    if codec_path is None and prior_path is not None and prior.codec_path is not None:
        if prior.codec_path.is_file():
            codec_path = prior.codec_path
    return prior, load_codec(codec_path, device)


def parse_per_level(text: str, name: str, kind: type) -> int | float | None | tuple:
    """'0.98' or '0.9,0.98' (one value, or one per level: level 0 first) -> the value or a tuple,
    as ``Sampling`` takes them; a top-k (``kind`` int) of 0 means none."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        example = "0.9,0.98" if kind is float else "100,0"
        raise UsageError(
            f"{name} {text}: give a number, or numbers per level separated by commas "
            f"(level 0 first, e.g. {example})"
        ) from None
    if kind is int:
        values = tuple(v or None for v in values)
    return values[0] if len(values) == 1 else values


def _sampling(top_k: str | None, top_p: str | None, **given):
    """The shipped Sampling with the options given (None: not given) in its place; turning the
    exact hold off without a --hold-cap also drops the cap that goes with it."""
    import dataclasses

    from vqaudio.prior.sampling import SHIPPED

    changes = {name: value for name, value in given.items() if value is not None}
    if top_k is not None:
        changes["top_k"] = parse_per_level(top_k, "--top-k", int)
    if top_p is not None:
        changes["top_p"] = parse_per_level(top_p, "--top-p", float)
    if changes.get("exact_hold") is False:
        changes.setdefault("hold_cap", 1.0)
    try:
        return dataclasses.replace(SHIPPED, **changes)
    except ConfigError as e:  # a malformed value: a usage error, named as the option it came from
        field, _, rest = str(e).partition(" ")  # Sampling's messages open with the field's name
        names = {f.name for f in dataclasses.fields(SHIPPED)}
        text = f"--{field.replace('_', '-')} {rest}" if field.rstrip(":") in names else str(e)
        raise UsageError(text) from None


def _check_options(seconds: float, prompt: str | None, like: Path | None = None) -> None:
    """Option errors before any model loads (a model load can take seconds)."""
    import math

    if not (seconds > 0 and math.isfinite(seconds)):
        raise VqaudioError(f"--seconds {seconds:g}: must be a positive number")
    if prompt is not None and prompt != "-" and not Path(prompt).is_file():
        raise VqaudioError(f"--prompt {prompt}: no such file")
    if like is not None and not like.is_file():
        raise VqaudioError(f"--like {like}: no such file")


def _request(tempo, chords, beats_per_chord, like, seconds, prompt_seconds):
    """The controls asked for; malformed values fail here, before any model loads (exit 2).
    ``--like`` is read (mono, the first seconds it is needed for) at the analysis rate."""
    import math

    from vqaudio.controls.chords import parse_progression
    from vqaudio.controls.requests import Request, read_reference
    from vqaudio.errors import UsageError

    if tempo is not None and not (math.isfinite(tempo) and tempo > 0):
        raise UsageError(f"--tempo {tempo:g}: give beats per minute, e.g. --tempo 100")
    if chords is not None:
        parse_progression(chords)  # an unknown symbol is named here
    reference = None if like is None else read_reference(like, seconds + prompt_seconds + 5)
    return Request(tempo, chords, beats_per_chord, reference)


def _read_prompt(path: str, codec):
    import torch

    from vqaudio import audio

    from .console import spooled_input

    with spooled_input(path) as source:
        wav, _ = audio.read(source, codec.config.sample_rate, codec.config.channels)
    return torch.from_numpy(wav)


def _warn_if_silent_end(wav, rate: int) -> None:
    """Warn when the prompt's last second is below -60 dBFS: the shipped prior continues a
    silence with silence (docs/MODEL_CARD.md, Generation)."""
    from vqaudio.eval.metrics import rms

    tail = wav[..., -rate:]
    if tail.numel() and rms(tail) < 10 ** (-60 / 20):
        err.print(
            "warning: the prompt ends in silence (its last second is below -60 dBFS); the "
            "continuation will likely stay silent: trim the prompt's silent end",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def generate(
    seconds: Annotated[float, typer.Option(help="Seconds of new audio per sample.")] = 10.0,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Output .wav/.flac, '-' for stdout; numbered OUT-1.wav ... with -n > 1 "
            "\\[default: generated.wav, or the next free generated-N.wav].",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--num-samples", "-n", min=1, help="Samples to generate.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (same seed + device -> same audio).")] = 0,
    # the sampling defaults are sampling.SHIPPED's, written out so that --help needs no torch
    temperature: Annotated[
        float | None,
        typer.Option(help="Softmax temperature (> 0) \\[default: 0.95].", show_default=False),
    ] = None,
    top_k: Annotated[
        str | None,
        typer.Option(
            help="Sample among the K likeliest codes (0: all); K0,K1,.. sets each level "
            "(level 0 first, the last repeats) \\[default: 0].",
        ),
    ] = None,
    top_p: Annotated[
        str | None,
        typer.Option(
            help="Nucleus sampling mass in (0, 1] (1: off); P0,P1,.. sets each level "
            "(level 0 first, the last repeats) \\[default: 0.8,0.98].",
        ),
    ] = None,
    exact_hold: Annotated[
        bool | None,
        typer.Option(
            "--exact-hold/--no-exact-hold",
            help="At level 0, keep the prior's probability of holding the previous frame's code "
            "and apply --top-k/--top-p to the other codes only, so a nucleus never makes a hold "
            "certain \\[default: on].",
            show_default=False,
        ),
    ] = None,
    cache_scale: Annotated[
        float,
        typer.Option(
            help="Weight of the frame prior's unigram cache, the pull of the piece's own earlier "
            "codes (1: as trained; lower: fewer drones, but the piece wanders).",
        ),
    ] = 1.0,
    cache_by_chord: Annotated[
        float | None,
        typer.Option(
            help="The unigram cache weighs the codes the piece played under other chords than the "
            "current one by 1 - this, so it recalls each chord's own codes and is not held to "
            "its first chord (0: off, as trained; 1: each chord's own alone) "
            "\\[default: 1].",
            show_default=False,
        ),
    ] = None,
    contrast: Annotated[
        float | None,
        typer.Option(
            help="Level 0 draws from p(code | piece) / p(code | no context)^CONTRAST: codes "
            "likely anywhere (the codec's generic, pitchless textures) lose some of their "
            "chance, codes the piece makes likely keep theirs (0: off) \\[default: 0].",
            show_default=False,
        ),
    ] = None,
    hold_cap: Annotated[
        float | None,
        typer.Option(
            help="At level 0, the previous frame's code keeps at most this probability, so no "
            "code is held for long with near certainty (1: the prior's own; with --exact-hold) "
            "\\[default: 0.9].",
            show_default=False,
        ),
    ] = None,
    tempo: Annotated[
        float | None,
        typer.Option(
            help="Beats per minute to follow (a prior with controls; within the tempi it was "
            "trained on) \\[default: a plan's].",
            show_default=False,
        ),
    ] = None,
    chords: Annotated[
        str | None,
        typer.Option(
            help="Chords to follow, one per bar (see --beats-per-chord), cycled: roots A-G with # "
            'or b, m for minor, N for none, e.g. "Am F C G" \\[default: a plan\'s].',
            show_default=False,
        ),
    ] = None,
    beats_per_chord: Annotated[
        int, typer.Option(help="Beats per chord of --chords (4: a bar of 4/4).")
    ] = 4,
    like: Annotated[
        Path | None,
        typer.Option(help="Follow this recording's beat, onsets and chords (not its sound)."),
    ] = None,
    guidance: Annotated[
        float | None,
        typer.Option(
            help="Classifier-free guidance on the controls (1: none; above 1 follows them more "
            "closely, in the slower PyTorch loop) \\[default: 1].",
            show_default=False,
        ),
    ] = None,
    control_scale: Annotated[
        float | None,
        typer.Option(
            help="How strongly to follow the controls: their effect times S (1: as trained; "
            "unlike --guidance it keeps the fast loop) \\[default: 2.5].",
            show_default=False,
        ),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Audio to continue ('-' for stdin).")] = None,
    prompt_seconds: Annotated[
        float, typer.Option(help="Seconds of the prompt's end to use.")
    ] = 10.0,
    prior: Annotated[
        Path | None, typer.Option(help="Prior checkpoint \\[default: shipped].")
    ] = None,
    codec: Annotated[
        Path | None, typer.Option(help="Codec checkpoint \\[default: shipped].")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    griffin_lim_iters: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Griffin-Lim iterations to render with, at most the codec's own "
            "\\[default: 16, or the codec's own if fewer].",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache", help="Recompute the context for every token (slow; for checking)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate music with a prior over codes, decoded by its codec.

    Example: vqaudio generate --seconds 30 --tempo 100 --chords "Am F C G" -o song.wav
    """
    import contextlib
    import time

    from vqaudio.generation import generate as generate_wav

    _check_options(seconds, prompt, like)
    request = _request(tempo, chords, beats_per_chord, like, seconds, prompt_seconds)
    sampling = _sampling(
        top_k,
        top_p,
        temperature=temperature,
        exact_hold=exact_hold,
        hold_cap=hold_cap,
        contrast=contrast,
        cache_scale=cache_scale,
        cache_by_chord=cache_by_chord,
        guidance=guidance,
        control_scale=control_scale,
    )
    names = output_names(output, n)
    check_distinct(names)
    for name in names:
        _check_format(name)
        check_output(name, force)
    device = pick_device(device)
    prior_model, codec_model = _load_models(prior, codec, device)
    if griffin_lim_iters is not None and griffin_lim_iters > codec_model.config.griffin_lim_iters:
        raise VqaudioError(
            f"--griffin-lim-iters {griffin_lim_iters} is more than the codec's own "
            f"{codec_model.config.griffin_lim_iters} (which sets its decoding margins)"
        )
    prompt_wav = _read_prompt(prompt, codec_model) if prompt is not None else None
    if prompt_wav is not None:
        _warn_if_silent_end(prompt_wav, codec_model.config.sample_rate)
    with contextlib.ExitStack() as stack:
        began, shown = time.perf_counter(), []  # the bar starts with the first tokens

        def on_progress(done: int, total: int) -> None:
            if not shown:
                bar = stack.enter_context(_progress(quiet))
                shown.append((bar, bar.add_task("generate", total=total, rate=0.0)))
            bar, task = shown[0]
            rate = done * n / max(time.perf_counter() - began, 1e-9)
            bar.update(task, completed=done, total=total, rate=rate)

        wav = generate_wav(
            prior_model,
            codec_model,
            seconds,
            n=n,
            seed=seed,
            sampling=sampling,
            prompt_wav=prompt_wav,
            prompt_seconds=prompt_seconds,
            on_progress=on_progress,
            use_cache=not no_cache,
            request=request,
            on_plan=None if quiet else _print_plans,
            **({} if griffin_lim_iters is None else {"griffin_lim_iters": griffin_lim_iters}),
        )
    wav = wav.float().cpu().numpy()
    rate = codec_model.config.sample_rate
    for name, sample in zip(names, wav, strict=True):
        _write(name, sample, rate)
        if not quiet and name != "-":
            err.print(f"wrote {name} ({sample.shape[-1] / rate:.2f} s, {rate} Hz)", highlight=False)


def _print_plans(plans: list[str]) -> None:
    """Each piece's plan in one line, as the options that ask for it again."""
    for i, plan in enumerate(plans, 1):
        which = f"piece {i} " if len(plans) > 1 else ""
        err.print(f"{which}plan: {plan}", markup=False, highlight=False, soft_wrap=True)


def _write(name: str, sample, rate: int) -> None:
    """Write (C, T) to ``name`` atomically; '-' writes a WAV to stdout."""
    import tempfile

    from vqaudio import audio

    if name != "-":
        audio.write(name, sample, rate)
        return
    with tempfile.TemporaryDirectory() as folder, atomic_output("-") as tmp:
        audio.write(Path(folder) / "generated.wav", sample, rate)
        tmp.write_bytes((Path(folder) / "generated.wav").read_bytes())


def _check_format(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if name != "-" and suffix not in OUTPUT_SUFFIXES:
        raise VqaudioError(
            f"{name}: unsupported output format {suffix or '(none)'}; use .wav or .flac"
        )


def register(app: typer.Typer) -> None:
    app.command("generate")(reports_errors(generate))
