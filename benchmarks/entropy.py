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
    common.add_codec_arguments(
        parser, "random-init CodecConfig(): its codes are not those of a trained model"
    )
    common.add_clip_arguments(parser)
    parser.add_argument("--kbps", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    args = parser.parse_args()

    from vqaudio import audio
    from vqaudio.compress import compress

    model, label = common.codec_from_args(args, "codes unlike a trained model's")
    tracks = common.find_tracks(args.tracks)
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
    common.report(
        "entropy",
        f"entropy coding: real bitrates (vqaudio: {label})",
        info,
        rows,
        [
            ("target_kbps", "target kbps", "{:g}"),
            ("levels", "levels", ""),
            ("nominal_kbps", "codes kbps", "{:.3f}"),
            ("fixed_kbps", "fixed-width file kbps", "{:.3f}"),
            ("entropy_kbps", "entropy-coded file kbps", "{:.3f}"),
            ("saving_percent", "saving %", "{:.1f}"),
        ],
        model=label,
        notes=(common.describe_clips(clips, args.seconds, RATE, tracks),),
        clips=[c[0] for c in clips],
    )


if __name__ == "__main__":
    main()
