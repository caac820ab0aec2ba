"""One training step, profiled: encoder, quantizer, decoder, losses, backward, for two recipes side
by side (interleaved in one process, so a noisy machine slows both alike), and each codec's
per-stage encoder activation RMS on real music.

    python experiments/train_profile.py --before old-recipe.yaml \
        --after recipes/music-24k-codec.yaml --before-codec old-codec.safetensors \
        --after-codec vqaudio/models/codec.safetensors

The "before" recipe and codec of this project's history:
`git show 7ba3c96:recipes/music-24k-codec.yaml` and the same commit's
`vqaudio/models/codec.safetensors`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parents[1] / "benchmarks"  # common.py, generation_music.py
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RATE = 24000
PARTS = ("encoder", "quantizer", "decoder", "losses", "backward", "optimizer")


def _loss_fn(recipe):
    from vqaudio.codec.losses import ReconstructionLoss
    from vqaudio.codec.spectral_loss import SpectralLoss

    config, w = recipe.codec, recipe.loss
    if config.decoder == "spectral":
        loss = SpectralLoss(
            RATE, config.n_fft, config.hop_length, w.log_magnitude, w.mel, w.convergence
        )
        return lambda out, wav: loss(out.log_magnitude, wav)["total"]
    loss = ReconstructionLoss(RATE, w.l1, w.mel, w.stft)
    return lambda out, wav: loss(out.wav, wav)["total"]


class Timed:
    """A codec whose parts record their forward time."""

    def __init__(self, recipe):
        from vqaudio.codec import Codec

        torch.manual_seed(0)
        self.recipe, self.codec = recipe, Codec(recipe.codec).train()
        self.times = {p: [] for p in PARTS}
        for name in ("encoder", "quantizer", "decoder"):
            module = getattr(self.codec, name)
            module.register_forward_pre_hook(lambda m, a, n=name: self._start(n))
            module.register_forward_hook(lambda m, a, o, n=name: self._stop(n))
        decoder = self.codec.decoder
        if hasattr(decoder, "log_magnitude"):  # the spectral decoder's training path
            inner = decoder.log_magnitude

            def timed_log_magnitude(z_q):
                self._start("decoder")
                out = inner(z_q)
                self._stop("decoder")
                return out

            decoder.log_magnitude = timed_log_magnitude
        self.loss = _loss_fn(recipe)
        self.optimizer = torch.optim.AdamW(self.codec.parameters(), lr=1e-4)
        self._t0: dict[str, float] = {}

    def _start(self, name: str) -> None:
        self._t0[name] = time.perf_counter()

    def _stop(self, name: str) -> None:
        self.times[name][-1] += time.perf_counter() - self._t0[name]

    def step(self, wav: torch.Tensor) -> float:
        for p in PARTS:
            self.times[p].append(0.0)
        start = time.perf_counter()
        out = self.codec(wav)
        t = time.perf_counter()
        loss = self.loss(out, wav) + out.vq_loss
        self.times["losses"][-1] = time.perf_counter() - t
        t = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.times["backward"][-1] = time.perf_counter() - t
        t = time.perf_counter()
        self.optimizer.step()
        self.times["optimizer"][-1] = time.perf_counter() - t
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="recipe of the old codec")
    parser.add_argument("--after", default="recipes/music-24k-codec.yaml")
    parser.add_argument("--before-codec", help="trained old codec file (for its stage RMS)")
    parser.add_argument("--after-codec", help="trained new codec file (for its stage RMS)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from vqaudio import load_codec
    from vqaudio.recipe import load_recipe

    torch.set_num_threads(args.threads)
    tracks = common.find_tracks(None)
    music = np.concatenate([w for _, w in common.music_clips(tracks, 8.0, 1, RATE)], axis=1)
    rng = np.random.default_rng(0)
    runs = {}
    for label, path in (("before", args.before), ("after", args.after)):
        recipe = load_recipe(path)
        crop = int(round(recipe.data.segment_seconds * RATE))
        runs[label] = (Timed(recipe), recipe.train.batch_size, crop)

    def batch(size: int, crop: int) -> torch.Tensor:
        starts = rng.integers(0, music.shape[1] - crop, size)
        return torch.from_numpy(np.stack([music[:, s : s + crop] for s in starts]))

    walls = {label: [] for label in runs}
    for step in range(args.steps + 1):  # the first step of each is warm-up, left out
        for label, (timed, size, crop) in runs.items():
            wall = timed.step(batch(size, crop))
            if step:
                walls[label].append(wall)
    rows = []
    for label, (timed, size, crop) in runs.items():
        audio_s = size * crop / RATE
        wall = float(np.median(walls[label]))
        row = {
            "recipe": label,
            "batch": f"{size} x {crop / RATE:g} s",
            "params_m": timed.codec.num_parameters() / 1e6,
            "steps_per_s": 1 / wall,
            "audio_s_per_s": audio_s / wall,
            "fresh_stage_rms": " ".join(
                f"{r:.3g}" for r in timed.codec.stage_rms(torch.from_numpy(music[None]))
            ),
        }
        for part in PARTS:
            row[part] = float(np.median(timed.times[part][1:])) / wall
        rows.append(row)
    for label, path in (("before", args.before_codec), ("after", args.after_codec)):
        if path:
            codec = load_codec(path)
            rms = codec.stage_rms(torch.from_numpy(music[None]))
            next(r for r in rows if r["recipe"] == label)["trained_stage_rms"] = " ".join(
                f"{r:.3g}" for r in rms
            )
    columns = [
        ("recipe", "recipe", ""),
        ("batch", "batch", ""),
        ("params_m", "params M", "{:.2f}"),
        ("steps_per_s", "steps/s", "{:.2f}"),
        ("audio_s_per_s", "audio s / s", "{:.1f}"),
        *[(p, f"{p} %", "{:.0%}") for p in PARTS],
        ("fresh_stage_rms", "stage RMS fresh", ""),
        ("trained_stage_rms", "stage RMS trained", ""),
    ]
    common.report(
        "train_profile",
        f"one training step, {args.threads} thread(s), median of {args.steps}",
        common.machine(),
        rows,
        columns,
        notes=(f"before: {args.before}; after: {args.after}; music: 8 s of each held-out track",),
    )


if __name__ == "__main__":
    main()
