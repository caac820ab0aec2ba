"""Benchmark: how finely should band levels describe the spectrum at each bitrate?

Band levels cost bits that could go to another code level; `compress` charges them to the
bitrate, so a finer description can cost a level. This runs the real `compress` / `decompress`
with each resolution (band edges, span length) at each bitrate and reports the levels kept, the
real bitrate and the scores. One thread.

    python experiments/band_resolution.py --split train --clips 4
    python experiments/band_resolution.py --split held-out --visqol

Writes benchmarks/results/band_resolution_SPLIT.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402
from contrast_probe import training_clips  # noqa: E402

from vqaudio import load_codec  # noqa: E402
from vqaudio.codec import band_levels  # noqa: E402
from vqaudio.eval import metrics  # noqa: E402
from vqaudio.vqa.compress import compress, decompress  # noqa: E402

RESOLUTIONS = {name: band_levels.RESOLUTIONS[name] for name in band_levels.RESOLUTIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "held-out"), default="train")
    parser.add_argument("--kbps", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    parser.add_argument("--resolutions", nargs="+", default=list(RESOLUTIONS))
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--visqol", action="store_true")
    parser.add_argument("--codec", default="vqaudio/models/codec.safetensors")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = load_codec(args.codec)
    rate = codec.config.sample_rate
    if args.split == "train":
        clips = training_clips(rate, args.clips)
    else:
        clips = common.music_clips(common.held_out_tracks(), 10.0, 2, rate)[: args.clips]
    results, started = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, wav in clips:
            source = tmp / "in.wav"
            sf.write(source, wav.T, rate, subtype="FLOAT")
            for kbps in args.kbps:
                for resolution in args.resolutions:
                    encoded, out = tmp / "x.vqa", tmp / "y.wav"
                    header = compress(
                        codec, source, encoded, bitrate=kbps * 1000, band_resolution=resolution
                    )
                    decompress(encoded, out, codec=codec)
                    decoded, _ = sf.read(out, dtype="float32", always_2d=True)
                    score = metrics.score(wav, decoded.T, rate, with_visqol=args.visqol)
                    row = {
                        "clip": name,
                        "kbps": kbps,
                        "resolution": resolution,
                        "levels": header.levels_per_channel[0],
                        "real_kbps": encoded.stat().st_size * 8 / (wav.shape[-1] / rate) / 1000,
                    }
                    row.update({k: v for k, v in score.items() if isinstance(v, float)})
                    results.append(row)
                    print(
                        f"{name:24s} {kbps:4.1f} {resolution:8s} L{row['levels']:2d} "
                        f"{row['real_kbps']:.2f} kbps mel {row['mel_distance']:.3f} "
                        f"chroma {row['chroma_correlation']:.3f} "
                        f"level {row['level_difference_db']:+.2f}"
                        + (f" visqol {row['visqol']:.2f}" if args.visqol else ""),
                        flush=True,
                    )
    summary = common.group_means(results, ("kbps", "resolution"))
    columns = [
        ("kbps", "kbps", "{:.1f}"),
        ("resolution", "bands", "{}"),
        ("levels", "levels", "{:.1f}"),
        ("real_kbps", "real kbps", "{:.2f}"),
        ("mel_distance", "mel", "{:.4f}"),
        ("chroma_correlation", "chroma", "{:.4f}"),
        ("level_difference_db", "level dB", "{:+.2f}"),
    ] + ([("visqol", "ViSQOL", "{:.3f}")] if args.visqol else [])
    info = common.machine()
    common.print_header(f"band-level resolution, {args.split}, {len(clips)} clips of 10 s", info)
    common.print_table(summary, columns)
    path = common.save(
        f"band_resolution_{args.split.replace('-', '_')}",
        {
            "machine": info,
            "command": common.command(),
            "codec": args.codec,
            "resolutions": {k: RESOLUTIONS[k] for k in args.resolutions},
            "clips": [c[0] for c in clips],
            "seconds": round(time.time() - started, 1),
            "summary": summary,
            "rows": results,
        },
    )
    common.print_footer(path)


if __name__ == "__main__":
    main()
