"""Band levels: the input's power in a few frequency bands per 0.4 s, sent beside the codes.

Why (measured by ``experiments/band_levels_probe.py``): the spectral decoder predicts
each bin's median log-magnitude, so it renders quantized latents too quietly, and more so on
music it was not trained on; a gain fitted on training music closed only 40-45 % of the gap on
held-out music. The encoder, which hears the input, can simply say how loud it was. Four bands
(0-1, 1-4, 4-8, 8+ kHz) every 5 blocks (0.4 s) at 1 dB steps cost ~30-40 bits/s and brought the
held-out level error from 1.6 dB to 0.17 dB at 1.5 kbps and cut mel distance by 8-11 %.
Sixteen bands (``RESOLUTIONS``, compress's default where they cost no code level) raised
held-out chroma at 1.5 kbps from 0.645 to 0.738 at ~150 bits/s (docs/MODEL_CARD.md).

The values are absolute: 10 log10 of the band's mean power (a full-scale sine is -3 dB), from a
Hann-windowed STFT of ``ANALYSIS_N_FFT`` samples at the codec's hop. They do not depend on the
decoder, so a better decoder still reads them: it scales *its own* predicted magnitude, band by
band, to the sent power (:func:`apply`), the gain interpolated linearly between span centres.

Spans are ``span_blocks`` blocks (coarse frames) long, counted from the start of each chunk
(``Header.chunk_blocks`` is a multiple of it, so spans never straddle a chunk); a file's last span
may be shorter. How a .vqa chunk stores the values is ``vqa/band_levels.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch only where the levels are measured or applied: `info` stays light
    from torch import Tensor

EDGES_HZ = (0, 1000, 4000, 8000)  # lower band edges; the last band runs to Nyquist
SPAN_SECONDS = 0.4
# what compress can send (``--band-resolution NAME``): lower band edges (Hz) and span (s). Files
# record the edges and span they use, so any of these (or others) decode with any decoder
EDGES_8 = (0, 250, 500, 1000, 2000, 4000, 6000, 9000)
EDGES_16 = (0, 100, 140, 196, 274, 384, 538, 753, 1054, 1476, 2066, 2893, 4050, 5670, 7938, 11000)
RESOLUTIONS: dict[str, tuple[tuple[int, ...], float]] = {
    "4x0.4": (EDGES_HZ, SPAN_SECONDS),  # the first band levels (and where 16 cost a level)
    "8x0.4": (EDGES_8, 0.4),
    "16x0.4": (EDGES_16, 0.4),
    "8x0.08": (EDGES_8, 0.08),
    "16x0.08": (EDGES_16, 0.08),
}
DEFAULT_RESOLUTION = "4x0.4"  # of the functions below; compress itself defaults to "auto"
# compress's "auto": 16 bands unless they cost a code level that 4 keep; more chroma for
# ~120 bits/s (docs/MODEL_CARD.md, Quality table; experiments/band_resolution.py)
AUTO_RESOLUTIONS = ("16x0.4", "4x0.4")
ANALYSIS_N_FFT = 2048
MIN_DB, MAX_DB = -120, 20  # values are integer dB in this range (1e-12 power is -120 dB)
MAX_GAIN_DB = 20.0  # the decoder never moves a band by more than this
MAX_BANDS = 16


def band_edges(sample_rate: int, resolution: str = DEFAULT_RESOLUTION) -> tuple[int, ...]:
    """The edges of ``resolution`` below the Nyquist frequency of ``sample_rate``."""
    return tuple(e for e in RESOLUTIONS[resolution][0] if e < sample_rate / 2)


def span_blocks(
    block_samples: int, sample_rate: int, chunk_blocks: int, resolution: str = DEFAULT_RESOLUTION
) -> int:
    """Blocks per span: about the span of ``resolution``, and a divisor of ``chunk_blocks``."""
    seconds = RESOLUTIONS[resolution][1]
    want = max(1, round(seconds * sample_rate / block_samples))
    divisors = [d for d in range(1, chunk_blocks + 1) if chunk_blocks % d == 0]
    return min(divisors, key=lambda d: (abs(d - want), d))


def spans(first: int, end: int, span: int) -> np.ndarray:
    """(n, 2) block ranges of the spans of blocks ``first:end`` (``first`` on a span boundary)."""
    starts = np.arange(first, end, span)
    return np.stack([starts, np.minimum(starts + span, end)], axis=1)


def band_matrix(edges: tuple[int, ...], n_fft: int, sample_rate: int) -> Tensor:
    """(bands, n_fft // 2 + 1) 0/1 matrix: which bins each band sums."""
    import torch

    bins = n_fft // 2 + 1
    freqs = np.arange(bins) * sample_rate / n_fft
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), freqs, side="right") - 1
    matrix = np.zeros((len(edges), bins), np.float32)
    matrix[index, np.arange(bins)] = 1.0
    return torch.from_numpy(matrix)


def _power_scale(n_fft: int) -> float:
    """Factor that turns a one-sided sum of |STFT|^2 into signal power (Parseval, Hann)."""
    import torch

    window = torch.hann_window(n_fft, dtype=torch.float64)
    return 2.0 / (n_fft * float(window.pow(2).sum()))


def span_power_db(
    power: Tensor, edges: tuple[int, ...], n_fft: int, sample_rate: int, frame_spans: np.ndarray
) -> Tensor:
    """power (N, bins, frames) of |STFT|^2 -> (N, bands, spans) mean band power in dB, each span
    the frames ``frame_spans[j, 0]:frame_spans[j, 1]`` (clipped to the frames there are)."""
    import torch

    bands = band_matrix(edges, n_fft, sample_rate).to(power) @ power  # (N, bands, frames)
    out = []
    for a, b in frame_spans:
        part = bands[..., int(a) : max(int(a) + 1, min(int(b), bands.shape[-1]))]
        out.append(part.mean(-1) * _power_scale(n_fft))
    return 10 * torch.log10(torch.stack(out, -1) + 1e-12)


def measure(
    wav: Tensor,
    sample_rate: int,
    hop: int,
    frames_per_block: int,
    edges: tuple[int, ...],
    block_spans: np.ndarray,
    window_block: int = 0,
) -> np.ndarray:
    """Band levels (C, bands, spans) int16 of the audio ``wav`` (C, T), which starts at block
    ``window_block``; ``block_spans`` are absolute block ranges inside it, far enough from its
    ends for the analysis window (the encoder's margin is)."""
    import torch
    import torch.nn.functional as F

    window = torch.hann_window(ANALYSIS_N_FFT, dtype=torch.float32)
    flat = F.pad(wav.float(), (ANALYSIS_N_FFT // 2, ANALYSIS_N_FFT // 2))
    spec = torch.stft(flat, ANALYSIS_N_FFT, hop, window=window, center=False, return_complex=True)
    frame_spans = (np.asarray(block_spans) - window_block) * frames_per_block
    db = span_power_db(spec.abs().pow(2), edges, ANALYSIS_N_FFT, sample_rate, frame_spans)
    return db.round().clamp(MIN_DB, MAX_DB).to(torch.int16).numpy()


@dataclass(frozen=True)
class BandLevels:
    """What a decoder needs to apply band levels to a decode of blocks starting at block 0:
    ``values`` (C, bands, spans) dB, ``block_spans`` (spans, 2) relative to the decode's block 0,
    the band ``edges`` in Hz and frames per block of the decoder's STFT."""

    values: np.ndarray
    block_spans: np.ndarray
    edges: tuple[int, ...]
    frames_per_block: int


def interpolation_matrix(frame_spans: np.ndarray, frames: int) -> Tensor:
    """(spans, frames) matrix W: ``gain @ W`` interpolates per-span values linearly in time
    between span centres, held flat beyond the first and last (np.interp, which is linear in the
    values, applied to each unit vector)."""
    import torch

    centres = np.asarray(frame_spans, np.float64).mean(axis=1) - 0.5
    t = np.arange(frames)
    unit = np.eye(len(centres))
    return torch.from_numpy(np.stack([np.interp(t, centres, u) for u in unit]).astype(np.float32))


def match(
    magnitude: Tensor,
    sent_db: Tensor,
    frame_spans: np.ndarray,
    edges: tuple[int, ...],
    n_fft: int,
    sample_rate: int,
    detach_gain: bool = False,
) -> Tensor:
    """The core of :func:`apply`: magnitude (N, bins, frames) scaled so that each band's mean
    power in each span of ``frame_spans`` is ``sent_db`` (N, bands, spans). ``detach_gain``: no
    gradient through the gain (training: see ``SpectralLoss.match_band_levels``)."""
    import torch

    measured = magnitude.detach() if detach_gain else magnitude
    predicted = span_power_db(measured.pow(2), edges, n_fft, sample_rate, frame_spans)
    gain_db = (sent_db.to(predicted) - predicted).clamp(-MAX_GAIN_DB, MAX_GAIN_DB)
    per_frame = gain_db @ interpolation_matrix(frame_spans, magnitude.shape[-1]).to(magnitude)
    matrix = band_matrix(edges, n_fft, sample_rate).to(magnitude)
    return magnitude * torch.pow(10.0, torch.einsum("bk,cbt->ckt", matrix, per_frame) / 20)


def apply(magnitude: Tensor, levels: BandLevels, n_fft: int, sample_rate: int) -> Tensor:
    """Scale a predicted magnitude (C, bins, frames) so that each band's mean power in each span
    is the sent one; the gain (dB, within ±MAX_GAIN_DB) is interpolated linearly in time between
    span centres and held flat beyond the first and last."""
    import torch

    frame_spans = levels.block_spans * levels.frames_per_block
    sent = torch.from_numpy(levels.values.astype(np.float32))
    return match(magnitude, sent, frame_spans, levels.edges, n_fft, sample_rate)
