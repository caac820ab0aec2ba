"""Measure the .vqa format: advertised vs real bitrate (with and without entropy coding),
compress/decompress real-time factors and peak memory (each run in a fresh child process).

    python experiments/format_bench.py --codec models/codec.safetensors song.wav
    python experiments/format_bench.py --random-default --seconds 60          # format overhead only
    python experiments/format_bench.py --codec tiny.safetensors --seconds 1800 --bitrates 6

Without an audio file a synthetic music-like signal of --seconds is written to a temp folder.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synth(path: Path, seconds: float, sample_rate: int = 44100, channels: int = 1) -> None:
    """Harmonic tones with vibrato plus a little noise, written block by block (flat memory)."""
    from vqaudio import audio

    total, block = int(seconds * sample_rate), sample_rate * 10
    rng = np.random.default_rng(0)
    with audio.Writer(path, sample_rate, channels) as writer:
        for start in range(0, total, block):
            t = np.arange(start, min(start + block, total)) / sample_rate
            f0 = 110 * 2 ** (np.floor(t / 2) % 12 / 12)
            wav = sum(
                0.3 / k * np.sin(2 * np.pi * f0 * k * t + 0.3 * np.sin(10 * t)) for k in range(1, 6)
            )
            wav = np.stack([wav * (1 - 0.2 * c) for c in range(channels)])
            writer.write((wav + 0.01 * rng.standard_normal(wav.shape)).astype(np.float32))


def child(args: argparse.Namespace) -> None:
    """One operation in this process; prints JSON with seconds and peak RSS."""
    import torch

    from vqaudio.codec.io import load_codec
    from vqaudio.vqa.compress import compress, decompress

    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec)
    start = time.perf_counter()
    if args.op == "compress":
        header = compress(
            codec,
            args.src,
            args.dst,
            bitrate=args.bitrate * 1000,
            entropy_coded=not args.no_entropy,
        )
        extra = {
            "levels": list(header.levels_per_channel),
            "duration": header.duration,
            "bytes": Path(args.dst).stat().st_size,
        }
    else:
        decompress(args.src, args.dst, codec)
        extra = {}
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **extra}))


def run_child(**kwargs) -> dict:
    cmd = [sys.executable, __file__, "--op", kwargs.pop("op")]
    for key, value in kwargs.items():
        if value is True:
            cmd.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", help="audio file [default: synthetic]")
    parser.add_argument("--codec", help="codec .safetensors")
    parser.add_argument(
        "--random-default",
        action="store_true",
        help="use a randomly initialised default-config codec (format overhead only)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the synthetic file")
    parser.add_argument("--channels", type=int, default=1, help="channels of the synthetic file")
    parser.add_argument("--bitrates", default="1.5,3,6", help="kbps, comma separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--op", choices=["compress", "decompress"], help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--dst", help=argparse.SUPPRESS)
    parser.add_argument("--bitrate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--no-entropy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.op:
        return child(args)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.random_default or not args.codec:
            import torch

            from vqaudio.codec import Codec
            from vqaudio.codec.io import save_codec
            from vqaudio.config import CodecConfig

            torch.manual_seed(0)
            args.codec = str(folder / "random-default.safetensors")
            save_codec(Codec(CodecConfig()), args.codec)
        src = Path(args.audio) if args.audio else folder / "synthetic.wav"
        if not args.audio:
            synth(src, args.seconds, channels=args.channels)
        print(f"codec {args.codec}, audio {src}, threads {args.threads}")
        print(
            "advertised_kbps entropy levels real_kbps compress_rtf decompress_rtf "
            "compress_peak_mb decompress_peak_mb"
        )
        for kbps in (float(b) for b in args.bitrates.split(",")):
            for entropy in (True, False):
                vqa = folder / "out.vqa"
                c = run_child(
                    op="compress",
                    codec=args.codec,
                    src=src,
                    dst=vqa,
                    bitrate=kbps,
                    no_entropy=not entropy,
                    threads=args.threads,
                )
                d = run_child(
                    op="decompress",
                    codec=args.codec,
                    src=vqa,
                    dst=folder / "out.wav",
                    threads=args.threads,
                )
                real = 8 * c["bytes"] / c["duration"] / 1000
                print(
                    f"{kbps:g} {'yes' if entropy else 'no'} {'+'.join(map(str, c['levels']))} "
                    f"{real:.4f} {c['duration'] / c['seconds']:.1f}x "
                    f"{c['duration'] / d['seconds']:.1f}x {c['peak_mb']:.0f} {d['peak_mb']:.0f}",
                    flush=True,
                )
                if not math.isfinite(real) or real > kbps:
                    print(f"  WARNING: real bitrate {real:.4f} kbps is above {kbps:g} kbps")


if __name__ == "__main__":
    main()
