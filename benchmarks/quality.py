"""Quality at real bitrates: vqaudio's operating points vs Opus and MP3 on held-out music.

Each 10 s clip of the held-out tracks (24 kHz mono reference) goes through
- vqaudio: `compress` at 1.5 / 3 / 6 kbps, then `decompress`; the bitrate is the .vqa file's size;
- Opus: `opusenc --bitrate B --hard-cbr` at 6 / 12 / 16 / 24 kbps, then `opusdec`;
- MP3: `lame --cbr -b B` at 8 / 16 / 32 kbps, then `lame --decode`;
and is scored by vqaudio.eval.metrics.score (delay compensated) at 24 kHz mono: mel distance,
SI-SDR, and whether the notes survive (chroma correlation, with its time-shifted control: the
reference rolled by half its length, what a codec that keeps no notes scores). Real bitrate =
encoded file size * 8 / duration, container included. With a random-init codec (--random) the
vqaudio rows only prove the pipeline; quality needs a trained checkpoint.

    python benchmarks/quality.py --codec vqaudio/models/codec.safetensors
    python benchmarks/quality.py --random --clips-per-track 1    # pipeline check

``--also-without-band-levels`` adds the vqaudio rows of files written without band levels.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RATE = 24000
COLUMNS = [
    ("codec", "codec", ""),
    ("target_kbps", "target kbps", "{:g}"),
    ("real_kbps", "real kbps", "{:.2f}"),
    ("mel_distance", "mel dist ↓", "{:.3f}"),
    ("si_sdr_db", "SI-SDR dB ↑", "{:.2f}"),
    ("chroma_correlation", "chroma ↑", "{:.3f}"),
    ("chroma_control", "chroma ctrl", "{:.3f}"),
    ("spectral_convergence", "spec conv ↓", "{:.3f}"),
    ("level_difference_db", "level dB", "{:+.2f}"),
    ("visqol", "ViSQOL ↑", "{:.2f}"),
    ("mel_other_clip", "mel vs another clip", "{:.3f}"),
    ("clips", "clips", ""),
    ("note", "note", ""),
]


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def opus(source: Path, kbps: float, tmp: Path) -> tuple[Path, int]:
    encoded, decoded = tmp / "x.opus", tmp / "x.opus.wav"
    _run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--hard-cbr", str(source), str(encoded)])
    _run(["opusdec", "--quiet", str(encoded), str(decoded)])
    return decoded, encoded.stat().st_size * 8


def mp3(source: Path, kbps: float, tmp: Path) -> tuple[Path, int]:
    encoded, decoded = tmp / "x.mp3", tmp / "x.mp3.wav"
    _run(["lame", "--quiet", "--cbr", "-b", f"{kbps:g}", "-m", "m", str(source), str(encoded)])
    _run(["lame", "--quiet", "--decode", str(encoded), str(decoded)])
    return decoded, encoded.stat().st_size * 8


def vqaudio_codec(model, band_levels: bool = True, resolution: str = "auto"):
    from vqaudio.vqa.compress import compress, decompress

    def run(source: Path, kbps: float, tmp: Path) -> tuple[Path, int]:
        encoded, decoded = tmp / "x.vqa", tmp / "x.vqa.wav"
        compress(
            model,
            source,
            encoded,
            bitrate=kbps * 1000,
            with_band_levels=band_levels,
            band_resolution=resolution,
        )
        decompress(encoded, decoded, codec=model)
        return decoded, encoded.stat().st_size * 8

    return run


def evaluate(name: str, run, kbps: float, clips, tmp: Path, with_visqol: bool = False) -> dict:
    from vqaudio import audio
    from vqaudio.errors import VqaudioError
    from vqaudio.eval import metrics

    row = {"codec": name, "target_kbps": kbps, "per_clip": []}
    outputs = []
    for clip_name, path, reference in clips:
        try:
            decoded_path, bits = run(path, kbps, tmp)
        except (VqaudioError, subprocess.CalledProcessError) as e:
            return {**row, "note": str(e).splitlines()[0][:120]}
        decoded, _ = audio.read(decoded_path, sample_rate=RATE, channels=1)
        outputs.append(decoded)
        result = metrics.score(reference, decoded, RATE, with_visqol=with_visqol)
        result["real_kbps"] = bits / (reference.shape[-1] / RATE) / 1000
        row["per_clip"].append({"clip": clip_name, **result})
    # content control: each output scored against the NEXT clip's reference. A codec that carries
    # the music scores far worse there; a generic, content-free texture scores about the same.
    for k, record in enumerate(row["per_clip"]):
        other = clips[(k + 1) % len(clips)][2]
        score = metrics.score(other, outputs[k], RATE, compensate_delay=False)
        record["mel_other_clip"] = score["mel_distance"]
    for key in (
        "real_kbps",
        "mel_distance",
        "si_sdr_db",
        "chroma_correlation",
        "chroma_control",
        "spectral_convergence",
        "level_difference_db",
        "mel_other_clip",
        *(("visqol",) if with_visqol else ()),
    ):
        row[key] = float(np.mean([c[key] for c in row["per_clip"]]))
    row["clips"] = len(row["per_clip"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_codec_arguments(
        parser, "random-init CodecConfig(): proves the pipeline, says nothing of quality"
    )
    common.add_clip_arguments(parser)
    parser.add_argument("--vqaudio-kbps", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    parser.add_argument("--opus-kbps", type=float, nargs="*", default=[6.0, 12.0, 16.0, 24.0])
    parser.add_argument("--mp3-kbps", type=float, nargs="*", default=[8.0, 16.0, 32.0])
    parser.add_argument(
        "--band-resolutions",
        nargs="+",
        default=["auto"],
        help="compress --band-resolution of the vqaudio rows; more than one adds a row set each",
    )
    parser.add_argument(
        "--name", default="quality", help="results file benchmarks/results/NAME.json"
    )
    parser.add_argument(
        "--visqol",
        action="store_true",
        help="add ViSQOL v3 (audio mode; pip install 'vqaudio[visqol]'; ~3 s per clip and codec)",
    )
    parser.add_argument(
        "--also-without-band-levels",
        action="store_true",
        help="add vqaudio rows for files written with compress --no-band-levels (format 4 style)",
    )
    args = parser.parse_args()

    from vqaudio import audio

    model, label = common.codec_from_args(args, "quality meaningless")
    tracks = common.find_tracks(args.tracks)
    info = common.machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vqaudio-quality-") as tmp_name:
        tmp = Path(tmp_name)
        clips = []
        for name, wav in common.music_clips(tracks, args.seconds, args.clips_per_track, RATE):
            path = tmp / f"{len(clips)}.wav"
            audio.write(path, wav, RATE)
            reference, _ = audio.read(path)  # as the codecs see it: 16-bit
            clips.append((name, path, reference))
        print(f"clips: {', '.join(c[0] for c in clips)}", file=sys.stderr)
        runners = [
            (
                "vqaudio" if res == "auto" else f"vqaudio, bands {res}",
                vqaudio_codec(model, resolution=res),
                args.vqaudio_kbps,
            )
            for res in args.band_resolutions
        ]
        if args.also_without_band_levels:
            plain = vqaudio_codec(model, band_levels=False)
            runners.append(("vqaudio, no band levels", plain, args.vqaudio_kbps))
        runners.append(("opus", opus, args.opus_kbps) if shutil.which("opusenc") else None)
        runners.append(("mp3 (lame)", mp3, args.mp3_kbps) if shutil.which("lame") else None)
        for name, run, rates in filter(None, runners):
            for kbps in rates:
                print(f"... {name} {kbps:g} kbps", file=sys.stderr)
                rows.append(evaluate(name, run, kbps, clips, tmp, args.visqol))
    common.report(
        args.name,
        f"quality at real bitrates (vqaudio: {label})",
        info,
        rows,
        COLUMNS,
        model=label,
        notes=(common.describe_clips(clips, args.seconds, RATE, tracks),),
        clips=[c[0] for c in clips],
    )


if __name__ == "__main__":
    main()
