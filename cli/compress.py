"""`vqaudio compress`, `vqaudio decompress`, `vqaudio reconstruct`: audio <-> .vqa files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from vqaudio.errors import VqaudioError

from .console import (
    atomic_output,
    check_distinct,
    check_output,
    err,
    pick_device,
    progress,
    reports_errors,
    spooled_input,
)

CodecOption = Annotated[
    Path | None,
    typer.Option("--codec", help="Codec model file (.safetensors) \\[default: shipped model]."),
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")
]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
BitrateOption = Annotated[
    float,
    typer.Option("--bitrate", min=0.001, help="Bitrate of the whole file (all channels), kbps."),
]
BandLevelsOption = Annotated[
    bool,
    typer.Option(
        "--band-levels/--no-band-levels",
        help="Send the input's band levels (~40 bps per channel) so decoding keeps its loudness.",
    ),
]
BandResolutionOption = Annotated[
    str,
    typer.Option(
        "--band-resolution",
        help="How finely the band levels describe the spectrum: auto (16x0.4 unless that costs a "
        "code level, then 4x0.4), or BANDSxSECONDS: 4x0.4, 8x0.4, 16x0.4, 8x0.08, 16x0.08.",
    ),
]
NoEntropyOption = Annotated[
    bool, typer.Option("--no-entropy", help="Store fixed-width codes (no entropy coding).")
]


def _outputs(inputs: list[str], output: str | None, suffix: str) -> list[str]:
    """Output path for each input: IN with ``suffix``, or -o (a file for one input, or a folder)."""

    def default(name: str) -> str:
        return "-" if name == "-" else str(Path(name).with_suffix(suffix))

    if output is None:
        return [default(i) for i in inputs]
    if Path(output).is_dir():
        return [
            str(Path(output) / Path(default(i) if i != "-" else "stdin" + suffix).name)
            for i in inputs
        ]
    if len(inputs) > 1:
        raise VqaudioError(f"-o {output}: with several inputs, -o must be an existing folder")
    return [output]


def _checked_outputs(
    inputs: list[str], output: str | None, suffix: str, force: bool, check=None
) -> list[str]:
    """:func:`_outputs`, refused before any work if two coincide, one exists (without --force)
    or ``check(target)`` raises."""
    targets = _outputs(inputs, output, suffix)
    check_distinct(targets)
    for target in targets:
        if check:
            check(target)
        check_output(target, force)
    return targets


@contextlib.contextmanager
def _file_job(source: str, target: str, quiet: bool) -> Iterator[tuple[Path, Path, Callable]]:
    """(input path, temporary output path, progress callback) for one input: stdin spooled to a
    file, the output renamed into place only if the body succeeds."""
    with (
        spooled_input(source) as path,
        atomic_output(target) as tmp,
        _bar(quiet, source) as cb,
    ):
        yield path, tmp, cb


def _audio_format(target: str) -> str:
    """'wav' or 'flac' from the output name ('-' writes wav)."""
    if target == "-":
        return "wav"
    suffix = Path(target).suffix.lower()
    if suffix not in (".wav", ".flac"):
        raise VqaudioError(
            f"{target}: unsupported output format {suffix or '(none)'}; use .wav or .flac"
        )
    return suffix[1:]


def _load_codec(codec: Path | None, device: str):
    from vqaudio.codec.io import load_codec

    return load_codec(codec, device=pick_device(device))


def _encode(
    model,
    source: Path,
    target: Path,
    kbps: float,
    no_entropy: bool,
    on_progress,
    band_levels: bool = True,
    band_resolution: str = "auto",
):
    """vqaudio.compress with the CLI's units and flags; returns the .vqa header."""
    from vqaudio.codec import band_levels as bands
    from vqaudio.errors import ConfigError
    from vqaudio.vqa.compress import compress

    if band_resolution != "auto" and band_resolution not in bands.RESOLUTIONS:
        names = ", ".join(["auto", *bands.RESOLUTIONS])
        raise ConfigError(f"--band-resolution {band_resolution!r}: choose one of {names}")

    return compress(
        model,
        source,
        target,
        bitrate=kbps * 1000,
        entropy_coded=not no_entropy,
        on_progress=on_progress,
        with_band_levels=band_levels,
        band_resolution=band_resolution,
    )


@contextlib.contextmanager
def _bar(quiet: bool, name: str) -> Iterator:
    """A progress callback; the bar appears at the first report, so early errors print alone."""
    with contextlib.ExitStack() as stack:
        state: dict = {}

        def report(done: float, total: float) -> None:
            if "bar" not in state:
                state["bar"] = stack.enter_context(progress(quiet))
                state["task"] = state["bar"].add_task(name, total=total)
            state["bar"].update(state["task"], completed=done, total=total)

        yield report


def _summary(quiet: bool, source: str, target: str, header, size: int) -> None:
    if quiet:
        return
    real = 8 * size / max(header.duration, 1e-9)
    levels = "+".join(str(n) for n in header.levels_per_channel)
    err.print(
        f"{source} -> {target}: {header.duration:.2f} s, {header.channels} ch "
        f"({header.channel_coding}, levels {levels}), advertised {header.bitrate / 1000:g} kbps, "
        f"real {real / 1000:.3f} kbps, {size} bytes",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    @app.command()
    @reports_errors
    def compress(
        inputs: Annotated[list[str], typer.Argument(help="Audio files, or '-' for stdin.")],
        output: Annotated[
            str | None,
            typer.Option(
                "--output",
                "-o",
                help="Destination .vqa, a folder, or '-' for stdout \\[default: IN.vqa].",
            ),
        ] = None,
        bitrate: BitrateOption = 6.0,
        codec: CodecOption = None,
        device: DeviceOption = "auto",
        no_entropy: NoEntropyOption = False,
        band_levels: BandLevelsOption = True,
        band_resolution: BandResolutionOption = "auto",
        force: ForceOption = False,
        quiet: QuietOption = False,
    ) -> None:
        """Compress audio files into .vqa bitstreams.

        Example: vqaudio compress song.wav --bitrate 6 -o song.vqa
        """
        targets = _checked_outputs(inputs, output, ".vqa", force)
        model = _load_codec(codec, device)
        for source, target in zip(inputs, targets, strict=False):
            with _file_job(source, target, quiet) as (path, tmp, cb):
                header = _encode(
                    model, path, tmp, bitrate, no_entropy, cb, band_levels, band_resolution
                )
                size = os.path.getsize(tmp)
            _summary(quiet, source, target, header, size)

    @app.command()
    @reports_errors
    def decompress(
        inputs: Annotated[list[str], typer.Argument(help=".vqa files, or '-' for stdin.")],
        output: Annotated[
            str | None,
            typer.Option(
                "--output",
                "-o",
                help="Destination .wav/.flac, a folder, or '-' for stdout (wav) "
                "\\[default: IN.wav].",
            ),
        ] = None,
        codec: CodecOption = None,
        sample_rate: Annotated[
            int | None,
            typer.Option(
                "--sample-rate",
                min=1000,
                max=768000,
                help="Output rate in Hz \\[default: the source's].",
            ),
        ] = None,
        device: DeviceOption = "auto",
        force: ForceOption = False,
        quiet: QuietOption = False,
    ) -> None:
        """Decompress .vqa files to audio (wav, or flac by extension).

        Example: vqaudio decompress song.vqa -o song.flac
        """
        from vqaudio.vqa.compress import decompress as run

        targets = _checked_outputs(inputs, output, ".wav", force, check=_audio_format)
        model = _load_codec(codec, device)
        for source, target in zip(inputs, targets, strict=False):
            with _file_job(source, target, quiet) as (path, tmp, cb):
                run(
                    path,
                    tmp,
                    model,
                    sample_rate=sample_rate,
                    on_progress=cb,
                    fmt=_audio_format(target),
                )
            if not quiet:
                err.print(f"{source} -> {target}", markup=False, highlight=False)

    @app.command()
    @reports_errors
    def reconstruct(
        audio: Annotated[str, typer.Argument(help="Audio file, or '-' for stdin.")],
        output: Annotated[
            str,
            typer.Option("--output", "-o", help="Destination .wav/.flac, or '-' for stdout (wav)."),
        ],
        bitrate: BitrateOption = 6.0,
        codec: CodecOption = None,
        device: DeviceOption = "auto",
        no_entropy: NoEntropyOption = False,
        band_levels: BandLevelsOption = True,
        band_resolution: BandResolutionOption = "auto",
        force: ForceOption = False,
        quiet: QuietOption = False,
    ) -> None:
        """Compress and decompress in one go, to hear what a bitrate sounds like.

        Example: vqaudio reconstruct song.wav --bitrate 1.5 -o song-1.5k.wav
        """
        from vqaudio.vqa.compress import decompress as decode

        _audio_format(output)
        check_output(output, force)
        model = _load_codec(codec, device)
        with tempfile.TemporaryDirectory() as folder, spooled_input(audio) as path:
            vqa = Path(folder) / "reconstruct.vqa"
            with _bar(quiet, f"{audio} (encode)") as cb:
                header = _encode(
                    model, path, vqa, bitrate, no_entropy, cb, band_levels, band_resolution
                )
            _summary(quiet, audio, "(memory)", header, vqa.stat().st_size)
            with atomic_output(output) as tmp, _bar(quiet, f"{audio} (decode)") as cb:
                decode(vqa, tmp, model, on_progress=cb, fmt=_audio_format(output))
