"""Where a spectral decoder loses the notes: in the magnitudes it predicts, or in their rendering.

For each codec file (they should share a code space: same codes, different decoders) and each
operating point, the held-out music clips are encoded and decoded, and three chroma correlations
against the input are measured (centred chroma, mean over frames within 40 dB of the loudest):

- ``magnitude``: chroma of the decoder's predicted magnitude itself (n_fft 2048, hop 480, the
  codec's own grid), against the same chroma of the input's STFT;
- ``rendered``: the same chroma of the Griffin-Lim audio re-analysed on the same grid;
- ``metric``: `vqaudio.eval.metrics.chroma_correlation` of the audio (n_fft 4096), as `eval` and
  benchmarks/quality.py report it.

And the log-magnitude bias (nepers, + too loud) below 2 kHz on each frame's loudest 5 % of the
input's bins (the harmonics) and on the others (the gaps): a smeared spectrum has the first
negative and the second positive.

Also ``consistency``: the spectral convergence between the rendered audio's magnitude and the
predicted one (0: Griffin-Lim found a signal with exactly that magnitude). A decoder whose
magnitude chroma holds while the rendered chroma falls predicts magnitudes that no signal has.

    python experiments/decoder_chroma_probe.py vqaudio/models/codec.safetensors \
        runs/dec-probe/model.safetensors

Writes benchmarks/results/decoder_chroma_probe.json. No band levels: the decoders' own output.
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

from vqaudio import load_codec  # noqa: E402
from vqaudio.codec.spectral import LOG_FLOOR  # noqa: E402
from vqaudio.eval import metrics  # noqa: E402


def chroma_of_power(power: np.ndarray, rate: int, n_fft: int) -> np.ndarray:
    import librosa

    return librosa.feature.chroma_stft(S=power, sr=rate, n_fft=n_fft)


def stft_power(wav: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    window = torch.hann_window(n_fft)
    spec = torch.stft(
        torch.from_numpy(wav.astype(np.float32)), n_fft, hop, window=window, return_complex=True
    )
    return spec.abs().square().numpy()


def peak_and_gap_bias(
    power: np.ndarray, predicted: np.ndarray, rate: int, n_fft: int, below_hz: float = 2000.0
) -> tuple[float, float]:
    """Mean log-magnitude error (nepers, + too loud) below ``below_hz`` on each frame's loudest 5 %
    of the input's bins (the harmonics) and on the other bins (the gaps), over frames within
    40 dB of the loudest."""
    bins = int(below_hz * n_fft / rate) + 1
    frames = min(power.shape[1], predicted.shape[1])
    ref = np.sqrt(power[:bins, :frames])
    error = np.log(predicted[:bins, :frames] + LOG_FLOOR) - np.log(ref + LOG_FLOOR)
    energy = power[:, :frames].sum(axis=0)
    loud = energy >= energy.max() * 10 ** (-metrics.CHROMA_TOP_DB / 10)
    peak = (ref >= np.quantile(ref, 0.95, axis=0, keepdims=True)) & loud
    gap = ~peak & loud
    return float(error[peak].mean()), float(error[gap].mean())


def probe(codec, wav: np.ndarray, levels: int) -> dict:
    decoder, rate = codec.decoder, codec.config.sample_rate
    n_fft, hop = decoder.n_fft, decoder.hop
    with torch.inference_mode():
        codes = codec.encode(torch.from_numpy(wav)[None]).keep(levels)
        z_q = codec.quantizer.decode(codes)
        log_mag = decoder.log_magnitude(z_q)
        magnitude = decoder.magnitude(log_mag, levels)
        # as codec.decode renders it, from the same magnitude (its gain for this many levels)
        rendered = decoder.render(log_mag, levels).clamp(-1.0, 1.0)[0, 0, : wav.shape[-1]].numpy()
    predicted = magnitude[0].numpy()
    reference = stft_power(wav[0], n_fft, hop)
    again = stft_power(rendered, n_fft, hop)
    c_ref = chroma_of_power(reference, rate, n_fft)
    energy = reference.sum(axis=0)

    def score(chroma: np.ndarray) -> float:
        return metrics.chroma_frame_correlation(c_ref, chroma, energy)

    frames = min(predicted.shape[1], again.shape[1])
    diff = np.sqrt(again[:, :frames]) - predicted[:, :frames]
    peak, gap = peak_and_gap_bias(reference, predicted, rate, n_fft)
    return {
        "peak_bias": peak,
        "gap_bias": gap,
        "magnitude": score(chroma_of_power(predicted**2, rate, n_fft)),
        "rendered": score(chroma_of_power(again, rate, n_fft)),
        "metric": metrics.chroma_correlation(wav, rendered[None], rate),
        "consistency": float(np.linalg.norm(diff) / np.linalg.norm(predicted[:, :frames])),
        "level_db": metrics.level_difference(wav, rendered[None]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("codecs", nargs="+", help="codec files (same code space)")
    parser.add_argument("--levels", type=int, nargs="+", default=[5, 8, 14])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="decoder_chroma_probe")
    common.add_clip_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = common.machine()
    tracks = common.find_tracks(args.tracks)
    rows = []
    for path in args.codecs:
        codec = load_codec(path)
        clips = common.music_clips(tracks, args.seconds, args.clips_per_track, codec.sample_rate)
        for levels in args.levels:
            scores = [probe(codec, wav, levels) for _, wav in clips]
            row = {"codec": f"{path} ({codec.checkpoint_id})", "levels": levels}
            row.update({k: float(np.mean([s[k] for s in scores])) for k in scores[0]})
            rows.append(row)
            print(row, flush=True)
    common.report(
        args.name,
        "Chroma of the predicted magnitude against chroma of its rendering",
        info,
        rows,
        [
            ("codec", "codec", ""),
            ("levels", "levels", "{}"),
            ("magnitude", "magnitude chroma", "{:.3f}"),
            ("rendered", "rendered chroma", "{:.3f}"),
            ("metric", "chroma (metric)", "{:.3f}"),
            ("consistency", "inconsistency", "{:.3f}"),
            ("peak_bias", "harmonics < 2 kHz", "{:+.2f}"),
            ("gap_bias", "gaps < 2 kHz", "{:+.2f}"),
            ("level_db", "level dB", "{:+.2f}"),
        ],
        notes=(common.describe_clips(clips, args.seconds, codec.sample_rate, tracks),),
    )


if __name__ == "__main__":
    main()
