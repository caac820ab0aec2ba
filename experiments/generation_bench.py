"""Generation speed: tokens/s and wall time for N seconds of audio, per prior kind, cache on/off.

Random weights in the DEFAULT configurations (PriorConfig(kind=...)), decoded with the shipped
codec (its configuration with random weights if none ships): speed does not depend on what the
weights learned. Cached runs generate the whole length. Uncached
runs recompute the context for every token, so they are timed on ``--uncached-tokens`` tokens
that follow a random prompt of 3/4 of a context (the average window of the sliding scheme) and
extrapolated to the full length (marked "extrapolated"). Decoding (codes -> wav with the codec)
is timed once and added to every total.

Times are wall clock and process CPU time: on a machine shared with other jobs, CPU time at one
thread is the better estimate of what an idle machine would give.

    python experiments/generation_bench.py                       # 30 s, 2 threads, every kind
    python experiments/generation_bench.py --threads 1 2 --sizes 256x6 192x4 128x6 --max-tokens 900
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parents[1] / "benchmarks"  # common.py, generation_music.py
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from vqaudio.codec import Codec  # noqa: E402
from vqaudio.codec.io import load_codec  # noqa: E402
from vqaudio.codes import Codes, token_levels  # noqa: E402
from vqaudio.config import CodecConfig, PriorConfig  # noqa: E402
from vqaudio.errors import CheckpointError  # noqa: E402
from vqaudio.generation import decode_codes, sample_tokens  # noqa: E402
from vqaudio.prior import build_prior  # noqa: E402


def random_tokens(config: PriorConfig, num_tokens: int) -> torch.Tensor:
    levels = token_levels(config.level_strides).repeat(num_tokens // config.tokens_per_block)
    return (torch.randint(0, config.codebook_size, levels.shape) + levels * config.codebook_size)[
        None
    ]


def time_tokens(prior, num_tokens: int, use_cache: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for num_tokens new tokens."""
    config = prior.config
    if use_cache:
        prompt = torch.zeros(1, 0, dtype=torch.long)
        sample_tokens(prior, 2 * config.tokens_per_block, prompt, num_threads=None)  # warm-up
    else:
        blocks = 3 * config.context_blocks // 4
        prompt = random_tokens(config, blocks * config.tokens_per_block)
    began, cpu = time.perf_counter(), time.process_time()
    sample_tokens(prior, num_tokens, prompt, use_cache=use_cache, num_threads=None)
    return time.perf_counter() - began, time.process_time() - cpu


def frame_recipe() -> dict:
    """The prior section of recipes/music-24k-prior.yaml (the shipped frame prior's sizes)."""
    from vqaudio.recipe import load_recipe

    prior = load_recipe(HERE.parent / "recipes" / "music-24k-prior.yaml").prior
    keep = ("dim", "num_layers", "num_heads", "depth_dim", "depth_layers", "depth_heads")
    return {k: getattr(prior, k) for k in (*keep, "frame_embedding_dim", "context_blocks")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--kinds", nargs="+", default=["frames", "transformer", "wavenet"])
    parser.add_argument("--sizes", nargs="+", default=["256x6"], help="transformer DIMxLAYERS")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="time at most this many cached tokens and extrapolate",
    )
    parser.add_argument("--uncached-tokens", type=int, default=60)
    parser.add_argument("--no-uncached", action="store_true")
    parser.add_argument("--name", default="generation_speed")
    args = parser.parse_args()

    torch.manual_seed(0)
    try:
        codec = load_codec()  # the shipped codec's decoder is what generate runs
    except CheckpointError:
        codec = Codec(CodecConfig()).eval()
    block_rate = codec.config.sample_rate / codec.config.block_samples
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        num_blocks = math.ceil(args.seconds * block_rate)
        config = PriorConfig()
        tokens = random_tokens(config, num_blocks * config.tokens_per_block)
        codes = Codes.from_tokens(tokens, config.level_strides, config.codebook_size)
        began = time.perf_counter()
        with torch.inference_mode():
            decode_codes(codec, codes)
        decode_s = time.perf_counter() - began
        print(f"  decode {args.seconds:g} s: {decode_s:.1f} s", file=sys.stderr, flush=True)
        for kind in args.kinds:
            sizes = [tuple(map(int, s.split("x"))) for s in args.sizes]
            sizes = sizes if kind == "transformer" else [(256, 0)]
            for dim, layers in sizes:
                overrides = {"dim": dim, "num_layers": layers} if kind == "transformer" else {}
                if kind == "frames":  # the shipped recipe's sizes
                    overrides = frame_recipe()
                    dim, layers = overrides["dim"], overrides["num_layers"]
                prior = build_prior(PriorConfig(kind=kind, **overrides)).eval()
                total_tokens = num_blocks * prior.config.tokens_per_block
                for use_cache in (True, False) if not args.no_uncached else (True,):
                    limit = args.max_tokens if use_cache else args.uncached_tokens
                    count = min(limit or total_tokens, total_tokens)
                    wall, cpu = time_tokens(prior, count, use_cache)
                    rate, cpu_rate = count / wall, count / cpu
                    tokens_s = total_tokens / rate
                    rows.append(
                        {
                            "kind": kind,
                            "dim": dim,
                            "layers": layers if layers else None,
                            "params_M": sum(p.numel() for p in prior.parameters()) / 1e6,
                            "cache": use_cache,
                            "threads": threads,
                            "tokens_per_s": rate,
                            "cpu_tokens_per_s": cpu_rate,
                            "tokens": total_tokens,
                            "timed_tokens": count,
                            "token_s": tokens_s,
                            "decode_s": decode_s,
                            "total_s": tokens_s + decode_s,
                            "extrapolated": count < total_tokens,
                        }
                    )
                    print(f"  {rows[-1]}", file=sys.stderr, flush=True)

    info = common.machine()
    common.report(
        args.name,
        f"vqaudio generation speed, {args.seconds:g} s of audio, batch 1",
        info,
        rows,
        [
            ("kind", "prior", ""),
            ("dim", "dim", ""),
            ("layers", "layers", ""),
            ("params_M", "params (M)", "{:.1f}"),
            ("cache", "cache", ""),
            ("threads", "threads", ""),
            ("tokens_per_s", "tokens/s", "{:.0f}"),
            ("cpu_tokens_per_s", "tokens/CPU-s", "{:.0f}"),
            ("token_s", "sampling (s)", "{:.1f}"),
            ("decode_s", "decode (s)", "{:.1f}"),
            ("total_s", f"{args.seconds:g} s audio (s)", "{:.1f}"),
            ("extrapolated", "extrapolated", ""),
        ],
        seconds=args.seconds,
    )


if __name__ == "__main__":
    main()
