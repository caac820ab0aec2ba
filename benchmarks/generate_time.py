"""Wall time of `vqaudio generate --seconds 30`, start-up included: the C sampling loop against
PyTorch's (VQAUDIO_FAST_DEPTH=0), run alternately so both see the same machine, plus one
in-process split of a run into import, model loading, sampling and decoding.

    python benchmarks/generate_time.py                 # 3 runs of each, seed 1, 30 s
    python benchmarks/generate_time.py --runs 5 --seconds 10

The script says whether each pair of runs wrote the same audio: the loops draw by the same rule,
but round float32 sums differently, so a 30 s piece can part ways where a draw falls within 1e-5
of a probability boundary (the shipped prior, seed 0, 10 s: at token 680 of 1500). Results go to
benchmarks/results/generate_time.json.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

SPLIT = r"""
import time, sys
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
from vqaudio.codec.io import load_codec
from vqaudio.codes import Codes
from vqaudio.prior import load_prior
from vqaudio.generation import decode_codes, sample_tokens
from vqaudio.prior.sampling import SHIPPED
import vqaudio_cli.generate
t2 = time.perf_counter()
prior, codec = load_prior(None, "cpu"), load_codec(None, "cpu")
t3 = time.perf_counter()
seconds = float(sys.argv[1])
blocks = -(-round(seconds * codec.config.sample_rate) // codec.config.block_samples)
tokens = sample_tokens(prior, blocks * prior.config.tokens_per_block,
                       torch.zeros(1, 0, dtype=torch.long), SHIPPED, seed=1)
t4 = time.perf_counter()
codes = Codes.from_tokens(tokens, prior.config.level_strides, prior.config.codebook_size)
with torch.inference_mode():
    decode_codes(codec, codes, griffin_lim_iters=16)
t5 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t3 - t2:.3f} {t4 - t3:.3f} {t5 - t4:.3f}")
"""


def _run(seconds: float, fast: bool, out: Path, seed: int) -> float:
    env = dict(os.environ, VQAUDIO_FAST_DEPTH="1" if fast else "0")
    command = ["vqaudio", "generate", "--seconds", f"{seconds:g}", "--seed", str(seed), "-q"]
    start = time.perf_counter()
    subprocess.run([*command, "-f", "-o", str(out)], env=env, check=True)
    return time.perf_counter() - start


def _split(seconds: float, fast: bool) -> dict[str, float]:
    env = dict(os.environ, VQAUDIO_FAST_DEPTH="1" if fast else "0")
    done = subprocess.run(
        [sys.executable, "-c", SPLIT, f"{seconds:g}"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    parts = [float(v) for v in done.stdout.split()]
    return dict(zip(("import_torch", "import_vqaudio", "load", "sample", "decode"), parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="generate_time")
    args = parser.parse_args()
    from vqaudio.prior.frame_loop import library

    if library() is None:
        sys.exit("error: the C sampling loop is not built (pip install -e . with a C compiler)")
    times: dict[str, list[float]] = {"c": [], "pytorch": []}
    same = True
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.runs):
            outs = {}
            for label, fast in (("c", True), ("pytorch", False)):
                outs[label] = Path(folder) / f"{label}.wav"
                times[label].append(_run(args.seconds, fast, outs[label], args.seed))
                print(f"{label:8s} {times[label][-1]:.2f} s wall", flush=True)
            same &= filecmp.cmp(outs["c"], outs["pytorch"], shallow=False)
    split = {label: _split(args.seconds, fast) for label, fast in (("c", True), ("pytorch", False))}
    result = {
        "command": common.command(),
        "machine": common.machine(),
        "seconds": args.seconds,
        "wall_s": times,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "same_audio": same,
        "split_s": split,
    }
    print(f"\n`{result['command']}` on {result['machine']['cpu']}")
    print(f"vqaudio generate --seconds {args.seconds:g}, wall s (alternating runs):")
    for label in times:
        runs = " / ".join(f"{t:.2f}" for t in times[label])
        print(f"  {label:8s} {runs}  (median {result['median_s'][label]:.2f})")
    print(f"  same audio from both loops: {same}")
    print("one process: import torch / our imports / load / sample / decode (s)")
    for label, parts in split.items():
        print(f"  {label:8s} " + " / ".join(f"{v:.2f}" for v in parts.values()))
    print(f"results: {common.save(args.name, result)}")


if __name__ == "__main__":
    main()
