"""Probe: does sharpening the predicted spectrum along frequency restore harmonics?

The spectral decoder is trained by L1 on log-magnitudes, so where it is unsure of a harmonic's
bin it predicts the median: peaks come out low and the valleys between them high (smeared). This
probe scales each frame's log-magnitude deviations from its own local mean over ``width`` bins by
``factor`` (1: the shipped decode), then lets the file's band levels restore the power, and
renders with the shipped Griffin-Lim: the real `compress` / `decompress` path, one thread.

    python experiments/contrast_probe.py --split train --factors 1 1.2 1.4 1.6 --widths 9 17 33
    python experiments/contrast_probe.py --split held-out --factors 1 1.3 --widths 17

``--split train`` picks clips from the training tracks (to choose a setting), ``held-out`` the 6
held-out clips of benchmarks/quality.py (to report it). Writes
benchmarks/results/contrast_probe_SPLIT.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402

from vqaudio import load_codec  # noqa: E402
from vqaudio.eval import metrics  # noqa: E402
from vqaudio.vqa.compress import compress, decompress  # noqa: E402


def sharpen_log_magnitude(log_mag: Tensor, factor: float, width: int) -> Tensor:
    """Scale each frame's log-magnitude deviations from its own mean over ``width`` bins (odd,
    reflected at the edges) by ``factor``: above 1 it deepens the valleys between harmonics and
    raises their peaks, which an L1-trained decoder smears (it predicts each bin's median).
    Frame by frame, so a chunked decode still equals one pass. ``log_mag`` (..., bins, frames)."""
    if factor == 1.0 or width <= 1:
        return log_mag
    shape = log_mag.shape
    rows = log_mag.transpose(-1, -2).reshape(-1, 1, shape[-2])  # (N * frames, 1, bins)
    padded = F.pad(rows, (width // 2, width // 2), mode="reflect")
    mean = F.avg_pool1d(padded, width, stride=1).reshape(*shape[:-2], shape[-1], shape[-2])
    mean = mean.transpose(-1, -2)
    return mean + factor * (log_mag - mean)


def training_clips(sample_rate: int, count: int) -> list[tuple[str, np.ndarray]]:
    from vqaudio.train.data import find_audio, split_files

    train = split_files(find_audio(common.MUSIC), common.HELD_OUT)[0]
    picks = [train[i] for i in np.linspace(0, len(train) - 1, count).astype(int)]
    return common.music_clips(picks, 10.0, 1, sample_rate)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "held-out"), default="train")
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.2, 1.4, 1.6])
    parser.add_argument("--widths", type=int, nargs="+", default=[17])
    parser.add_argument("--kbps", type=float, nargs="+", default=[1.5, 3.0, 6.0])
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
    decoder = codec.decoder
    plain = decoder.log_magnitude
    settings = [(1.0, 0)] + [(f, w) for w in args.widths for f in args.factors if f != 1.0]
    results, started = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, wav in clips:
            source = tmp / "in.wav"
            sf.write(source, wav.T, rate, subtype="FLOAT")
            for kbps in args.kbps:
                encoded = tmp / "x.vqa"
                compress(codec, source, encoded, bitrate=kbps * 1000)
                for factor, width in settings:

                    def sharpened(z_q, factor=factor, width=width):
                        return sharpen_log_magnitude(plain(z_q), factor, width)

                    decoder.log_magnitude = sharpened if factor != 1.0 else plain
                    out = tmp / "y.wav"
                    decompress(encoded, out, codec=codec)
                    decoded, _ = sf.read(out, dtype="float32", always_2d=True)
                    score = metrics.score(wav, decoded.T, rate, with_visqol=args.visqol)
                    row = {"clip": name, "kbps": kbps, "factor": factor, "width": width}
                    row.update({k: score[k] for k in score if isinstance(score[k], float)})
                    results.append(row)
                    print(
                        f"{name:24s} {kbps:4.1f} x{factor:.2f} w{width:2d} "
                        f"mel {row['mel_distance']:.3f} chroma {row['chroma_correlation']:.3f} "
                        f"level {row['level_difference_db']:+.2f}"
                        + (f" visqol {row['visqol']:.2f}" if args.visqol else ""),
                        flush=True,
                    )
    decoder.log_magnitude = plain
    summary = common.group_means(results, ("kbps", "factor", "width"))
    columns = [
        ("kbps", "kbps", "{:.1f}"),
        ("factor", "factor", "{:.2f}"),
        ("width", "width", "{}"),
        ("mel_distance", "mel", "{:.4f}"),
        ("chroma_correlation", "chroma", "{:.4f}"),
        ("level_difference_db", "level dB", "{:+.2f}"),
    ] + ([("visqol", "ViSQOL", "{:.3f}")] if args.visqol else [])
    info = common.machine()
    common.print_header(f"contrast probe, {args.split}, {len(clips)} clips of 10 s", info)
    common.print_table(summary, columns)
    path = common.save(
        f"contrast_probe_{args.split.replace('-', '_')}",
        {
            "machine": info,
            "command": common.command(),
            "codec": args.codec,
            "clips": [c[0] for c in clips],
            "seconds": round(time.time() - started, 1),
            "summary": summary,
            "rows": results,
        },
    )
    common.print_footer(path)


if __name__ == "__main__":
    main()
