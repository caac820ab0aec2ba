"""Shared pieces of the benchmark scripts: machine description, results files, tables, music clips.

Benchmarks are scripts, not tests: each prints a table with the machine and date, writes
benchmarks/results/NAME.json and prints the exact command that reproduces it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

from vqaudio.atomic import atomic_write

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# Wesnoth and Warzone 2100 soundtracks (GPL; Debian wesnoth-1.16-music, warzone2100-music), the
# same glob as recipes/music-24k-codec.yaml's data.path
MUSIC = "/usr/share/games/w[ae][rs]*/**/music/**/*.o*"
SILENT_RMS = 10 ** (-50 / 20)  # clips quieter than -50 dBFS are skipped (see music_clips)
HELD_OUT = 4  # whole tracks the codec recipes hold out (recipes/music-24k-codec.yaml val_files)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model, cores, load, torch and python versions, date: printed and stored with results."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def command() -> str:
    """The command line that ran this script, to reproduce it."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def save(name: str, document: dict) -> Path:
    """Write benchmarks/results/NAME.json (atomically)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    with atomic_write(path, "w") as f:
        f.write(json.dumps(document, indent=2) + "\n")
    return path


def print_header(title: str, info: dict) -> None:
    print(f"# {title}")
    print(
        f"machine: {info['cpu']}, {info['cores']} cores (load {info['load_average_1min']}), "
        f"torch {info['torch']}, python {info['python']}"
    )
    print(f"date: {info['date']}")


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """Markdown table; ``columns`` are (key, header, format); missing values print as '—'."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append(
            [
                "—" if row.get(k) is None else (fmt.format(row[k]) if fmt else str(row[k]))
                for k, _, fmt in columns
            ]
        )
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for n, r in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def group_means(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """One row per distinct combination of ``keys`` (in the order they first appear): the keys,
    then the mean of every other numeric field of its rows."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for values, members in groups.items():
        first = members[0]
        fields = [
            k
            for k, v in first.items()
            if k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        means = {k: float(np.mean([m[k] for m in members])) for k in fields}
        out.append({**dict(zip(keys, values, strict=True)), **means})
    return out


def print_footer(path: Path) -> None:
    print(f"results: {path.relative_to(HERE.parent)}")
    print(f"reproduce: {command()}")


def report(
    name: str,
    title: str,
    info: dict,
    rows: list[dict],
    columns: list[tuple[str, str, str]],
    *,
    model: str | None = None,
    notes: tuple[str, ...] = (),
    **fields,
) -> None:
    """Print header, ``notes``, table and footer; save benchmarks/results/NAME.json with the
    machine, the vqaudio model (if any), the command, ``fields`` and the rows."""
    print_header(title, info)
    for line in notes:
        print(line)
    print_table(rows, columns)
    document = {"machine": info}
    if model is not None:
        document["vqaudio_model"] = model
    document.update({"command": command(), **fields, "rows": rows})
    print_footer(save(name, document))


def add_codec_arguments(parser: argparse.ArgumentParser, random_help: str) -> None:
    """--codec CHECKPOINT and --random (random-init CodecConfig())."""
    parser.add_argument("--codec", help="vqaudio codec checkpoint [default: the shipped one]")
    parser.add_argument("--random", action="store_true", help=random_help)
    parser.add_argument(
        "--griffin-lim-iters",
        type=int,
        help="render with this many Griffin-Lim iterations (spectral decoder; default: the "
        "codec's own)",
    )


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """--tracks, --clips-per-track, --seconds: the music clips (see ``music_clips``)."""
    parser.add_argument(
        "--tracks",
        nargs="+",
        help=f"track files or names in {MUSIC} [default: the {HELD_OUT} held out by "
        "the training recipes]",
    )
    parser.add_argument("--clips-per-track", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)


def codec_from_args(args: argparse.Namespace, random_note: str) -> tuple:
    """(codec, label) from --codec / --random; the seed makes --random reproducible."""
    import torch

    from vqaudio import Codec, CodecConfig, load_codec

    torch.manual_seed(0)
    if args.random:
        return Codec(CodecConfig()).eval(), f"random-init CodecConfig() ({random_note})"
    model = load_codec(args.codec)
    label = f"{getattr(model, 'checkpoint_path', args.codec)} (id {model.checkpoint_id})"
    iters = getattr(args, "griffin_lim_iters", None)
    if iters is not None:
        set_griffin_lim_iters(model, iters)
        label += f", {iters} Griffin-Lim iterations"
    return model, label


def set_griffin_lim_iters(codec, iters: int) -> None:
    """Render with ``iters`` Griffin-Lim iterations instead of the codec's own (a decode-time
    setting: the codes and the code space do not change). Chunked decoding keeps the margins of
    the codec's config, which cover fewer iterations; with more, chunk edges of long files are
    no longer guaranteed seamless (the benchmarks' 10 s and 30 s clips decode in one chunk)."""
    if not hasattr(codec.decoder, "iters"):
        raise SystemExit("--griffin-lim-iters needs a codec with the spectral decoder")
    if iters < 0:
        raise SystemExit(f"--griffin-lim-iters {iters} must be >= 0")
    codec.decoder.iters = iters


def find_tracks(names: list[str] | None) -> list[Path]:
    """Track files or names in MUSIC; none given: the held-out tracks."""
    if not names:
        return held_out_tracks()
    from vqaudio.train.data import find_audio

    by_name = {p.name: p for p in find_audio(MUSIC)}
    return [Path(t) if Path(t).exists() else by_name.get(t, Path(t)) for t in names]


def describe_clips(clips: list, seconds: float, sample_rate: int, tracks: list[Path]) -> str:
    return (
        f"clips: {len(clips)} x {seconds:g} s, {sample_rate / 1000:g} kHz mono, from "
        + ", ".join(t.name for t in tracks)
    )


def held_out_tracks() -> list[Path]:
    """The tracks the training recipes hold out (same deterministic split as vqaudio.train)."""
    from vqaudio.train.data import find_audio, split_files

    return split_files(find_audio(MUSIC), HELD_OUT)[1]


def music_clips(
    tracks: list[Path], seconds: float, per_track: int, sample_rate: int
) -> list[tuple[str, np.ndarray]]:
    """Deterministic mono clips: ``per_track`` clips of ``seconds`` at evenly spaced offsets.

    Returns (name, wav (1, T) float32 at ``sample_rate``); the name holds track and offset.
    """
    from vqaudio import audio

    clips = []
    for track in tracks:
        wav, _ = audio.read(track, sample_rate=sample_rate, channels=1)
        length = int(seconds * sample_rate)
        span = wav.shape[1] - length
        for k in range(per_track):
            start = int(span * (k + 1) / (per_track + 1) // sample_rate) * sample_rate
            start = max(start, 0)
            clip = wav[:, start : start + length]
            name = f"{track.stem}@{start // sample_rate}s"
            # a silent clip (Wesnoth's held-out "silence" track is digital near-silence, -103
            # dBFS) has no notes to keep: its chroma is noise, so it is left out; so is a repeat
            if np.sqrt(np.mean(clip**2)) < SILENT_RMS or name in {c[0] for c in clips}:
                continue
            clips.append((name, clip))
    return clips


def looped(wav: np.ndarray, num_samples: int) -> np.ndarray:
    """(C, T) repeated/cropped to ``num_samples``: a long input from a shorter track."""
    reps = -(-num_samples // wav.shape[1])
    return np.ascontiguousarray(np.tile(wav, (1, reps))[:, :num_samples])


def top_k_levels(text: str) -> int | None | tuple[int | None, ...]:
    """argparse type: '250' or '100,0' (per level, level 0 first; 0: no top-k) -> sample_tokens'
    top_k (vqaudio.prior.sampling.parse_per_level)."""
    return _per_level(text, "--top-k", int)


def top_p_levels(text: str) -> float | tuple[float, ...]:
    """argparse type: '0.98' or '0.9,0.98' (per level, level 0 first) -> sample_tokens' top_p."""
    return _per_level(text, "--top-p", float)


def _per_level(text: str, name: str, kind: type):
    from vqaudio.errors import ConfigError
    from vqaudio_cli.generate import parse_per_level

    try:
        return parse_per_level(text, name, kind)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
