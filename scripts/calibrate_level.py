"""Measure a spectral codec's output level per number of decoded levels on training music and
store the gains that cancel it (``decoder.level_gain``); codes and code space do not change.

A decoder trained by L1 on log-magnitudes predicts each bin's median, which is below its mean
wherever it is unsure, so it renders too quietly, and more so with fewer levels. The gain for k
levels is the mean over clips of 0.5 * log(power of the input's STFT / power of the predicted
magnitude), in log-magnitude units (nepers), so a decoded clip's level matches its input's on
average. Held-out tracks (the last ``--val-files`` of the sorted files, as the recipes split
them) are left out, so the held-out evaluation stays honest.

    python scripts/calibrate_level.py vqaudio/models/codec.safetensors runs/calibrated.safetensors
    python scripts/ship_models.py runs/calibrated.safetensors \
        --prior vqaudio/models/prior.safetensors
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vqaudio import audio
from vqaudio.codec.io import load_codec, save_codec
from vqaudio.codec.spectral import LOG_FLOOR, SpectralDecoder, log_magnitude
from vqaudio.train.data import find_audio, split_files

MUSIC = "/usr/share/games/w[ae][rs]*/**/music/**/*.o*"  # the recipes' soundtracks


def clip_powers(codec, wav: torch.Tensor) -> tuple[float, list[float]]:
    """wav (1, 1, T) -> (power of its STFT, power of the predicted magnitude at 1..L levels)."""
    decoder = codec.decoder
    true = (log_magnitude(wav, decoder.n_fft, decoder.hop).exp() - LOG_FLOOR).clamp(min=0.0)
    codes = codec.encode(wav)
    predicted = []
    for k in range(1, codec.config.num_levels + 1):
        log_mag = decoder.log_magnitude(codec.quantizer.decode(codes.keep(k)))
        magnitude = (log_mag.exp() - LOG_FLOOR).clamp(min=0.0)
        predicted.append(float(magnitude.pow(2).sum()))
    return float(true.pow(2).sum()), predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("codec")
    parser.add_argument("output")
    parser.add_argument("--data", default=MUSIC, help="glob of the training music")
    parser.add_argument("--val-files", type=int, default=4, help="held-out files left out")
    parser.add_argument("--clips", type=int, default=48, help="10 s clips, spread over tracks")
    args = parser.parse_args()
    codec = load_codec(args.codec)
    if not isinstance(codec.decoder, SpectralDecoder):
        raise SystemExit(f"{args.codec}: not a spectral codec (decoder: {codec.config.decoder})")
    train, _ = split_files(find_audio(args.data), args.val_files)
    rate, length = codec.config.sample_rate, 10 * codec.config.sample_rate
    rng = np.random.default_rng(0)
    ratios = []  # (clips, levels) of log(true power / predicted power)
    for i in range(args.clips):
        track = train[i % len(train)]
        wav, _ = audio.read(track, sample_rate=rate, channels=1)
        if wav.shape[1] < length or np.sqrt(np.mean(wav**2)) < 1e-3:  # too short, or silent
            continue
        start = int(rng.integers(0, wav.shape[1] - length + 1))
        with torch.inference_mode():
            true, predicted = clip_powers(
                codec, torch.from_numpy(wav[:, start : start + length])[None]
            )
        ratios.append([np.log(true / max(p, 1e-12)) for p in predicted])
    gains = 0.5 * np.mean(ratios, axis=0)
    with torch.no_grad():
        codec.decoder.level_gain.copy_(torch.from_numpy(gains).float())
    save_codec(codec, args.output, half=True)
    db = 20 * gains / np.log(10)
    print(f"{len(ratios)} clips of {len(train)} training tracks; gain per level count (dB):")
    print(" ".join(f"{k + 1}: {g:+.2f}" for k, g in enumerate(db)))
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
