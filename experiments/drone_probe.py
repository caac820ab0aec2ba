"""Which default pieces drone, and does a stronger harmony part end it?

For seeds 0..N-1, `generate` at the shipped settings, with the harmony (or other) control
columns multiplied by an extra factor; prints each piece's plan, pitch hold, correlation with
the plan's chords, the strongest pitch class per 2 s, and pulse clarity.

    python experiments/drone_probe.py --num 8 --harmony 1 2 --cache-by-chord 0
    python experiments/drone_probe.py --num 8 --harmony 1 --cache-by-chord 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

import vqaudio.generation as generation
from vqaudio import load_codec, load_prior
from vqaudio.controls import chords as chordlib
from vqaudio.controls.grid import HARMONY, ONSETS
from vqaudio.controls.requests import Request
from vqaudio.eval import adherence, rhythm, tonal
from vqaudio.prior.sampling import SHIPPED

NAMES = "C C# D D# E F F# G G# A A# B".split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--harmony", type=float, nargs="+", default=[1.0])
    parser.add_argument("--onsets", type=float, default=1.0)
    parser.add_argument("--cache", type=float, default=1.0)
    parser.add_argument("--prior", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--cache-by-chord", type=float, default=0.0)
    parser.add_argument("--no-stay", action="store_true", help="plans never repeat a bar's chord")
    parser.add_argument("--chords", default=None, help="ask for this progression")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior, codec = load_prior(args.prior, "cpu"), load_codec(None, "cpu")
    rate = codec.config.sample_rate
    original = generation.piece_controls
    if args.no_stay:
        from vqaudio.controls import plan as planlib

        sample = planlib.sample_chords

        def no_stay(moves, rng, first=None, bars=planlib.PHRASE_BARS):
            moves = moves.clone()
            moves[0, 0, 0] = moves[1, 1, 0] = 0
            return sample(moves, rng, first, bars)

        planlib.sample_chords = no_stay
    request = Request(chords=args.chords) if args.chords else None
    results = []
    for factor in args.harmony:

        def scaled(*a, factor=factor, **k):
            controls, plans = original(*a, **k)
            if controls is not None:
                controls = controls.clone()
                controls[..., HARMONY] *= factor
                controls[..., ONSETS] *= args.onsets
            return controls, plans

        generation.piece_controls = scaled
        sampling = dataclasses.replace(
            SHIPPED, cache_scale=args.cache, cache_by_chord=args.cache_by_chord
        )
        holds, corrs, pulses = [], [], []
        for i in range(args.num):
            plans: list[str] = []
            wav = (
                generation.generate(
                    prior,
                    codec,
                    args.seconds,
                    seed=args.seed + i,
                    sampling=sampling,
                    request=request,
                    on_plan=plans.extend,
                )[0]
                .float()
                .numpy()
            )
            plan = plans[0]
            tempo = float(plan.split()[1])
            progression = chordlib.parse_progression(plan.split('"')[1])
            beats = adherence.beat_grid(tempo, args.seconds)
            bars = beats[::4]
            labels = [chordlib.harte(progression[b % len(progression)]) for b in range(len(bars))]
            corr = adherence.chord_correlation(wav, rate, labels, bars)
            hold = tonal.pitch_hold(wav, rate)
            per = max(1, round(2.0 * rate / tonal.CHROMA_HOP))
            strongest = tonal.block_chroma(tonal.frame_chroma(wav, rate), per).argmax(0)
            pulse = rhythm.pulse_clarity(wav, rate)
            holds.append(hold), corrs.append(corr), pulses.append(pulse)
            print(
                f"x{factor:g} seed {args.seed + i}: {plan:42s} hold {hold:5.1f} s"
                f"  chord {corr:+.2f}  pulse {pulse:.2f}  {' '.join(NAMES[s] for s in strongest)}",
                flush=True,
            )
        results.append(dict(harmony=factor, holds=holds, corrs=corrs, pulses=pulses))
        print(
            f"x{factor:g}: median hold {np.median(holds):.1f} s, over 10 s "
            f"{sum(h > 10 for h in holds)}/{len(holds)}, chord {np.median(corrs):+.2f}, "
            f"pulse {np.median(pulses):.2f}",
            flush=True,
        )
    if args.out:
        json.dump(results, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
