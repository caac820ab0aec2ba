"""Real bitrate of .vqa files with and without entropy coding, per operating point, on real music.

Two tables. (1) Same codes, two codings: for each operating point (levels kept) the held-out
clips' codes are stored fixed-width (levels * log2(codebook_size) bits per code) and with the
lossless adaptive range coder of the .vqa format; the difference is the free saving. (2) Whole
files from `vqaudio.compress` at each target bitrate, with and without entropy coding: with it,
the saving buys extra levels (the file keeps the most levels whose coded size fits), so compare
the levels column. Format speed and memory on long files: benchmarks/format_bench.py.

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

    import torch

    from vqaudio import audio, entropy
    from vqaudio.compress import compress

    model, label = common.codec_from_args(args, "codes unlike a trained model's")
    tracks = common.find_tracks(args.tracks)
    info = common.machine()
    config = model.config
    rows, files = [], []
    with tempfile.TemporaryDirectory(prefix="vqaudio-entropy-") as tmp_name:
        tmp = Path(tmp_name)
        clips = common.music_clips(tracks, args.seconds, args.clips_per_track, RATE)
        seconds = sum(wav.shape[-1] for _, wav in clips) / RATE
        codes = [model.encode(torch.from_numpy(wav)[None]) for _, wav in clips]
        for kbps in args.kbps:
            levels = config.levels_for_bitrate(kbps * 1000)
            coded = sum(
                len(
                    entropy.encode(
                        [lv[0].numpy() for lv in c.levels[:levels]], [config.codebook_size] * levels
                    )
                )
                for c in codes
            )
            fixed = config.bitrates[levels - 1] / 1000
            entropy_kbps = coded * 8 / seconds / 1000
            rows.append(
                {
                    "target_kbps": kbps,
                    "levels": levels,
                    "fixed_kbps": fixed,
                    "entropy_kbps": entropy_kbps,
                    "saving_percent": 100 * (1 - entropy_kbps / fixed),
                }
            )
        paths = []
        for k, (_, wav) in enumerate(clips):
            paths.append(tmp / f"{k}.wav")
            audio.write(paths[-1], wav, RATE)
        for kbps in args.kbps:
            print(f"... {kbps:g} kbps", file=sys.stderr)
            for coded in (False, True):
                bits, levels = 0, []
                for k, path in enumerate(paths):
                    out = tmp / f"{k}-{coded}.vqa"
                    header = compress(model, path, out, bitrate=kbps * 1000, entropy_coded=coded)
                    bits += out.stat().st_size * 8
                    levels.append(max(header.levels_per_channel))
                files.append(
                    {
                        "target_kbps": kbps,
                        "entropy": "yes" if coded else "no",
                        "levels": f"{min(levels)}-{max(levels)}",
                        "file_kbps": bits / seconds / 1000,
                    }
                )
    common.report(
        "entropy_files",
        f"entropy coding: whole .vqa files (vqaudio: {label})",
        info,
        files,
        [
            ("target_kbps", "target kbps", "{:g}"),
            ("entropy", "entropy coded", ""),
            ("levels", "levels kept", ""),
            ("file_kbps", "real file kbps", "{:.3f}"),
        ],
        model=label,
        notes=(common.describe_clips(clips, args.seconds, RATE, tracks),),
        clips=[c[0] for c in clips],
    )
    common.report(
        "entropy",
        f"entropy coding: the same codes fixed-width vs range coded (vqaudio: {label})",
        info,
        rows,
        [
            ("target_kbps", "operating point kbps", "{:g}"),
            ("levels", "levels", ""),
            ("fixed_kbps", "fixed-width kbps", "{:.3f}"),
            ("entropy_kbps", "range-coded kbps", "{:.3f}"),
            ("saving_percent", "saving %", "{:.1f}"),
        ],
        model=label,
        notes=(common.describe_clips(clips, args.seconds, RATE, tracks),),
        clips=[c[0] for c in clips],
    )


if __name__ == "__main__":
    main()
