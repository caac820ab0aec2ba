"""Why codec training past step 1000 loses notes at low bitrates: a probe.

For each codec checkpoint given (in step order), on the held-out clips (benchmarks/common.py):
- the latent's RMS, and per level: distinct codes used, perplexity of their histogram, and the
  fraction of the latent's energy left after the first k levels (residual / |z|²);
- chroma of the decode at 4, 5, 8 and 14 levels and of the unquantized latent;
- **cross-decoding** against the first checkpoint: this checkpoint's decoder on the first one's
  quantized latent, and the first one's decoder on this one's. Which pairing loses the notes says
  whether the decoder or the codes (encoder + codebooks) changed for the worse.

    python experiments/step_probe.py runs/probe/step-1000.safetensors \
        runs/probe/step-1200.safetensors runs/probe/step-1500.safetensors

Writes benchmarks/results/step_probe.json (``--name`` another).
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

LEVELS = (4, 5, 8, 14)


def render(codec, z_q: torch.Tensor, num_levels: int, length: int) -> np.ndarray:
    """The codec's decoder on a latent, as ``Codec.decode`` runs it (no band levels)."""
    wav = codec.decoder(z_q, num_levels, None).clamp(-1.0, 1.0)
    return wav[0, :, :length].numpy()


def quantized(codec, wav: torch.Tensor, num_levels: int):
    """(z, z_q of the first num_levels levels, the codes) of one clip (1, 1, T)."""
    z = codec.latent(wav)
    codes = codec.quantizer.encode(z, num_levels)
    return z, codec.quantizer.decode(codes), codes


def level_stats(codec, clips) -> dict:
    """Per level over all clips: distinct codes, perplexity, residual energy fraction."""
    per_level = [[] for _ in range(codec.config.num_levels)]
    residual_fraction = np.zeros(codec.config.num_levels)
    rms = []
    for _, wav in clips:
        z, _, codes = quantized(codec, wav, codec.config.num_levels)
        rms.append(float(z.pow(2).mean().sqrt()))
        z_q = 0
        levels = zip(codec.quantizer.levels, codes.levels, codes.strides)
        for k, (vq, c, stride) in enumerate(levels):
            per_level[k].append(c.flatten().numpy())
            z_q = z_q + codec.quantizer._upsample(vq.decode(c), stride)
            residual_fraction[k] += float((z - z_q).pow(2).sum() / z.pow(2).sum())
    distinct, perplexity = [], []
    for codes in per_level:
        counts = np.bincount(np.concatenate(codes), minlength=codec.config.codebook_size)
        p = counts[counts > 0] / counts.sum()
        distinct.append(int((counts > 0).sum()))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
    return {
        "z_rms": float(np.mean(rms)),
        "distinct_codes": distinct,
        "perplexity": perplexity,
        "residual_fraction": (residual_fraction / len(clips)).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="step_probe", help="results file name")
    common.add_clip_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from vqaudio import load_codec
    from vqaudio.eval.metrics import chroma_correlation

    codecs = [load_codec(path) for path in args.checkpoints]
    rate = codecs[0].config.sample_rate
    tracks = common.find_tracks(args.tracks)
    clips = [
        (name, torch.from_numpy(wav)[None])
        for name, wav in common.music_clips(tracks, args.seconds, args.clips_per_track, rate)
    ]
    first = codecs[0]
    rows = []
    with torch.inference_mode():
        for path, codec in zip(args.checkpoints, codecs):
            row = {"checkpoint": str(path), **level_stats(codec, clips)}
            scores: dict[str, list[float]] = {}
            for _, wav in clips:
                ref, length = wav[0].numpy(), wav.shape[-1]

                def add(key: str, out: np.ndarray, ref=ref, scores=scores) -> None:
                    scores.setdefault(key, []).append(chroma_correlation(ref, out, rate))

                z = codec.latent(wav)
                add("unquantized", render(codec, z, codec.config.num_levels, length))
                for k in LEVELS:
                    _, z_q, _ = quantized(codec, wav, k)
                    add(f"levels_{k}", render(codec, z_q, k, length))
                    if codec is not first:  # swap the decoder and the codes with the first file
                        _, z_q_first, _ = quantized(first, wav, k)
                        add(f"this_decoder_first_codes_{k}", render(codec, z_q_first, k, length))
                        add(f"first_decoder_this_codes_{k}", render(first, z_q, k, length))
            row["chroma"] = {key: float(np.mean(v)) for key, v in scores.items()}
            rows.append(row)
            c = row["chroma"]
            print(
                f"{path.name}: z rms {row['z_rms']:.2f}; chroma "
                + " / ".join(f"{c[f'levels_{k}']:.3f}" for k in LEVELS)
                + f" at {'/'.join(map(str, LEVELS))} levels, unquantized {c['unquantized']:.3f}",
                flush=True,
            )
            if codec is not first:
                print(
                    "  this decoder on the first file's codes: "
                    + " / ".join(f"{c[f'this_decoder_first_codes_{k}']:.3f}" for k in LEVELS)
                    + "; the first decoder on this file's codes: "
                    + " / ".join(f"{c[f'first_decoder_this_codes_{k}']:.3f}" for k in LEVELS),
                    flush=True,
                )
            print(
                "  distinct codes L0-4: "
                + " ".join(map(str, row["distinct_codes"][:5]))
                + "; perplexity L0-4: "
                + " ".join(f"{p:.0f}" for p in row["perplexity"][:5])
                + "; residual after L1..5: "
                + " ".join(f"{r:.3f}" for r in row["residual_fraction"][:5]),
                flush=True,
            )
    common.save(
        args.name,
        {"machine": common.machine(), "command": common.command(), "rows": rows},
    )


if __name__ == "__main__":
    main()
