"""Does the codec carry the music? Content checks on held-out clips, as a listener would judge.

For each 10 s clip of the held-out tracks (24 kHz mono), with the codec given:
- chroma correlation and mel distance at every operating point, each beside its time-shifted
  control (the reference rolled by half its length: what keeping no notes scores);
- the quantizer bypassed: decode(the encoder's unquantized latent);
- the decoder's use of its input: decode(zero latent) and decode(codes shuffled in time), which
  must both score worse than decode(true codes);
- per-level code usage on the clips.

    python benchmarks/content.py --codec vqaudio/models/codec.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

RATE = 24000
COLUMNS = [
    ("variant", "decoded from", ""),
    ("kbps", "kbps (codes)", "{:.3g}"),
    ("chroma", "chroma ↑", "{:.3f}"),
    ("chroma_control", "chroma ctrl", "{:.3f}"),
    ("mel", "mel dist ↓", "{:.3f}"),
    ("si_sdr", "SI-SDR dB ↑", "{:.2f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_codec_arguments(parser, "random-init CodecConfig(): proves the pipeline only")
    common.add_clip_arguments(parser)
    parser.add_argument("--levels", type=int, nargs="+", default=[5, 8, 14])
    args = parser.parse_args()

    from vqaudio.codes import Codes
    from vqaudio.eval import metrics

    torch.set_num_threads(2)
    codec, label = common.codec_from_args(args, "content meaningless")
    codec.eval()
    tracks = common.find_tracks(args.tracks)
    clips = common.music_clips(tracks, args.seconds, args.clips_per_track, RATE)
    print(f"clips: {', '.join(c[0] for c in clips)}", file=sys.stderr)
    generator = torch.Generator().manual_seed(0)
    scores: dict[tuple[str, float], list[dict]] = {}

    def add(variant: str, kbps: float, reference: np.ndarray, decoded: torch.Tensor) -> None:
        decoded = decoded[0].float().numpy()
        scores.setdefault((variant, kbps), []).append(
            {
                "chroma": metrics.chroma_correlation(reference, decoded, RATE),
                "chroma_control": metrics.chroma_correlation(reference, decoded, RATE, True),
                "mel": metrics.mel_distance(reference, decoded, RATE),
                "si_sdr": metrics.si_sdr(reference, decoded),
            }
        )

    usage = []
    with torch.no_grad():
        for _, wav in clips:
            x = torch.from_numpy(wav)[None]
            codes = codec.encode(x)
            for n in args.levels:
                add(
                    "true codes",
                    codec.config.bitrates[n - 1] / 1000,
                    wav,
                    codec.decode(codes.keep(n)),
                )
            full = codes.keep(max(args.levels))
            kbps = codec.config.bitrates[max(args.levels) - 1] / 1000
            blocks = full.levels[0].shape[-1]
            order = torch.randperm(blocks, generator=generator)
            shuffled = [
                c.view(1, blocks, -1)[:, order].reshape(1, -1) for c in full.levels
            ]  # whole coarse blocks move, so every level stays aligned with the others
            add(
                "codes shuffled in time",
                kbps,
                wav,
                codec.decode(Codes(shuffled, full.strides, full.num_samples)),
            )
            z = codec.latent(x)
            add(
                "unquantized latent (bypass)",
                float("inf"),
                wav,
                codec.decode_latent(z, x.shape[-1]),
            )
            add("zero latent", 0.0, wav, codec.decode_latent(torch.zeros_like(z), x.shape[-1]))
            usage.append([len(torch.unique(c)) / codec.config.codebook_size for c in codes.levels])
    rows = []
    for (variant, kbps), items in scores.items():
        row = {"variant": variant, "kbps": kbps, "clips": len(items)}
        for key in ("chroma", "chroma_control", "mel", "si_sdr"):
            row[key] = float(np.mean([item[key] for item in items]))
        rows.append(row)
    common.report(
        "content",
        f"does the codec carry the music ({label})",
        common.machine(),
        rows,
        COLUMNS,
        model=label,
        notes=(
            common.describe_clips([(c[0], None, None) for c in clips], args.seconds, RATE, tracks),
            "per-level share of codes used per clip (mean): "
            + " ".join(f"{u:.2f}" for u in np.mean(usage, axis=0)),
        ),
        clips=[c[0] for c in clips],
    )


if __name__ == "__main__":
    main()
