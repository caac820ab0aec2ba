"""Real bitrate of .vqa files with and without entropy coding, per operating point, on real music.

Two tables. (1) Same codes, two codings: for each operating point (levels kept) the held-out
clips' codes are stored fixed-width (levels * log2(codebook_size) bits per code) and with the
lossless adaptive range coder of the .vqa format; the difference is the free saving. A third
table gives each level's saving on its own, for both coders. (2) Whole
files from `vqaudio.compress` at each target bitrate, with and without entropy coding: with it,
the saving buys extra levels (the file keeps the most levels whose coded size fits), so compare
the levels column. Memory on long files: benchmarks/long_file_memory.sh.

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

    from vqaudio import audio
    from vqaudio.vqa import entropy
    from vqaudio.vqa.compress import compress

    model, label = common.codec_from_args(args, "codes unlike a trained model's")
    tracks = common.find_tracks(args.tracks)
    info = common.machine()
    config = model.config
    rows, files, per_level = [], [], []
    with tempfile.TemporaryDirectory(prefix="vqaudio-entropy-") as tmp_name:
        tmp = Path(tmp_name)
        clips = common.music_clips(tracks, args.seconds, args.clips_per_track, RATE)
        seconds = sum(wav.shape[-1] for _, wav in clips) / RATE
        codes = [model.encode(torch.from_numpy(wav)[None]) for _, wav in clips]
        size = config.codebook_size
        for k in range(config.num_levels):  # each level coded on its own, after its parent
            streams = [c.levels[k][0].numpy() for c in codes]
            parents = [c.levels[k - 1][0].numpy() if k else None for c in codes]
            fixed = sum(s.size for s in streams) * config.bits_per_code
            adaptive = 8 * sum(len(entropy.encode([s], [size])) for s in streams)
            context = 8 * sum(
                len(entropy.encode_context([s], [size], [p])) for s, p in zip(streams, parents)
            )
            per_level.append(
                {
                    "level": k + 1,
                    "fixed_bps": fixed / seconds,
                    "adaptive_saving_percent": 100 * (1 - adaptive / fixed),
                    "context_saving_percent": 100 * (1 - context / fixed),
                }
            )
        for kbps in args.kbps:
            levels = config.levels_for_bitrate(kbps * 1000)
            kept = [[lv[0].numpy() for lv in c.levels[:levels]] for c in codes]
            sizes = [config.codebook_size] * levels
            old_coded = sum(len(entropy.encode(streams, sizes)) for streams in kept)
            coded = sum(
                len(entropy.encode_context(streams, sizes, [None, *streams[:-1]]))
                for streams in kept
            )
            fixed = config.bitrates[levels - 1] / 1000
            entropy_kbps = coded * 8 / seconds / 1000
            rows.append(
                {
                    "target_kbps": kbps,
                    "levels": levels,
                    "fixed_kbps": fixed,
                    "adaptive_kbps": old_coded * 8 / seconds / 1000,
                    "adaptive_saving_percent": 100 * (1 - old_coded * 8 / seconds / 1000 / fixed),
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
    note = common.describe_clips(clips, args.seconds, RATE, tracks)
    _report_levels(per_level, info, label, note, [c[0] for c in clips])
    common.report(
        "entropy",
        f"entropy coding: the same codes fixed-width vs range coded (vqaudio: {label})",
        info,
        rows,
        [
            ("target_kbps", "operating point kbps", "{:g}"),
            ("levels", "levels", ""),
            ("fixed_kbps", "fixed-width kbps", "{:.3f}"),
            ("adaptive_kbps", "adaptive-range kbps", "{:.3f}"),
            ("adaptive_saving_percent", "saving %", "{:.1f}"),
            ("entropy_kbps", "context-range kbps", "{:.3f}"),
            ("saving_percent", "saving %", "{:.1f}"),
        ],
        model=label,
        notes=(common.describe_clips(clips, args.seconds, RATE, tracks),),
        clips=[c[0] for c in clips],
    )


def _report_levels(per_level, info, label, note, clips) -> None:
    common.report(
        "entropy_levels",
        f"entropy coding per level: adaptive-range vs context-range (vqaudio: {label})",
        info,
        per_level,
        [
            ("level", "level", ""),
            ("fixed_bps", "fixed-width bits/s", "{:.0f}"),
            ("adaptive_saving_percent", "adaptive-range saving %", "{:.1f}"),
            ("context_saving_percent", "context-range saving %", "{:.1f}"),
        ],
        model=label,
        notes=(note,),
        clips=clips,
    )


if __name__ == "__main__":
    main()
