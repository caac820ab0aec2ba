"""Probe: what would band levels sent beside the codes buy?

The encoder knows the input's power in a few frequency bands per block of time; the decoder
knows its own predicted magnitude. Quantize the input's band power (dB, `step` dB steps) per
block, send it, and scale the predicted magnitude band by band to it (gain interpolated linearly
between block centres), then render with the shipped Griffin-Lim. "none" is the shipped decode
(with its calibrated level gain). Side bits/s are the empirical entropy of the quantized values'
time differences (an estimate of what an entropy coder would spend); each clip's first value is
counted as a zero difference, so the absolute start value (~8 bits per band per chunk, under
1 bps per band at 10 s chunks) is not charged. 6 held-out clips of 10 s.

    python experiments/band_levels_probe.py 5 14     # levels to decode (1.5 and 6 kbps)

Writes benchmarks/results/band_levels.json. This is a probe: nothing in the codec uses it yet.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402

from vqaudio import load_codec  # noqa: E402
from vqaudio.codec.griffin_lim import griffin_lim  # noqa: E402
from vqaudio.codec.spectral import LOG_FLOOR, log_magnitude  # noqa: E402
from vqaudio.eval import metrics  # noqa: E402

torch.set_num_threads(1)
codec = load_codec("vqaudio/models/codec.safetensors")
dec = codec.decoder
R = codec.config.sample_rate
FRAMES_PER_SECOND = R / dec.hop
tracks = common.held_out_tracks()
clips = common.music_clips(tracks, 10.0, 2, R)[:6]
freqs = np.arange(dec.bins) * R / dec.n_fft


def band_matrix(edges):
    e = list(edges) + [R / 2 + 1]
    idx = np.digitize(freqs, e) - 1
    M = np.zeros((len(edges), dec.bins), np.float32)
    M[idx, np.arange(dec.bins)] = 1
    return torch.from_numpy(M)


def apply(mag_hat, mag, edges, block, step_db):
    M = band_matrix(edges)  # (nb, bins)
    P = mag.pow(2)[0, 0]
    Ph = mag_hat.pow(2)[0, 0]  # (bins, frames)
    n = P.shape[1]
    nblk = -(-n // block)
    pad = nblk * block - n

    def bandblock(X):
        Eb = M @ X  # (nb, frames)
        Eb = torch.nn.functional.pad(Eb, (0, pad))
        return Eb.view(len(edges), nblk, block).sum(-1)

    Et, Eh = bandblock(P), bandblock(Ph)
    dbt = 10 * torch.log10(Et + 1e-10)
    q = torch.round(dbt / step_db) * step_db if step_db else dbt
    q = torch.clamp(q, min=-100)
    g_db = (q - 10 * torch.log10(Eh + 1e-10)).clamp(-20, 20)
    # interpolate per frame (linear between block centers), piecewise in frequency
    centers = (torch.arange(nblk) + 0.5) * block
    t = torch.arange(n).float()
    gf = torch.stack(
        [torch.from_numpy(np.interp(t.numpy(), centers.numpy(), g.numpy())) for g in g_db]
    ).float()
    gain = M.T @ gf  # (bins, frames)
    return mag_hat * (10 ** (gain / 20))[None, None], q


configs = {
    "none": None,
    "full 1s 1dB": ([0], 50, 1.0),
    "full 0.5s 1dB": ([0], 25, 1.0),
    "4b 0.5s 1dB": ([0, 1000, 4000, 8000], 25, 1.0),
    "8b 0.24s 1.5dB": ([0, 250, 500, 1000, 2000, 4000, 6000, 9000], 12, 1.5),
    "16b 0.16s 1.5dB": ([0, *np.geomspace(100, 11000, 15).round()], 8, 1.5),
}
levels = [int(a) for a in sys.argv[1:]] or [5, 14]
out = {}
for k in levels:
    for name, cfg in configs.items():
        rows, qs = [], []
        for _name, wav in clips:
            x = torch.from_numpy(wav)[None]
            with torch.inference_mode():
                codes = codec.encode(x).keep(k)
                lm = dec.log_magnitude(codec.quantizer.decode(codes))
                mag_hat = (lm.exp() - LOG_FLOOR).clamp(min=0)
                mag = (log_magnitude(x, dec.n_fft, dec.hop).exp() - LOG_FLOOR).clamp(min=0)
                if cfg is None:
                    mag_hat = mag_hat * dec.level_gain[k - 1].exp()
                else:
                    mag_hat, q = apply(mag_hat, mag, *cfg)
                    qs.append(q)
                y = griffin_lim(
                    mag_hat.reshape(-1, dec.bins, mag_hat.shape[-1]), dec.n_fft, dec.hop, dec.iters
                )
            y = y.reshape(1, -1)[:, : wav.shape[1]].clamp(-1, 1).numpy()
            s = metrics.score(wav, y, R)
            rows.append(s)
        bits = None
        if qs:
            steps = np.concatenate(
                [np.diff(q.numpy(), axis=1).ravel() for q in qs] + [q[:, 0].numpy() * 0 for q in qs]
            )
            _, cnt = np.unique(np.round(steps, 3), return_counts=True)
            p = cnt / cnt.sum()
            H = -(p * np.log2(p)).sum()
            edges, block = cfg[0], cfg[1]
            bits = H * len(edges) * FRAMES_PER_SECOND / block
        r = {
            m: float(np.mean([x[m] for x in rows]))
            for m in ("mel_distance", "chroma_correlation", "level_difference_db")
        }
        r["level_abs"] = float(np.mean([abs(x["level_difference_db"]) for x in rows]))
        r["side_bps"] = bits
        out[f"{k} {name}"] = r
        print(
            k, name, {a: round(b, 3) if b is not None else None for a, b in r.items()}, flush=True
        )
common.save("band_levels", {"machine": common.machine(), "command": common.command(), "rows": out})
