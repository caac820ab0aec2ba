"""Long fuzzing run over .vqa files (tests/test_fuzz.py runs a few hundred cases of the same).

    OMP_NUM_THREADS=1 python scripts/fuzz.py --cases 20000 [--seed 1]

Prints cases run, clean refusals, crashes (any exception but FormatError, a file left behind,
a case over the time limit), peak memory and the slowest case; exits 1 on any crash.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

import torch  # noqa: E402

from tests import fuzz  # noqa: E402
from tests.conftest import diverse_codec  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per case")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = diverse_codec()
    with tempfile.TemporaryDirectory() as folder:
        seeds_dir, work = Path(folder) / "seeds", Path(folder) / "work"
        seeds_dir.mkdir()
        work.mkdir()
        seeds = fuzz.make_seeds(codec, seeds_dir)
        began = time.perf_counter()
        report = fuzz.run(seeds, args.cases, work, codec, args.seed, args.time_limit)
        elapsed = time.perf_counter() - began
    print(report.summary())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"wall {elapsed:.1f} s; process peak RSS {peak:.0f} MiB")
    for kind, count in sorted(report.by_kind.items()):
        print(f"  {kind}: {count}")
    for crash in report.crashes[:50]:
        print("CRASH", crash)
    return 1 if report.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
