"""Is generated music plausible? Level, clipping and per-level code usage of generated audio,
next to the same statistics of held-out real music's codes.

    python experiments/generation_quality.py                 # shipped prior + codec, 30 s, seed 0
    python experiments/generation_quality.py --prior P --codec C --seconds 30 --seed 1

Prints a table and writes experiments/results/generation_quality.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vqaudio import audio, load_codec, load_prior
from vqaudio.generation import generate
from vqaudio.prior.sampling import Sampling

MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
HELD_OUT = (
    "transience",
    "traveling_minstrels",
    "underground",
)  # the codec recipe's held-out tracks


def code_stats(codes, codebook_size: int) -> list[dict]:
    """Per level: distinct codes used (fraction of the codebook) and perplexity of the histogram."""
    out = []
    for level in codes.levels:
        hist = np.bincount(level.flatten().numpy(), minlength=codebook_size).astype(float)
        p = hist / hist.sum()
        nz = p[p > 0]
        out.append(
            {
                "used": float((hist > 0).mean()),
                "perplexity": float(np.exp(-(nz * np.log(nz)).sum())),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default=None)
    parser.add_argument("--codec", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    prior, codec = load_prior(args.prior), load_codec(args.codec)
    levels = prior.config.num_levels
    start = time.perf_counter()
    wav = generate(prior, codec, args.seconds, seed=args.seed, sampling=Sampling())[0]  # (C, T)
    elapsed = time.perf_counter() - start
    generated_codes = codec.encode(wav[None], codec.config.bitrates[levels - 1])
    real = []
    for name in HELD_OUT:
        clip, _ = audio.read(MUSIC / f"{name}.ogg", codec.sample_rate, 1)
        real.append(torch.from_numpy(clip[:, : int(args.seconds * codec.sample_rate)]))
    real_codes = [codec.encode(r[None], codec.config.bitrates[levels - 1]) for r in real]
    size = codec.config.codebook_size
    gen_stats = code_stats(generated_codes, size)
    real_stats = [code_stats(c, size) for c in real_codes]
    rms = float(wav.pow(2).mean().sqrt())
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "command": "python " + " ".join(sys.argv),
        "seconds": args.seconds,
        "seed": args.seed,
        "generate_wall_s": elapsed,
        "rms_dbfs": 20 * np.log10(max(rms, 1e-9)),
        "peak": float(wav.abs().max()),
        "clipped_fraction": float((wav.abs() >= 0.999).float().mean()),
        "silent_fraction_50ms": float(
            (wav[0, : wav.shape[1] // 1200 * 1200].view(-1, 1200).pow(2).mean(1).sqrt() < 1e-3)
            .float()
            .mean()
        ),
        "generated_levels": gen_stats,
        "real_levels_mean": [
            {k: float(np.mean([s[i][k] for s in real_stats])) for k in ("used", "perplexity")}
            for i in range(levels)
        ],
    }
    print(
        f"# generation quality ({result['date']}, {result['machine']}, torch {torch.__version__})"
    )
    print(
        f"{args.seconds:g} s generated in {elapsed:.1f} s wall; RMS {result['rms_dbfs']:.1f} dBFS, "
        f"peak {result['peak']:.3f}, clipped {100 * result['clipped_fraction']:.3f} %, "
        f"silent 50 ms frames {100 * result['silent_fraction_50ms']:.1f} %"
    )
    print("| level | generated: codes used, perplexity | real music: codes used, perplexity |")
    print("|---|---|---|")
    for i, (g, r) in enumerate(zip(gen_stats, result["real_levels_mean"])):
        generated = f"{100 * g['used']:.1f} %, {g['perplexity']:.0f}"
        print(f"| {i} | {generated} | {100 * r['used']:.1f} %, {r['perplexity']:.0f} |")
    print(f"\ncommand: {result['command']}")
    out = Path(__file__).parent / "results" / "generation_quality.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
