"""How much faster is the lean PyTorch frame loop than the loop before it, on one CPU thread?

The per-token PyTorch loop is what a GPU, float16/bfloat16 weights or a missing C compiler
sample with (``VQAUDIO_FAST_DEPTH=0`` forces it). Its lean form takes a level's head rows and
the copy and cache gates in one matmul and adds the copy and cache terms in one op, writes a
layer's keys and values at once into the preallocated cache through views taken once per
stream, draws the uniform numbers once per frame, and neither reads device numbers on the host
nor sends it host numbers per token. This script times both loops generating the same piece
with the shipped prior (``SHIPPED`` sampling, the controls ``generate`` plans for seed 0),
alternating child processes of the old code (``--old``, a git ref exported with ``git
archive``) and this tree, and the C loop for reference. Decoding is not timed (it is the same).

Answer (2026-12-07, 2 cores shared with a training job; CPU time of one thread, 10 s of
music): the lean loop takes 0.95 of the old loop's time (median of 5 rounds; 0.82-0.98 per
round, 0.87 in an earlier run of the same command), dispatching 102 ops per token rather than
123, and draws the same 1500 tokens. Over 60 % of what is left runs in the kernels (the
matmuls alone 42 %, torch.profiler), not in dispatch. The C loop takes 0.30; it draws its first
other token at token 680, where the uniform number lies 1e-5 from a boundary of the running sum
and the two loops' float32 sums round differently (``lean_loop_timing.json``).

    python experiments/lean_loop_timing.py --old 868f07b --seconds 10 --rounds 5
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def child(seconds: float, seed: int, count_ops: bool) -> dict:
    """Generate ``seconds`` of tokens with the vqaudio on sys.path -> times, token hash, ops."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    import vqaudio
    from vqaudio.controls.requests import Request
    from vqaudio.generation import piece_controls, sample_tokens
    from vqaudio.prior.sampling import SHIPPED

    torch.set_num_threads(1)
    prior, codec = vqaudio.load_prior(device="cpu"), vqaudio.load_codec(device="cpu")
    blocks = round(seconds * codec.config.sample_rate / codec.config.block_samples)
    controls, _ = piece_controls(prior, codec, Request(), seconds, 1, seed, 0, blocks, None)
    prompt = torch.zeros(1, 0, dtype=torch.long)
    num_tokens = blocks * prior.config.tokens_per_block
    sample_tokens(prior, 2 * prior.config.tokens_per_block, prompt, SHIPPED, seed)  # warm-up

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    began, cpu = time.perf_counter(), time.thread_time()
    tokens = sample_tokens(prior, num_tokens, prompt, SHIPPED, seed, controls=controls)
    wall, cpu = time.perf_counter() - began, time.thread_time() - cpu
    result = {"wall_s": wall, "cpu_s": cpu, "tokens": num_tokens}
    result["sha1"] = hashlib.sha1(tokens.numpy().tobytes()).hexdigest()[:12]
    result["ids"] = tokens[0].tolist()
    if count_ops:  # the same piece again, counting the ops PyTorch dispatches
        with Count():
            sample_tokens(prior, num_tokens, prompt, SHIPPED, seed, controls=controls)
        result["ops_per_token"] = Count.ops / num_tokens
    return result


def export(ref: str, into: Path) -> Path:
    """The vqaudio package of git ``ref`` under ``into`` (the shipped models included)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "vqaudio"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(into, filter="data")
    return into


def run(tree: Path, fast_depth: str, args, count_ops: bool = False) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "VQAUDIO_FAST_DEPTH": fast_depth}
    line = [sys.executable, __file__, "--child", str(args.seconds), str(args.seed)]
    out = subprocess.run(
        line + (["--count-ops"] if count_ops else []),
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tree,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="868f07b", help="git ref of the loop before")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--count-ops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(float(args.child[0]), int(args.child[1]), args.count_ops)))
        return
    import common

    with tempfile.TemporaryDirectory() as folder:
        old = export(args.old, Path(folder))
        runs = collections.defaultdict(list)
        ops = {"old": run(old, "0", args, True), "lean": run(ROOT, "0", args, True)}
        for _ in range(args.rounds):  # alternating: a load that changes hits all three alike
            runs["old"].append(run(old, "0", args))
            runs["lean"].append(run(ROOT, "0", args))
            runs["C loop"].append(run(ROOT, "1", args))
    hashes = {name: {r["sha1"] for r in rows} for name, rows in runs.items()}
    ids = {name: rows[0]["ids"] for name, rows in runs.items()}
    differs = [i for i, (a, b) in enumerate(zip(ids["lean"], ids["C loop"])) if a != b]
    c_from = differs[0] if differs else None  # the first token where the C loop draws another
    base = statistics.median(r["cpu_s"] for r in runs["old"])
    rows = []
    for name, results in runs.items():
        cpu = statistics.median(r["cpu_s"] for r in results)
        row = {
            "loop": name,
            "cpu_s": cpu,
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "ms_per_token": 1000 * cpu / results[0]["tokens"],
            "ratio": cpu / base,
            "ops_per_token": ops[name]["ops_per_token"] if name in ops else None,
            "tokens_sha1": " ".join(sorted(hashes[name])),
            "cpu_s_each": [round(r["cpu_s"], 3) for r in results],
        }
        rows.append(row)
    same = len(hashes["old"] | hashes["lean"]) == 1  # every run of both loops
    common.report(
        "lean_loop_timing",
        "The PyTorch frame loop, old and lean, and the C loop (one thread)",
        common.machine(),
        rows,
        [
            ("loop", "loop", ""),
            ("cpu_s", "CPU s (median)", "{:.2f}"),
            ("wall_s", "wall s (median)", "{:.2f}"),
            ("ms_per_token", "ms/token", "{:.2f}"),
            ("ratio", "/ old", "{:.2f}"),
            ("ops_per_token", "ops/token", "{:.1f}"),
            ("tokens_sha1", "tokens", ""),
        ],
        model="shipped prior and codec",
        notes=(
            f"{args.seconds:g} s of music, seed {args.seed}, SHIPPED sampling, {args.rounds} "
            f"alternating rounds; old = {args.old}; old and lean draw the same tokens: {same}; "
            f"the C loop's first other token: {c_from} (of {len(ids['lean'])})",
        ),
        old=args.old,
        seconds=args.seconds,
        old_and_lean_same_tokens=same,
        c_loop_first_other_token=c_from,
    )


if __name__ == "__main__":
    main()
