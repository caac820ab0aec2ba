"""What the fine levels and Griffin-Lim's iterations do to generated music.

Samples one batch of pieces with the prior (seeds seed .. seed + num - 1, top-p 0.98 at every
level, `generate`'s defaults until 2026-12-04) and decodes the same codes several ways: with
their first K levels (the levels of a prior's frame past K are dropped, the decoder renders from
the coarser ones with its gain for K levels) and with N Griffin-Lim iterations. Each row gives
the chroma and level figures of benchmarks/generation_music.py for one way, so a row that
matches the first says the dropped levels or iterations add nothing a listener's chroma can see,
and what decoding them costs.

    python experiments/generated_levels.py --levels 5 4 3 2 --iters 32 16 8

Writes benchmarks/results/generated_levels.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parents[1] / "benchmarks"  # common.py, generation_music.py
sys.path.insert(0, str(HERE))
import common  # noqa: E402
from generation_music import piece_metrics, summarise  # noqa: E402

from vqaudio import load_codec, load_prior  # noqa: E402
from vqaudio.codes import Codes  # noqa: E402
from vqaudio.generation import decode_codes, sample_tokens  # noqa: E402
from vqaudio.prior.sampling import Sampling  # noqa: E402

FIGURES = ("flux", "chroma_peak", "self_similarity", "tempo_spread", "rms_db")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default=None)
    parser.add_argument("--codec", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--num", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=0.98)
    parser.add_argument("--levels", type=int, nargs="+", default=[5, 4, 3, 2])
    parser.add_argument("--iters", type=int, nargs="+", default=[32, 16, 8])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec, prior = load_codec(args.codec), load_prior(args.prior)
    config, rate = prior.config, codec.config.sample_rate
    samples = round(args.seconds * rate)
    blocks = -(-samples // codec.config.block_samples)
    start = torch.zeros(args.num, 0, dtype=torch.long)
    count = blocks * config.tokens_per_block
    tokens = sample_tokens(prior, count, start, Sampling(top_p=args.top_p), args.seed)
    codes = Codes.from_tokens(tokens, config.level_strides, config.codebook_size, samples)
    level0 = codes.levels[0].numpy()
    ways = [(k, args.iters[0]) for k in args.levels] + [(args.levels[0], n) for n in args.iters[1:]]
    rows = []
    for levels, iters in ways:
        began = time.perf_counter()
        with torch.inference_mode():
            wav = decode_codes(codec, codes.keep(levels), griffin_lim_iters=iters)[:, 0].numpy()
        took = time.perf_counter() - began
        pieces = [piece_metrics(w, c, rate, args.seconds) for w, c in zip(wav, level0)]
        row = {"levels": levels, "griffin_lim_iters": iters, "decode_s": took}
        row.update(summarise(pieces))
        rows.append(row)
        figures = ", ".join(f"{k} {row[k]:.3f}" for k in FIGURES)
        print(f"{levels} levels, {iters} iterations: {figures}; decode {took:.2f} s", flush=True)
    common.save(
        "generated_levels",
        {
            "machine": common.machine(),
            "command": common.command(),
            "pieces": f"{args.num} x {args.seconds:g} s, seeds {args.seed}.., top-p {args.top_p}",
            "rows": rows,
        },
    )
    print(f"reproduce: {common.command()}")


if __name__ == "__main__":
    main()
