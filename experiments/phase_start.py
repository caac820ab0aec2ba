"""Griffin-Lim's start: zero phase against the phase locked to the spectral peaks.

The codec's predicted magnitudes of held-out music clips, at 5 / 8 / 14 levels (1.5 / 3 / 6 kbps
of codes, no band levels, the decoder's calibrated gain), are rendered by the same decoder with
each (start, iterations) and scored against the input: chroma correlation, mel distance, the
inconsistency (spectral convergence between the rendered audio's magnitude and the predicted
one: 0 when Griffin-Lim found a signal with exactly that magnitude), output level, ViSQOL (with
``--visqol``) and the rendering's wall time at one thread.

    python experiments/phase_start.py --clips-per-track 4 --visqol

Writes benchmarks/results/phase_start.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1] / "benchmarks"  # common.py, generation_music.py
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from vqaudio import load_codec  # noqa: E402
from vqaudio.eval import metrics  # noqa: E402

WAYS = (("zero", 32), ("zero", 16), ("locked", 16), ("locked", 32), ("locked", 8))


def stft_magnitude(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft)
    return torch.stft(wav, n_fft, hop, window=window, return_complex=True).abs()


def score(codec, wav: np.ndarray, levels: int, ways, with_visqol: bool) -> list[dict]:
    decoder, rate = codec.decoder, codec.config.sample_rate
    rows = []
    with torch.inference_mode():
        codes = codec.encode(torch.from_numpy(wav)[None]).keep(levels)
        log_mag = decoder.log_magnitude(codec.quantizer.decode(codes))
        magnitude = decoder.magnitude(log_mag, levels)  # what render renders
        for init, iters in ways:
            decoder.phase_init = init
            start = time.perf_counter()
            out = decoder.render(log_mag, levels, iters=iters)
            seconds = time.perf_counter() - start
            out = out.clamp(-1.0, 1.0)[0, :, : wav.shape[-1]].numpy()
            again = stft_magnitude(torch.from_numpy(out[0]), decoder.n_fft, decoder.hop)
            given = magnitude[0, :, : again.shape[-1]]
            row = {
                "start": init,
                "iters": iters,
                "levels": levels,
                "chroma": metrics.chroma_correlation(wav, out, rate),
                "mel": metrics.mel_distance(wav, out, rate),
                "inconsistency": float((again - given).norm() / given.norm()),
                "level_db": metrics.level_difference(wav, out),
                "render_s": seconds,
            }
            if with_visqol:
                row["visqol"] = metrics.visqol(wav, out, rate)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codec", default=None, help="codec file (default: the shipped one)")
    parser.add_argument("--levels", type=int, nargs="+", default=[5, 8, 14])
    parser.add_argument("--visqol", action="store_true", help="add ViSQOL (~3 s a clip and way)")
    parser.add_argument("--name", default="phase_start")
    common.add_clip_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = common.machine()
    codec = load_codec(args.codec)
    tracks = common.find_tracks(args.tracks)
    clips = common.music_clips(tracks, args.seconds, args.clips_per_track, codec.sample_rate)
    per_clip = []
    for name, wav in clips:
        for levels in args.levels:
            for row in score(codec, wav, levels, WAYS, args.visqol):
                per_clip.append({"clip": name, **row})
        print(f"{name}: done", flush=True)
    rows = common.group_means(per_clip, ("levels", "start", "iters"))
    columns = [
        ("levels", "levels", "{}"),
        ("start", "start", ""),
        ("iters", "iterations", "{}"),
        ("chroma", "chroma", "{:.3f}"),
        ("mel", "mel", "{:.3f}"),
        ("inconsistency", "inconsistency", "{:.3f}"),
        ("level_db", "level dB", "{:+.2f}"),
        ("render_s", "render s (10 s, 1 thread)", "{:.3f}"),
    ]
    if args.visqol:
        columns.append(("visqol", "ViSQOL", "{:.3f}"))
    common.report(
        args.name,
        "Griffin-Lim from zero phase and from the locked phase start",
        info,
        rows,
        columns,
        notes=(common.describe_clips(clips, args.seconds, codec.sample_rate, tracks),),
        per_clip=per_clip,
    )


if __name__ == "__main__":
    main()
