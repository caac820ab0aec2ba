"""Held-out bits per token of priors, beside the wall time each one trained.

Scores each prior on the codes of the held-out tracks (benchmarks/common.py HELD_OUT, the same
as generation_music.py: consecutive windows of the prior's own context), and, for each run
folder given, the training wall time from its metrics.jsonl (first to last train step, plus one
logging interval, so code extraction and start-up are not counted).

    python experiments/prior_bits.py --priors runs/eqwall-flat/model.safetensors \
        runs/eqwall-frames-b/model.safetensors --labels flat frames \
        --runs runs/eqwall-flat "runs/eqwall-frames-a runs/eqwall-frames-b"

A ``--runs`` entry may name several run folders (quoted, space-separated): a curriculum's stages,
whose wall times add up; "-" for a prior with no run folder at hand.
Writes benchmarks/results/prior_bits.json (``--name``: another name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1] / "benchmarks"  # common.py, generation_music.py
sys.path.insert(0, str(HERE))
import common  # noqa: E402
from generation_music import keep_levels, level_bits  # noqa: E402

from vqaudio import load_codec, load_prior  # noqa: E402
from vqaudio.train.data import find_audio, split_files  # noqa: E402
from vqaudio.train.prior_task import cached_tokens  # noqa: E402


def train_seconds(run: Path) -> tuple[float, int]:
    """(wall seconds of training, steps) of a run folder, from its metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("kind") == "train"]
    if len(train) < 2:
        return float("nan"), 0
    interval = train[1]["time"] - train[0]["time"]
    return train[-1]["time"] - train[0]["time"] + interval, int(train[-1]["step"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--priors", nargs="+", required=True)
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--runs", nargs="+", help="run folder(s) per prior, for the wall time")
    parser.add_argument("--codec", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="prior_bits", help="results file name")
    parser.add_argument("--codes-cache", type=Path, default=Path("runs/music-24k-prior/codes"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec)
    _, held = split_files(find_audio(common.MUSIC), common.HELD_OUT)
    tracks = [t for t in held if t.stem != "silence"]
    levels = max(load_prior(p).config.num_levels for p in args.priors)  # each scores its own
    with torch.inference_mode():
        tokens = [cached_tokens(codec, t, levels, args.codes_cache) for t in tracks]
    labels = args.labels or args.priors
    rows = []
    for i, (label, path) in enumerate(zip(labels, args.priors, strict=True)):
        prior = load_prior(path)
        strides = codec.config.level_strides[:levels]
        own = [keep_levels(t, strides, prior.config.num_levels) for t in tokens]
        bits, per_level = zip(*(level_bits(prior, t) for t in own))
        weights = np.array([len(t) for t in own], dtype=float)
        row = {
            "label": label,
            "prior": path,
            "context_s": prior.config.context_blocks
            * codec.config.block_samples
            / codec.config.sample_rate,
            "bits_per_token": float(np.average(bits, weights=weights)),
            "bits_per_level": np.average(np.array(per_level), axis=0, weights=weights).tolist(),
        }
        if args.runs and args.runs[i] != "-":
            spent = [train_seconds(Path(r)) for r in args.runs[i].split()]
            row["train_s"] = sum(s for s, _ in spent)
            row["steps"] = [n for _, n in spent]
        rows.append(row)
        per = " ".join(f"{b:.2f}" for b in row["bits_per_level"])
        wall = (
            f", trained {row['train_s'] / 60:.1f} min ({row['steps']} steps)"
            if "steps" in row
            else ""
        )
        print(f"{label}: {row['bits_per_token']:.3f} bits/token (levels {per}){wall}")
    common.save(args.name, {"machine": common.machine(), "command": common.command(), "rows": rows})


if __name__ == "__main__":
    main()
