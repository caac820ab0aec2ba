"""`vqaudio eval`: score decoded audio against its reference (mel distance, SI-SDR, ...)."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from vqaudio.errors import VqaudioError

from .console import check_output, err, pick_device, progress, reports_errors

# (key, heading, format). Headings are two short lines and columns one space apart, so all nine
# fit beside a file name in an 80-column terminal (the name folds if it is longer).
COLUMNS = (
    ("bitrate_kbps", "kbps\n", "{:.2f}"),
    ("mel_distance", "mel\ndist ↓", "{:.3f}"),
    ("spectral_convergence", "spec\nconv ↓", "{:.3f}"),
    ("si_sdr_db", "SI-SDR\ndB ↑", "{:.2f}"),
    ("chroma_correlation", "chroma\n↑", "{:.3f}"),
    ("chroma_control", "chroma\nctrl", "{:.3f}"),
    ("level_difference_db", "level\ndB", "{:+.2f}"),
    ("visqol", "ViSQOL\n↑", "{:.2f}"),
    ("delay_ms", "delay\nms", "{:.2f}"),
    ("duration_s", "secs\n", "{:.1f}"),
)
TABLE_WIDTH = 80  # the table's layout fits this many columns; a wider terminal changes nothing


@dataclass
class Pair:
    name: str
    reference: Path
    decoded: Path | None = None  # None: made by the codec round trip
    vqa: Path | None = None  # file whose size gives the real bitrate


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate)


@reports_errors
def evaluate(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="REFERENCE DECODED (two files, or two folders matched by file stem; DECODED "
            "may be a .vqa); with --bitrate: audio files or folders to compress, decode, score.",
            show_default=False,
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print results as JSON to stdout.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write reference vs decoded log-mel spectrograms and their difference to this PNG."
        ),
    ] = None,
    vqa: Annotated[
        Path | None,
        typer.Option(
            help="The .vqa file (or folder) DECODED came from: its size gives the real bitrate."
        ),
    ] = None,
    codec: Annotated[
        Path | None,
        typer.Option(
            help="Codec checkpoint for --bitrate and .vqa inputs \\[default: the shipped one]."
        ),
    ] = None,
    bitrate: Annotated[
        float | None,
        typer.Option(
            min=0.01, help="Compress PATHS at this many kbps with the codec, decode, score."
        ),
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option(
            "--sample-rate", min=1000, help="Score at this rate \\[default: each reference's rate]."
        ),
    ] = None,
    delay: Annotated[
        bool,
        typer.Option(
            "--delay/--no-delay", help="Find and remove the decoded signal's delay (±50 ms)."
        ),
    ] = True,
    with_visqol: Annotated[
        bool,
        typer.Option(
            "--visqol",
            help="Also score ViSQOL v3 (audio mode, 48 kHz; pip install 'vqaudio[visqol]'; "
            "~3 s per 10 s).",
        ),
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite the --plot file.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score decoded audio against the reference: mel distance, SI-SDR, level, delay, bitrate.

    Both signals are mixed to mono at one rate. Example: vqaudio eval song.wav song.decoded.wav
    or, round-tripping through the codec: vqaudio eval --bitrate 6 music/
    """
    roundtrip = bitrate is not None
    if with_visqol:
        _check_visqol()
    pairs = _roundtrip_pairs(paths) if roundtrip else _matched_pairs(paths, vqa)
    plots = _plot_paths(plot, pairs, force) if plot else {}
    needs_codec = roundtrip or any(p.decoded.suffix.lower() == ".vqa" for p in pairs)
    model = _load_codec(codec, device) if needs_codec else None
    rows = []
    with (
        progress(quiet or len(pairs) < 2, unit="steps") as bar,
        tempfile.TemporaryDirectory(prefix="vqaudio-eval-") as tmp,
    ):
        task = bar.add_task("scoring", total=len(pairs))
        for pair in pairs:
            rows.append(
                _score_pair(pair, model, bitrate, sample_rate, delay, Path(tmp), plots, with_visqol)
            )
            bar.advance(task)
    mean = _mean_row(rows)
    out = Console(stderr=as_json, soft_wrap=True)
    if not (as_json and quiet):
        out.print(_table(rows, mean, _title(model, bitrate)))
    if as_json:
        document = {"files": rows, "mean": mean}
        if model is not None:
            document["codec_id"] = getattr(model, "checkpoint_id", None)
        typer.echo(json.dumps(_finite(document), indent=2))


def _audio_files(folder: Path, vqa: bool = False) -> dict[str, Path]:
    from vqaudio import audio

    suffixes = set(audio.audio_suffixes()) | ({".vqa"} if vqa else set())
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            files.setdefault(path.stem, path)
    return files


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise VqaudioError(f"{what} {path}: no such file or folder")
    return path


def _matched_pairs(paths: list[Path], vqa: Path | None) -> list[Pair]:
    if len(paths) != 2:
        raise VqaudioError(
            f"expected REFERENCE and DECODED (2 paths), got {len(paths)}; "
            "to compress, decode and score files, pass --bitrate KBPS"
        )
    reference, decoded = (
        _existing(p, w) for p, w in zip(paths, ("REFERENCE", "DECODED"), strict=True)
    )
    if vqa is not None:
        _existing(vqa, "--vqa")
    if reference.is_dir() != decoded.is_dir() or (
        vqa is not None and vqa.is_dir() != reference.is_dir()
    ):
        raise VqaudioError(
            f"{reference} and {decoded}{' and ' + str(vqa) if vqa else ''}: give files only "
            "or folders only"
        )
    if not reference.is_dir():
        return [Pair(reference.stem, reference, decoded, vqa)]
    refs, decs = _audio_files(reference), _audio_files(decoded, vqa=True)
    vqas = {p.stem: p for p in vqa.glob("*.vqa")} if vqa else {}
    names = sorted(refs.keys() & decs.keys())
    if not names:
        raise VqaudioError(
            f"no file in {decoded} has the name (stem) of an audio file in {reference}; "
            "name decoded files like their references (song.wav -> song.flac)"
        )
    missing = sorted(refs.keys() - decs.keys())
    if missing:
        err.print(
            f"warning: {len(missing)} reference file(s) have no decoded match, e.g. "
            f"{refs[missing[0]].name}",
            markup=False,
            highlight=False,
        )
    return [Pair(n, refs[n], decs[n], vqas.get(n)) for n in names]


def _roundtrip_pairs(paths: list[Path]) -> list[Pair]:
    from vqaudio import audio

    pairs = []
    for path in paths:
        if _existing(path, "input").is_dir():
            found = list(_audio_files(path).values())
            if not found:
                raise VqaudioError(
                    f"{path}: holds no audio files ({', '.join(sorted(audio.audio_suffixes()))})"
                )
            pairs += [Pair(p.stem, p) for p in found]
        else:
            pairs.append(Pair(path.stem, path))
    if not pairs:
        raise VqaudioError("no input files; give audio files or folders to round-trip")
    return pairs


def _plot_paths(plot: Path, pairs: list[Pair], force: bool) -> dict[str, Path]:
    if plot.suffix.lower() != ".png":
        raise VqaudioError(f"--plot {plot}: expected a .png file name")
    if len(pairs) == 1:
        targets = {pairs[0].name: plot}
    else:  # one picture per file: plot.png -> plot-NAME.png
        targets = {p.name: plot.with_name(f"{plot.stem}-{p.name}.png") for p in pairs}
    for target in targets.values():
        check_output(str(target), force)
    return targets


def _load_codec(path: Path | None, device: str):
    from vqaudio.codec.io import load_codec

    return load_codec(path, pick_device(device))


def _check_visqol() -> None:
    """Fail before any work when --visqol is asked for and its package is missing."""
    import importlib.util

    from vqaudio.errors import ConfigError

    if importlib.util.find_spec("visqol") is None:
        raise ConfigError(
            "--visqol needs the optional package visqol-python: pip install 'vqaudio[visqol]'"
        )


def _score_pair(
    pair, model, bitrate, sample_rate, delay, tmp: Path, plots, with_visqol: bool = False
) -> dict:
    from vqaudio import audio
    from vqaudio.eval import metrics  # metrics imports torch and librosa: only when scoring

    rate = sample_rate or audio.info(pair.reference).sample_rate
    reference, _ = audio.read(pair.reference, sample_rate=rate, channels=1)
    bits, bitrate_source = None, None
    if pair.decoded is None:
        decoded_path, bits, bitrate_source = _roundtrip(model, pair, bitrate, tmp)
    elif pair.decoded.suffix.lower() == ".vqa":
        decoded_path = _decompress(pair.decoded, tmp / f"{pair.name}.wav", model)
        bits, bitrate_source = pair.decoded.stat().st_size * 8, "file"
    else:
        decoded_path = pair.decoded
    if pair.vqa is not None:
        bits, bitrate_source = pair.vqa.stat().st_size * 8, "file"
    decoded, _ = audio.read(decoded_path, sample_rate=rate, channels=1)
    result = metrics.score(
        reference, decoded, rate, compensate_delay=delay, with_visqol=with_visqol
    )
    duration = reference.shape[-1] / rate
    row = {
        "name": pair.name,
        "reference": str(pair.reference),
        "decoded": str(pair.decoded) if pair.decoded else None,
        "sample_rate": rate,
        "bitrate_kbps": bits / duration / 1000 if bits is not None else None,
        "bitrate_source": bitrate_source,
        **result,  # its duration_s is the part scored, after delay compensation
    }
    if pair.name in plots:
        _plot(reference, decoded, rate, result["delay_samples"], plots[pair.name], pair.name)
    return row


def _decompress(source: Path, out: Path, model) -> Path:
    from vqaudio.vqa.compress import decompress

    decompress(source, out, codec=model)
    return out


def _roundtrip(model, pair: Pair, bitrate: float, tmp: Path) -> tuple[Path, int, str]:
    """Compress to a .vqa at ``bitrate`` kbps and decode it: (decoded wav, bits, "file")."""
    from vqaudio.vqa.compress import compress, decompress

    vqa, wav = tmp / f"{pair.name}.vqa", tmp / f"{pair.name}.wav"
    compress(model, pair.reference, vqa, bitrate=bitrate * 1000)
    decompress(vqa, wav, codec=model)
    return wav, vqa.stat().st_size * 8, "file"


def _mean_row(rows: list[dict]) -> dict:
    mean = {"name": "mean", "files": len(rows)}
    for key, _, _ in COLUMNS:
        values = [r[key] for r in rows if r.get(key) is not None]
        mean[key] = sum(values) / len(values) if values and len(values) == len(rows) else None
    seconds = sum(r["duration_s"] for r in rows)
    if mean["bitrate_kbps"] is not None:  # total bits / total seconds, not a mean of ratios
        mean["bitrate_kbps"] = sum(r["bitrate_kbps"] * r["duration_s"] for r in rows) / seconds
    mean["duration_s"] = seconds
    return mean


def _table(rows: list[dict], mean: dict, title: str) -> Table:
    keys = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=0,  # the box leaves one space between columns
        pad_edge=False,
        show_edge=False,
    )
    table.add_column("file\n", overflow="fold", min_width=8)
    for _, header, _ in keys:
        table.add_column(header, justify="right", no_wrap=True)
    for row in rows + ([mean] if len(rows) > 1 else []):
        cells = ["—" if row.get(k) is None else fmt.format(row[k]) for k, _, fmt in keys]
        table.add_row(row["name"], *cells, style="bold" if row is mean else None)
    return table


def _title(model, bitrate: float | None) -> str:
    if model is None:
        return "vqaudio eval (mono)"
    target = f"{bitrate:g} kbps" if bitrate is not None else "all levels"
    return f"vqaudio eval: codec {getattr(model, 'checkpoint_id', '?')} at {target} (mono)"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _plot(reference, decoded, rate: int, delay: int, target: Path, name: str) -> None:
    import matplotlib

    from vqaudio.atomic import atomic_path
    from vqaudio.eval import metrics

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference, decoded = metrics.remove_delay(reference, decoded, delay)
    ref, dec = metrics.log_mel(reference, rate), metrics.log_mel(decoded, rate)
    seconds = reference.shape[-1] / rate
    low, high = min(ref.min(), dec.min()), max(ref.max(), dec.max())
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True, constrained_layout=True)
    panels = (
        (ref, "reference", "magma", (low, high)),
        (dec, "decoded", "magma", (low, high)),
        (dec - ref, "decoded − reference", "coolwarm", (-2, 2)),
    )
    for ax, (image, label, cmap, (vmin, vmax)) in zip(axes, panels, strict=True):
        shown = ax.imshow(
            image,
            origin="lower",
            aspect="auto",
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            extent=(0, seconds, 0, image.shape[0]),
        )
        ax.set_title(f"{name}: {label}")
        ax.set_xlabel("seconds")
        fig.colorbar(shown, ax=ax, label="log10 mel")
    axes[0].set_ylabel(f"mel band (128, {rate} Hz)")
    try:
        with atomic_path(target, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
