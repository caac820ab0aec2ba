"""How often a small relative change of the encoder's output changes a code.

TF32 math (cuDNN convolutions on Ampere and later GPUs) moves the encoder's output by about 1e-3
relative; the nearest code then flips where two codes are nearly tied, and a GPU would write other
codes than a CPU. ``Codec.encode`` turns TF32 off; this measures on the CPU what it would cost
if it did not: each clip's latent z is perturbed as z * (1 + eps * n), n ~ N(0, 1) per element,
and encoded again. Printed per eps: the share of codes that differ at each level (a flip at a
coarse level changes the residual of every finer one), over all levels, and the share of clips
with at least one changed code.

    python benchmarks/code_stability.py

Writes benchmarks/results/code_stability.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402


def flips(codec, z: torch.Tensor, eps: float, draws: int) -> tuple[list[float], float]:
    """Per level, the share of codes that a perturbation of relative size ``eps`` changes
    (mean over ``draws`` noise draws); and the share of draws that changed any code."""
    quantizer = codec.quantizer
    reference = quantizer.encode(z)
    changed = [0.0] * len(reference.levels)
    any_changed = 0
    generator = torch.Generator().manual_seed(0)
    for _ in range(draws):
        noise = torch.randn(z.shape, generator=generator)
        codes = quantizer.encode(z * (1 + eps * noise))
        differ = [(a != b).float().mean().item() for a, b in zip(codes.levels, reference.levels)]
        changed = [c + d / draws for c, d in zip(changed, differ, strict=True)]
        any_changed += any(d > 0 for d in differ)
    return changed, any_changed / draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_codec_arguments(parser, "a random codec")
    common.add_clip_arguments(parser)
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2])
    parser.add_argument("--draws", type=int, default=3, help="noise draws per clip and eps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec, label = common.codec_from_args(args, "untrained")
    tracks = common.find_tracks(args.tracks)
    clips = common.music_clips(tracks, args.seconds, args.clips_per_track, codec.sample_rate)
    latents = [codec.latent(torch.from_numpy(wav)[None]) for _, wav in clips]
    rows = []
    for eps in args.eps:
        per_clip = [flips(codec, z, eps, args.draws) for z in latents]
        levels = [
            sum(c[0][k] for c in per_clip) / len(per_clip) for k in range(len(per_clip[0][0]))
        ]
        strides = codec.config.level_strides
        weights = [1 / s for s in strides[: len(levels)]]  # codes per level ~ 1 / stride
        overall = sum(w * f for w, f in zip(weights, levels)) / sum(weights)
        rows.append(
            {
                "eps": eps,
                "codes_changed": overall,
                "level0_changed": levels[0],
                "finest_changed": levels[-1],
                "clips_changed": sum(c[1] for c in per_clip) / len(per_clip),
                "per_level": levels,
            }
        )
    common.report(
        "code_stability",
        "Codes changed by a relative perturbation of the encoder's output (CPU)",
        common.machine(),
        rows,
        [
            ("eps", "relative eps", "{:g}"),
            ("codes_changed", "codes changed", "{:.3%}"),
            ("level0_changed", "level 0", "{:.3%}"),
            ("finest_changed", "finest level", "{:.3%}"),
            ("clips_changed", "clips with a change", "{:.0%}"),
        ],
        model=label,
        notes=(common.describe_clips(clips, args.seconds, codec.sample_rate, tracks),),
        draws=args.draws,
    )


if __name__ == "__main__":
    main()
