"""A quick sweep of sampling settings: many generated pieces, the cheap figures only.

``generation_music.py`` scores 16 pieces a row with every figure (held-out bits, continuation
margin, memorisation), 8-10 minutes a row here; its pieces vary so much that 16 of them cannot
tell two settings apart on the drones. This sweep samples ``--num`` pieces of 30 s per setting
(seeds seed .. seed + num - 1, decoded as ``vqaudio generate`` decodes) and reports, with the
standard error of each mean:

- distinct level-0 codes per second, the longest hold of one level-0 code, and the drones
  (pieces holding one longer than ``--drone-s``: 5.6 s, the longest hold in the held-out real
  excerpts of generation_music.py);
- chroma flux, chroma peak and chroma self-similarity at 5-25 s (vqaudio/eval/structure.py).

Each setting is a JSON object of sample_tokens' keyword arguments; unset ones take `vqaudio
generate`'s defaults:

    python benchmarks/generation_sweep.py --settings '{"contrast": 0}' '{"contrast": 0.3}'
    python benchmarks/generation_sweep.py --prior runs/p/model.safetensors --num 48 --seed 1000 \
        --settings '{"contrast": 0.3, "top_p": [0.7, 0.98]}'

Writes benchmarks/results/generation_sweep.json (or --name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
from generation_music import sample_pieces  # noqa: E402

from vqaudio import load_codec, load_prior  # noqa: E402
from vqaudio.eval import structure  # noqa: E402
from vqaudio.generation import GENERATED_GRIFFIN_LIM_ITERS  # noqa: E402
from vqaudio.prior.sampling import SHIPPED  # noqa: E402

FIGURES = ("codes_per_s", "hold_s", "flux", "chroma_peak", "self_similarity")


def score(prior, codec, settings: dict, num: int, seed: int, seconds: float) -> list[list[float]]:
    """Per piece: codes/s, longest hold (s), flux, peak, self-similarity; batches of 8, sampled
    and decoded as generation_music.py does."""
    rate = codec.config.sample_rate
    frame_s = codec.config.block_samples / rate
    pieces = []
    for first in range(0, num, 8):
        wav, level0, _ = sample_pieces(
            prior,
            codec,
            seconds,
            min(8, num - first),
            seed + first,
            settings,
            GENERATED_GRIFFIN_LIM_ITERS,
        )
        for w, codes in zip(wav, level0, strict=True):
            pieces.append(
                [
                    len(np.unique(codes)) / seconds,
                    structure.longest_hold(codes) * frame_s,
                    structure.chroma_flux(w, rate),
                    structure.chroma_peak(w, rate),
                    structure.chroma_self_similarity(w, rate),
                ]
            )
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default=None, help="[default: the shipped one]")
    parser.add_argument("--codec", default=None, help="[default: the shipped one]")
    parser.add_argument("--settings", nargs="+", default=["{}"], help="JSON objects, a row each")
    parser.add_argument("--num", type=int, default=48)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--drone-s", type=float, default=5.6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="generation_sweep")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = common.machine()
    codec, prior = load_codec(args.codec), load_prior(args.prior)
    defaults = {"temperature": SHIPPED.temperature, "top_p": SHIPPED.top_p}
    defaults.update(exact_hold=SHIPPED.exact_hold)
    defaults.update(contrast=SHIPPED.contrast, hold_cap=SHIPPED.hold_cap)
    rows = []
    for text in args.settings:
        given = json.loads(text)
        settings = {**defaults, **given}
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        pieces = np.array(score(prior, codec, settings, args.num, args.seed, args.seconds))
        row = {"settings": json.dumps(given), "pieces": len(pieces)}
        for k, name in enumerate(FIGURES):
            row[name] = float(pieces[:, k].mean())
            row[name + "_se"] = float(pieces[:, k].std(ddof=1) / np.sqrt(len(pieces)))
        row["drones"] = int((pieces[:, 1] > args.drone_s).sum())
        rows.append(row)
        print(json.dumps(row), flush=True)
    common.report(
        args.name,
        "Sampling settings: many pieces, the cheap figures",
        info,
        rows,
        [
            ("settings", "settings", ""),
            ("pieces", "pieces", "{}"),
            ("codes_per_s", "L0 codes/s", "{:.2f}"),
            ("drones", "drones", "{}"),
            ("hold_s", "longest hold s", "{:.1f}"),
            ("flux", "flux", "{:.3f}"),
            ("flux_se", "± se", "{:.3f}"),
            ("chroma_peak", "peak", "{:.2f}"),
            ("chroma_peak_se", "± se", "{:.2f}"),
            ("self_similarity", "self-sim", "{:.3f}"),
            ("self_similarity_se", "± se", "{:.3f}"),
        ],
        notes=(
            f"{args.num} pieces of {args.seconds:g} s per row (seeds {args.seed}..); a drone "
            f"holds one level-0 code longer than {args.drone_s:g} s; unset settings are "
            f"generate's: {defaults}",
        ),
        prior=args.prior or "shipped",
    )


if __name__ == "__main__":
    main()
