"""Probe: how peaked is a decoder's predicted spectrum below 1 kHz, against the input's?

For each codec file, 3 held-out clips of 6 s (one per track) are encoded and their 14-level codes
decoded to log-magnitudes (no band levels, no phase); the score per frame is the 95th percentile
minus the median of log |STFT| (nepers) over the bins from 59 Hz to 1 kHz, where the notes are,
averaged over frames and clips. A decoder that smears harmonics scores lower than the input.

    python experiments/peak_probe.py vqaudio/models/codec.safetensors runs/x/model.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402

from vqaudio import load_codec  # noqa: E402
from vqaudio.codec.spectral import log_magnitude  # noqa: E402

LOW = slice(5, 86)  # bins 5-85 at n_fft 2048, 24 kHz: 59 Hz - 1 kHz


def peakiness(log_mag: torch.Tensor) -> float:
    band = log_mag[0, 0, LOW]  # (bins, frames)
    return float((band.quantile(0.95, dim=0) - band.median(dim=0).values).mean())


def main() -> None:
    clips = [w for _, w in common.music_clips(common.find_tracks(None), 6.0, 1, 24000)][:3]
    for path in sys.argv[1:]:
        codec = load_codec(path).eval()
        decoded, given = [], []
        for wav in clips:
            x = torch.from_numpy(np.asarray(wav, np.float32)).reshape(1, 1, -1)
            with torch.no_grad():
                z_q = codec.quantizer.decode(codec.encode(x).keep(14))
                decoded.append(peakiness(codec.decoder.log_magnitude(z_q)))
            given.append(peakiness(log_magnitude(x, codec.config.n_fft, codec.config.hop_length)))
        print(f"{path}: decoded {np.mean(decoded):.3f}, input {np.mean(given):.3f} nepers")


if __name__ == "__main__":
    main()
