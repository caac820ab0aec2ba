"""Why generated pieces drone: how likely level 0 is to hold its code, by how long it has held it.

For each prior (default: the shipped one) and for the held-out tracks' real codes, every level-0
step is binned by the current run length (frames the previous code has been held). Each bin
gives the fraction of steps that held the code again ("empirical") and the prior's own mean
probability of holding it ("model"), teacher-forced over whole windows of the prior's context:

- on real music, model against empirical says whether the prior is calibrated;
- on the prior's own ``--num`` samples (one window each, seeds seed.., `generate`'s sampling
  settings or those given), the empirical column is what sampling did, so a gap above the model
  column is what truncation (top-k / top-p) added. A nucleus makes a long hold absorbing: where
  the prior gives the held code more than top_p, it is the only code left.

    python experiments/hold_hazard.py
    python experiments/hold_hazard.py --priors vqaudio/models/prior.safetensors \
        runs/p3-c/model.safetensors --top-p 1,0.98

Writes benchmarks/results/hold_hazard.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1] / "benchmarks"  # common.py, generation_music.py
sys.path.insert(0, str(HERE))
import common  # noqa: E402
from generation_music import keep_levels  # noqa: E402

from vqaudio import load_codec, load_prior  # noqa: E402
from vqaudio.generation import sample_tokens  # noqa: E402
from vqaudio.prior.sampling import SHIPPED, Sampling  # noqa: E402
from vqaudio.train.data import find_audio, split_files  # noqa: E402
from vqaudio.train.prior_task import cached_tokens  # noqa: E402

BINS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, None))


def hold_table(prior, tokens: torch.Tensor) -> list[dict]:
    """Per run-length bin: steps, empirical hold rate, the prior's mean p(hold), over the
    level-0 steps of ``tokens`` (B, context tokens), windows starting at a frame."""
    per_block, size = prior.config.tokens_per_block, prior.config.codebook_size
    with torch.inference_mode():
        logits = prior.window_logits(tokens)[:, :-1]  # row i predicts token i
    first = torch.arange(0, tokens.shape[1], per_block)
    log_probs = torch.log_softmax(logits[:, first, :size].double(), dim=-1)  # level 0's codes
    level0 = tokens[:, first]
    previous = level0[:, :-1]
    p_hold = log_probs[:, 1:].gather(-1, previous[..., None])[..., 0].exp().numpy()
    held = (level0[:, 1:] == previous).numpy()
    run = np.ones_like(held, dtype=np.int64)  # frames the previous code has been held
    for f in range(1, held.shape[1]):
        run[:, f] = np.where(held[:, f - 1], run[:, f - 1] + 1, 1)
    rows = []
    for lo, hi in BINS:
        inside = (run >= lo) & (run <= (hi or run.max()))
        count = int(inside.sum())
        rows.append(
            {
                "run_frames": f"{lo}" if lo == hi else f"{lo}-{hi or ''}",
                "steps": count,
                "empirical": float(held[inside].mean()) if count else float("nan"),
                "model": float(p_hold[inside].mean()) if count else float("nan"),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--priors", nargs="+", default=[None])
    parser.add_argument("--codec", default=None)
    parser.add_argument("--num", type=int, default=16, help="samples of one window each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=SHIPPED.temperature)
    parser.add_argument("--top-k", type=common.top_k_levels, default=None)
    parser.add_argument("--top-p", type=common.top_p_levels, default=SHIPPED.top_p)
    parser.add_argument(
        "--exact-hold", action=argparse.BooleanOptionalAction, default=SHIPPED.exact_hold
    )
    parser.add_argument(
        "--contrast",
        type=float,
        default=SHIPPED.contrast,
        help="as generate's: changes the draws (the held-next column), not the prior's p(hold)",
    )
    parser.add_argument(
        "--hold-cap", type=float, default=SHIPPED.hold_cap, help="as generate's: the draws only"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="hold_hazard")
    parser.add_argument(
        "--codes-cache", type=Path, default=Path("runs/music-24k-prior/codes"), help="as ever"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = common.machine()
    codec = load_codec(args.codec)
    _, held = split_files(find_audio(common.MUSIC), common.HELD_OUT)
    tracks = [t for t in held if t.stem != "silence"]
    levels = max(load_prior(p).config.num_levels for p in args.priors)  # each scores its own
    with torch.inference_mode():
        real = [cached_tokens(codec, t, levels, args.codes_cache) for t in tracks]
    rows = []
    for path in args.priors:
        prior = load_prior(path).float()
        label = str(path or "shipped")
        context = prior.config.context_tokens
        strides = codec.config.level_strides[:levels]
        windows = []
        for tokens in real:
            tokens = keep_levels(tokens, strides, prior.config.num_levels)
            for first in range(0, len(tokens) - context + 1, context):
                windows.append(np.asarray(tokens[first : first + context], np.int64))
        sampled = sample_tokens(
            prior,
            context,
            torch.zeros(args.num, 0, dtype=torch.long),
            Sampling(
                args.temperature,
                args.top_k,
                args.top_p,
                exact_hold=args.exact_hold,
                contrast=args.contrast,
                hold_cap=args.hold_cap if args.exact_hold else 1.0,
            ),
            args.seed,
        )
        for source, tokens in (
            (f"real ({len(windows)} windows)", torch.from_numpy(np.stack(windows))),
            (f"its own {args.num} samples", sampled),
        ):
            for row in hold_table(prior, tokens):
                rows.append({"prior": label, "codes": source, **row})
    common.report(
        args.name,
        "Level 0's hold probability by run length: real music against the prior's own samples",
        info,
        rows,
        [
            ("prior", "prior", ""),
            ("codes", "codes", ""),
            ("run_frames", "run (frames)", ""),
            ("steps", "steps", "{}"),
            ("empirical", "held next", "{:.3f}"),
            ("model", "prior's p(hold)", "{:.3f}"),
        ],
        notes=(
            f"sampling: temperature {args.temperature:g}, top-k {args.top_k}, top-p "
            f"{args.top_p}, exact hold {args.exact_hold}, contrast {args.contrast:g}, "
            f"hold cap {args.hold_cap:g}; "
            f"held-out tracks {', '.join(t.name for t in tracks)}",
        ),
        sampling={
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "exact_hold": args.exact_hold,
            "contrast": args.contrast,
            "hold_cap": args.hold_cap,
        },
    )


if __name__ == "__main__":
    main()
