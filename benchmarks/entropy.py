"""Real bitrate of .vqa files with and without entropy coding, per operating point, on real music.

For each operating point the held-out clips are compressed twice with `vqaudio.compress`:
`entropy_coded=False` (fixed-width codes: levels * log2(codebook_size) bits per code + container)
and `entropy_coded=True` (the lossless adaptive range coder). Both decode to the same codes, so the
saving is free. Format speed and memory on long files: benchmarks/format_bench.py.

    python benchmarks/entropy.py --codec vqaudio/models/codec.safetensors
    python benchmarks/entropy.py --random --clips-per-track 1     # pipeline check only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RATE = 24000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", help="vqaudio codec checkpoint [default: the shipped one]")
    parser.add_argument(
        "--random",
        action="store_true",
        help="random-init CodecConfig(): its codes are not those of a trained model",
    )
    parser.add_argument("--tracks", nargs="+", help="track files or names [default: held-out 3]")
    parser.add_argument("--clips-per-track", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kbps", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    args = parser.parse_args()

    import torch

    from vqaudio import Codec, CodecConfig, audio, load_codec
    from vqaudio.compress import compress

    torch.manual_seed(0)
    model = Codec(CodecConfig()).eval() if args.random else load_codec(args.codec)
    label = (
        "random-init CodecConfig() (codes unlike a trained model's)"
        if args.random
        else (f"{getattr(model, 'checkpoint_path', args.codec)} (id {model.checkpoint_id})")
    )
    tracks = (
        [Path(t) if Path(t).exists() else common.MUSIC / t for t in args.tracks]
        if args.tracks
        else common.held_out_tracks()
    )
    info = common.machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vqaudio-entropy-") as tmp_name:
        tmp = Path(tmp_name)
        clips = common.music_clips(tracks, args.seconds, args.clips_per_track, RATE)
        paths = []
        for k, (_, wav) in enumerate(clips):
            paths.append(tmp / f"{k}.wav")
            audio.write(paths[-1], wav, RATE)
        seconds = sum(wav.shape[-1] for _, wav in clips) / RATE
        for kbps in args.kbps:
            print(f"... {kbps:g} kbps", file=sys.stderr)
            row = {"target_kbps": kbps, "nominal_kbps": None}
            for coded, key in ((False, "fixed_kbps"), (True, "entropy_kbps")):
                bits = 0
                for k, path in enumerate(paths):
                    out = tmp / f"{k}-{coded}.vqa"
                    header = compress(model, path, out, bitrate=kbps * 1000, entropy_coded=coded)
                    bits += out.stat().st_size * 8
                row[key] = bits / seconds / 1000
            levels = max(header.levels)
            row["levels"] = levels
            row["nominal_kbps"] = model.config.bitrates[levels - 1] / 1000
            row["saving_percent"] = 100 * (1 - row["entropy_kbps"] / row["fixed_kbps"])
            rows.append(row)
    common.print_header(f"entropy coding: real bitrates (vqaudio: {label})", info)
    print(
        f"clips: {len(clips)} x {args.seconds:g} s, 24 kHz mono, from "
        + ", ".join(t.name for t in tracks)
    )
    common.print_table(
        rows,
        [
            ("target_kbps", "target kbps", "{:g}"),
            ("levels", "levels", ""),
            ("nominal_kbps", "codes kbps", "{:.3f}"),
            ("fixed_kbps", "fixed-width file kbps", "{:.3f}"),
            ("entropy_kbps", "entropy-coded file kbps", "{:.3f}"),
            ("saving_percent", "saving %", "{:.1f}"),
        ],
    )
    path = common.save(
        "entropy",
        {
            "machine": info,
            "vqaudio_model": label,
            "command": common.command(),
            "clips": [c[0] for c in clips],
            "rows": rows,
        },
    )
    common.print_footer(path)


if __name__ == "__main__":
    main()
