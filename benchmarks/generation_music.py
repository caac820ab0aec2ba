"""Does generated music sound like one piece? Priors scored beside held-out real music.

For each prior (default: the shipped one), ``--num`` pieces of ``--seconds`` are sampled (seeds
seed .. seed + num - 1, one batch) and decoded; the same number of real excerpts of the same
length are cut from the held-out tracks (benchmarks/common.py HELD_OUT, the tracks no recipe
trains on). Every figure is a mean over pieces with its [min, max] spread:

- held-out bits per token (all levels and per level) and bits/s, on the held-out tracks' codes;
- distinct level-0 codes per second, and KL(level-0 histogram || the training music's);
- the longest hold of one level-0 code, and the drones: pieces that hold one longer than any of
  the real excerpts does;
- chroma flux (0.5 s blocks) and chroma self-similarity at 5-25 s (centred chroma,
  vqaudio/eval/structure.py), chroma peak (notes or a noise texture: flux and self-similarity alone
  rate a stationary noise as steady), tempo spread over 10 s windows, the longest silent hole,
  clipping;
- continuation margin: ``--prompts`` real prompts of 10 s, each continued by 10 s; the real
  next 10 s of each prompt give the real margin;
- memorisation: the longest run of level-0 codes shared with the training codes, in seconds:
  those of every file the prior recipe (``--recipe``) trains on, its ``data.extra_paths`` too
  (``--no-memorisation`` skips it and the KL, which need every training file's codes);
- the yardstick (vqaudio/eval): pulse clarity, beat-tracker agreement, onsets/s, tempo
  stability, spectral contrast, the strongest pitch class's chroma std and longest hold, and
  each piece's own beat against a steady grid and chroma against its own triads, printed as
  medians beside real music's 10-90 % range and marked where they fall outside it, on either
  side (a drone wins a one-sided floor); and the kernel (KID) and Fréchet distances of 10 s
  windows on ~90 hand-crafted features to the real windows, real against real (half the
  pieces against the other half) being the noise floor.

``--wav-dir DIR`` scores the audio files in DIR as one more row (``--priors`` with no file
scores none); ``--adherence`` scores them against what was asked: ``--tempo BPM`` (tempo error
and beat F-measure against the grid from ``--beat-offset``), ``--chords "A:min F:maj .."``
(Harte labels, a chord per ``--beats-per-chord`` beats, correlation of the output's chroma with
the chord templates), or a FILE.json beside each file with "tempo", "beats", "chords",
"chord_times"; beside real music's own figures, the ceiling:

    python benchmarks/generation_music.py --priors --wav-dir out/ --adherence --tempo 100 \
        --chords "A:min F:maj C:maj G:maj" --no-memorisation

    python benchmarks/generation_music.py                                   # the shipped prior
    python benchmarks/generation_music.py --priors vqaudio/models/prior.safetensors \
        runs/music-24k-prior-flat/model.safetensors --labels frames flat --plot generation.png

    git show 41d608b:vqaudio/models/prior.safetensors > runs/flat-prior.safetensors
    python benchmarks/generation_music.py --priors shipped runs/flat-prior.safetensors \
        --labels "shipped prior" "previous flat prior (41d608b)"   # the flat prior it replaced

Prints the tables, writes benchmarks/results/generation_music.json and, with --plot, a picture of
spectrogram + chromagram of two generated pieces beside a real excerpt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from vqaudio import audio, load_codec, load_prior  # noqa: E402
from vqaudio.codes import Codes, token_levels  # noqa: E402
from vqaudio.controls.requests import Request  # noqa: E402
from vqaudio.errors import ConfigError  # noqa: E402
from vqaudio.eval import adherence, feature_distance, rhythm, structure, tonal  # noqa: E402
from vqaudio.generation import (  # noqa: E402
    GENERATED_GRIFFIN_LIM_ITERS,
    decode_codes,
    fit_peak,
    generate,
    piece_controls,
    sample_tokens,
)
from vqaudio.prior.sampling import SHIPPED, Sampling  # noqa: E402
from vqaudio.recipe import load_recipe  # noqa: E402
from vqaudio.train.data import find_audio, recipe_files, split_files  # noqa: E402
from vqaudio.train.prior_task import cached_tokens  # noqa: E402

PROMPT_SECONDS = 10.0
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def piece_metrics(wav: np.ndarray, level0: np.ndarray, rate: int, seconds: float) -> dict:
    return {
        "codes_per_s": len(np.unique(level0)) / seconds,
        "l0_held": float(np.mean(level0[1:] == level0[:-1])),  # frames that repeat the last code
        "l0_hold_s": structure.longest_hold(level0) * seconds / max(len(level0), 1),
        "flux": structure.chroma_flux(wav, rate),
        "chroma_peak": structure.chroma_peak(wav, rate),
        "self_similarity": structure.chroma_self_similarity(wav, rate),
        "tempo_spread": structure.tempo_spread(wav, rate),
        "hole_s": structure.silent_holes(wav, rate),
        "clipped": structure.clipped_fraction(wav),
        "rms_db": float(20 * np.log10(np.sqrt(np.mean(np.square(wav))) + 1e-12)),
        **music_figures(wav, rate),
    }


def music_figures(wav: np.ndarray, rate: int) -> dict:
    """Rhythm and tonal figures (vqaudio/eval), and the piece's own beat and chord figures:
    its beat against a steady grid fitted to it, its chroma against its own estimated triads."""
    own = adherence.own_ceiling(wav, rate)
    return {
        **rhythm.rhythm_figures(wav, rate),
        **tonal.tonal_figures(wav, rate),
        "own_beat_f": own["beat_f_measure"],
        "own_chord_corr": own["chord_correlation"],
    }


def kl_divergence(codes: np.ndarray, reference: np.ndarray, size: int) -> float:
    """KL(p || q) in bits of two code histograms, each with +0.5 counts (no infinite terms)."""
    p = np.bincount(codes, minlength=size) + 0.5
    q = np.bincount(reference, minlength=size) + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float((p * np.log2(p / q)).sum())


def level_bits(prior, tokens: np.ndarray) -> tuple[float, list[float]]:
    """Held-out bits/token (all, per level) over consecutive windows of the prior's context."""
    config = prior.config
    levels = token_levels(config.level_strides)
    total, count = np.zeros(config.num_levels), np.zeros(config.num_levels)
    context = config.context_tokens
    with torch.inference_mode():
        for first in range(0, len(tokens) - context + 1, context):
            window = torch.from_numpy(np.asarray(tokens[first : first + context], np.int64))
            nll = prior.token_nll(window[None])[0].double().numpy() / np.log(2)
            slot_levels = levels.repeat(len(nll) // len(levels)).numpy()
            for k in range(config.num_levels):
                total[k] += nll[slot_levels == k].sum()
                count[k] += (slot_levels == k).sum()
    return float(total.sum() / count.sum()), (total / np.maximum(count, 1)).tolist()


def summarise(pieces: list[dict]) -> dict:
    """Mean, [min, max], median, [10 %, 90 %] percentiles and the standard error of the mean of
    each figure over the pieces."""
    out = {}
    for key in pieces[0]:
        values = np.array([p[key] for p in pieces], dtype=float)
        out[key] = float(np.nanmean(values))
        out[key + "_range"] = [float(np.nanmin(values)), float(np.nanmax(values))]
        out[key + "_median"] = float(np.nanmedian(values))
        out[key + "_p10_90"] = [float(v) for v in np.nanpercentile(values, [10, 90])]
        count = int(np.sum(~np.isnan(values)))
        out[key + "_se"] = float(np.nanstd(values, ddof=1) / np.sqrt(count)) if count > 1 else 0.0
    if "pitch_hold_s" in pieces[0]:  # the floor: no more such pieces than real music has
        holds = np.array([p["pitch_hold_s"] for p in pieces], dtype=float)
        out["pitch_holds_over_10s"] = f"{int(np.sum(holds > 10))}/{len(holds)}"
    return out


def real_material(codec, tracks, seconds: float, num: int, num_prompts: int | None = None):
    """``num`` excerpts of ``seconds`` and ``num_prompts`` (default ``num``) (prompt,
    continuation) pairs of 10 + 10 s, cut at evenly spaced offsets of the held-out tracks (mono,
    codec rate)."""
    num_prompts = num if num_prompts is None else num_prompts
    per_track, per_track_prompts = (-(-n // len(tracks)) + 1 for n in (num, num_prompts))
    rate = codec.config.sample_rate
    excerpts = [w for _, w in common.music_clips(tracks, seconds, per_track, rate)][:num]
    pairs = [w for _, w in common.music_clips(tracks, 2 * PROMPT_SECONDS, per_track_prompts, rate)]
    cut = round(PROMPT_SECONDS * rate)
    return excerpts, [(w[:, :cut], w[:, cut : 2 * cut]) for w in pairs[:num_prompts]]


def through_codec(
    codec, excerpt_codes, continuation_codes, pairs, real_codes, levels: int, seconds: float
):
    """(row, decoded excerpts): the real excerpts and continuations (their codes, all levels)
    through the codec's first ``levels`` levels, scored as the generated pieces are."""
    rate = codec.config.sample_rate
    with torch.inference_mode():
        through = [decode_codes(codec, c.keep(levels))[0] for c in excerpt_codes]
        continued = [decode_codes(codec, c.keep(levels))[0] for c in continuation_codes]
    row = {"label": "real, through the codec", "kind": f"held-out excerpts, {levels} levels"}
    row.update(
        summarise(
            [
                piece_metrics(w.numpy(), c, rate, seconds)
                for w, c in zip(through, real_codes, strict=True)
            ]
        )
    )
    row["drones"] = 0  # the real excerpts' own level-0 codes
    row["continuation_margin"] = structure.continuation_margin(
        [structure.mean_chroma(p, rate) for p, _ in pairs],
        [structure.mean_chroma(c.numpy(), rate) for c in continued],
    )
    return row, through


def sample_pieces(
    prior, codec, seconds: float, num: int, seed: int, sampling: dict, iters: int | None = None
):
    """(wav (num, T), level-0 codes (num, frames), seconds of sampling) for one batch."""
    config = prior.config
    rate, block = codec.config.sample_rate, codec.config.block_samples
    samples = round(seconds * rate)
    blocks = -(-samples // block)
    began = time.perf_counter()
    # as `vqaudio generate -n num --seed seed` samples: a prior with controls follows a plan each
    controls, _ = piece_controls(prior, codec, Request(), seconds, num, seed, 0, blocks, None)
    tokens = sample_tokens(
        prior,
        blocks * config.tokens_per_block,
        torch.zeros(num, 0, dtype=torch.long),
        Sampling(**sampling),
        seed,
        controls=controls,
    )
    took = time.perf_counter() - began
    codes = Codes.from_tokens(tokens, config.level_strides, config.codebook_size, samples)
    with torch.inference_mode():  # as generate writes it: scaled under -1 dBFS where louder
        wav = fit_peak(decode_codes(codec, codes, griffin_lim_iters=iters))[:, 0].numpy()
    return wav, codes.levels[0].numpy(), took


def keep_levels(tokens: np.ndarray, level_strides, num_levels: int) -> np.ndarray:
    """Flattened tokens of ``level_strides``' levels -> those of the first ``num_levels`` (the
    tokens a prior over fewer levels models; the flatten order interleaves the levels within a
    frame, vqaudio/codes.py, and keeps their order)."""
    levels = token_levels(tuple(level_strides)).numpy()
    if num_levels >= levels.max() + 1:
        return tokens
    return np.asarray(tokens).reshape(-1, len(levels))[:, levels < num_levels].ravel()


def evaluate_prior(
    args,
    label,
    path,
    codec,
    held_tokens,
    train_level0,
    excerpts,
    pairs,
    cache_scale=1.0,
    contrast=0.0,
    control_scale=SHIPPED.control_scale,
    cache_by_chord=SHIPPED.cache_by_chord,
):
    rate = codec.config.sample_rate
    prior = load_prior(path)
    strides = codec.config.level_strides[: args.num_levels]
    held_tokens = [keep_levels(t, strides, prior.config.num_levels) for t in held_tokens]
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    if cache_scale != 1.0:
        sampling["cache_scale"] = cache_scale
    if args.exact_hold:
        sampling["exact_hold"] = True
    if contrast:
        sampling["contrast"] = contrast
    if args.hold_cap < 1:
        sampling["hold_cap"] = args.hold_cap
    sampling["control_scale"] = control_scale
    sampling["cache_by_chord"] = cache_by_chord
    bits, per_level = zip(*(level_bits(prior, t) for t in held_tokens))
    weights = np.array([len(t) for t in held_tokens], dtype=float)
    row = {
        "label": label,
        "prior": str(path),
        "kind": prior.config.kind,
        "context_s": prior.config.context_blocks * codec.config.block_samples / rate,
        "bits_per_token": float(np.average(bits, weights=weights)),
        "bits_per_level": np.average(np.array(per_level), axis=0, weights=weights).tolist(),
    }
    row["bits_per_s"] = (
        row["bits_per_token"] * prior.config.tokens_per_block * rate / (codec.config.block_samples)
    )
    iters = min(args.griffin_lim_iters, codec.config.griffin_lim_iters)
    wav, level0, took = sample_pieces(
        prior, codec, args.seconds, args.num, args.seed, sampling, iters
    )
    row["sampling_s"] = took
    row["cache_scale"] = cache_scale
    row["contrast"] = contrast
    row["control_scale"] = control_scale
    pieces = [piece_metrics(w, c, rate, args.seconds) for w, c in zip(wav, level0)]
    row.update(summarise(pieces))
    # a drone: one level-0 code held longer than any real excerpt holds one
    row["drones"] = sum(p["l0_hold_s"] > args.real_hold_s for p in pieces)
    row["kl_level0"] = kl_divergence(level0.ravel(), train_level0, codec.config.codebook_size)
    frame_rate = rate / codec.config.block_samples
    runs = [structure.longest_shared_run(c, args.train_level0_tracks) for c in level0]
    row["memorised_s"] = max(runs) / frame_rate
    conts = []
    for i, (prompt, _) in enumerate(pairs):
        out = generate(
            prior,
            codec,
            PROMPT_SECONDS,
            seed=args.seed + i,
            prompt_wav=torch.from_numpy(prompt),
            prompt_seconds=PROMPT_SECONDS,
            griffin_lim_iters=args.griffin_lim_iters,
            sampling=Sampling(**sampling),
        )[0].numpy()
        conts.append(out[:, -round(PROMPT_SECONDS * rate) :])
    row["continuation_margin"] = structure.continuation_margin(
        [structure.mean_chroma(p, rate) for p, _ in pairs],
        [structure.mean_chroma(c, rate) for c in conts],
    )
    return row, wav


def plot(path: Path, real: np.ndarray, generated: list[tuple[str, np.ndarray]], rate: int):
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("real (held out)", real), *generated]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 5.2), squeeze=False)
    for col, (title, wav) in enumerate(panels):
        mel = librosa.feature.melspectrogram(y=wav.astype(np.float32), sr=rate, n_mels=96)
        axes[0, col].imshow(
            librosa.power_to_db(mel, ref=np.max),
            origin="lower",
            aspect="auto",
            vmin=-70,
            extent=(0, len(wav) / rate, 0, 96),
            cmap="magma",
        )
        axes[0, col].set_title(title, fontsize=10)
        axes[0, col].set_ylabel("mel band")
        chroma = structure.frame_chroma(wav, rate)
        axes[1, col].imshow(
            chroma,
            origin="lower",
            aspect="auto",
            extent=(0, len(wav) / rate, 0, 12),
            cmap="viridis",
        )
        axes[1, col].set_yticks(np.arange(12) + 0.5, PITCH_CLASSES, fontsize=7)
        axes[1, col].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


COLUMNS = [
    ("label", "", ""),
    ("bits_per_token", "bits/tok", "{:.2f}"),
    ("bits_per_s", "bits/s", "{:.0f}"),
    ("codes_per_s", "L0 codes/s", "{:.2f}"),
    ("l0_held", "L0 held", "{:.2f}"),
    ("l0_hold_s", "L0 hold s", "{:.1f}"),
    ("drones", "drones", "{}"),
    ("kl_level0", "L0 KL", "{:.2f}"),
    ("flux", "flux", "{:.3f}"),
    ("chroma_peak", "peak", "{:.2f}"),
    ("self_similarity", "self-sim", "{:.3f}"),
    ("tempo_spread", "tempo sd", "{:.1f}"),
    ("hole_s", "hole s", "{:.2f}"),
    ("clipped", "clip", "{:.4f}"),
    ("continuation_margin", "cont. margin", "{:.3f}"),
    ("memorised_s", "shared L0 s", "{:.2f}"),
]


SE_FIGURES = ("codes_per_s", "l0_hold_s", "flux", "chroma_peak", "self_similarity")


NO_PRIOR_LEVELS = 5  # the through-codec row's levels when no prior is scored: the shipped prior's

# The yardstick: (key, name, format). Every figure is a median over pieces, shown beside real
# music's 10-90 % range; a figure outside it is marked on the side it falls (a drone can win a
# one-sided floor: low flux, high self-similarity, no holes).
YARDSTICK = [
    ("pulse_clarity", "pulse clarity (onset autocorrelation peak, 0.3-2 s)", "{:.2f}"),
    ("beat_confidence", "beat confidence (DP vs PLP tracker agreement, 0-1)", "{:.2f}"),
    ("onset_rate", "onsets per second", "{:.1f}"),
    ("tempo_stability", "tempo stability (share of frames within 4 %)", "{:.2f}"),
    ("tempo_spread", "tempo sd over 10 s windows (BPM)", "{:.1f}"),
    ("own_beat_f", "beat F-measure against its own steady grid", "{:.2f}"),
    ("spectral_contrast", "spectral contrast (dB, peak - valley)", "{:.1f}"),
    ("chroma_peak", "chroma peak (max / mean)", "{:.2f}"),
    ("chroma_std", "chroma std of the strongest pitch class", "{:.3f}"),
    ("pitch_hold_s", "longest hold of one strongest pitch class (s)", "{:.1f}"),
    ("own_chord_corr", "chroma against its own triads (per 4 beats)", "{:.2f}"),
    ("flux", "chroma flux (0.5 s blocks)", "{:.3f}"),
    ("self_similarity", "chroma self-similarity (5-25 s)", "{:.3f}"),
    ("codes_per_s", "distinct level-0 codes per second", "{:.2f}"),
    ("l0_hold_s", "longest level-0 code hold (s)", "{:.1f}"),
    ("hole_s", "longest silent hole (s)", "{:.2f}"),
]
SET_FIGURES = [  # one value per row (no spread over pieces)
    ("pitch_holds_over_10s", "pieces holding one strongest pitch class over 10 s", "{}"),
    ("kid", "kernel distance to real music (KID, windows of 10 s; lower is better)", "{:.3f}"),
    ("fd", "Fréchet distance to real music (shrinkage 0.1; lower is better)", "{:.0f}"),
    ("continuation_margin", "continuation margin", "{:.3f}"),
    ("memorised_s", "longest level-0 run shared with the training codes (s)", "{:.2f}"),
]


def add_yardstick_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memorisation",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check memorisation and KL against every training file's codes (extracted once "
        "into --codes-cache: about an hour on 2 cores the first time)",
    )
    parser.add_argument(
        "--wav-dir", type=Path, help="also score the audio files in this folder as one row"
    )
    parser.add_argument("--wav-label", help="that row's label (default: the folder's name)")
    parser.add_argument(
        "--adherence",
        action="store_true",
        help="score --wav-dir's files against what was asked: --tempo / --chords, or a "
        "FILE.json beside each FILE.wav with 'tempo', 'beats', 'chords', 'chord_times'",
    )
    parser.add_argument("--tempo", type=float, help="the tempo asked (BPM), for --adherence")
    parser.add_argument(
        "--beat-offset", type=float, default=0.0, help="the first beat of the grid asked (s)"
    )
    parser.add_argument(
        "--chords", help='the chords asked, Harte labels, e.g. "A:min F:maj C:maj G:maj"'
    )
    parser.add_argument(
        "--beats-per-chord", type=int, default=4, help="without chord_times: a chord per N beats"
    )


def wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg"))


def score_wav_dir(args, codec, real_hold_s: float) -> tuple[dict, list[np.ndarray]]:
    """(row, mono wavs) of the files in --wav-dir, scored as generated pieces are (level-0
    figures from the codec's codes of each file; no continuation margin)."""
    rate = codec.config.sample_rate
    files = wav_files(args.wav_dir)
    if not files:
        raise SystemExit(f"--wav-dir {args.wav_dir}: no .wav, .flac or .ogg file in it")
    wavs, pieces, level0 = [], [], []
    for path in files:
        wav = audio.read(path, sample_rate=rate, channels=1)[0]
        with torch.inference_mode():
            codes = codec.encode(torch.from_numpy(wav)[None]).levels[0][0].numpy()
        seconds = wav.shape[1] / rate
        wavs.append(wav[0])
        level0.append(codes)
        pieces.append(piece_metrics(wav[0], codes, rate, seconds))
    row = {"label": args.wav_label or args.wav_dir.name, "kind": f"{len(files)} files"}
    row.update(summarise(pieces))
    row["drones"] = sum(p["l0_hold_s"] > real_hold_s for p in pieces)
    frame_rate = rate / codec.config.block_samples
    if args.memorisation:
        runs = [structure.longest_shared_run(c, args.train_level0_tracks) for c in level0]
        row["memorised_s"] = max(runs) / frame_rate
    return row, wavs


def set_distances(rows: list[dict], sets: dict[str, list[np.ndarray]], rate: int) -> None:
    """Add "kid", "fd" and the 5 largest feature departures to each row (vs the real row's
    windows); the real row gets its noise floor: half of its pieces against the other half."""
    matrices = {}
    for label, wavs in sets.items():
        per_piece = [feature_distance.feature_matrix([w], rate) for w in wavs]
        names = per_piece[0][0]
        matrices[label] = [m for _, m in per_piece]
    real_label = rows[0]["label"]
    real = np.concatenate(matrices[real_label])
    ref = feature_distance.standardise(real, real)
    for row in rows:
        if row["label"] not in matrices:
            continue
        if row["label"] == real_label:  # pieces split in two halves, alternately
            a = np.concatenate(matrices[real_label][0::2])
            b = np.concatenate(matrices[real_label][1::2])
            x, y = feature_distance.standardise(a, real), feature_distance.standardise(b, real)
            row["kid_note"] = "real against real: half the pieces against the other half"
        else:
            mine = np.concatenate(matrices[row["label"]])
            x, y = ref, feature_distance.standardise(mine, real)
            row["departures"] = [
                [n, round(z, 2)] for n, z in feature_distance.largest_departures(names, mine, real)
            ]
        row["kid"] = feature_distance.kernel_distance(x, y)
        row["fd"] = feature_distance.frechet_distance(x, y)
        row["windows"] = len(y)


def yardstick_cell(row: dict, real: dict, key: str, fmt: str) -> str:
    median = row.get(key + "_median")
    if median is None or np.isnan(median):
        return "—"
    lo, hi = real[key + "_p10_90"]
    if row is real:
        return f"{fmt.format(median)} [{fmt.format(lo)}, {fmt.format(hi)}]"
    mark = " ↓" if median < lo else (" ↑" if median > hi else "")
    return fmt.format(median) + mark


def print_yardstick(rows: list[dict]) -> None:
    """Figures as rows, the rows as columns: medians, real music's with its 10-90 % range."""
    real = rows[0]
    print()
    print(
        "## The yardstick: medians over pieces; real music's [10 %, 90 %] range beside it; "
        "↓ / ↑ a median below / above that range"
    )
    table = []
    for key, name, fmt in YARDSTICK:
        table.append(
            {"figure": name, **{r["label"]: yardstick_cell(r, real, key, fmt) for r in rows}}
        )
    outside = {r["label"]: 0 for r in rows}
    for r in rows[1:]:
        for key, _, fmt in YARDSTICK:
            outside[r["label"]] += yardstick_cell(r, real, key, fmt).endswith(("↓", "↑"))
    table.append(
        {
            "figure": "figures outside real music's range",
            **{
                k: ("—" if k == real["label"] else f"{v} of {len(YARDSTICK)}")
                for k, v in outside.items()
            },
        }
    )
    for key, name, fmt in SET_FIGURES:
        table.append(
            {
                "figure": name,
                **{r["label"]: "—" if r.get(key) is None else fmt.format(r[key]) for r in rows},
            }
        )
    common.print_table(table, [("figure", "", ""), *[(r["label"], r["label"], "") for r in rows]])
    print(f"{real['label']}'s kernel and Fréchet distances: {real.get('kid_note', '')}")
    for r in rows[1:]:
        if "departures" in r:
            text = ", ".join(f"{n} {z:+.1f}" for n, z in r["departures"])
            print(f"{r['label']}: furthest features (median, in real stds): {text}")


def requests(args, path: Path, seconds: float) -> dict:
    """What was asked of one file: its FILE.json if there is one, else --tempo / --chords."""
    asked = {"tempo": args.tempo, "beats": None, "chords": None, "chord_times": None}
    if args.chords:
        asked["chords"] = args.chords.split()
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        asked.update(json.loads(sidecar.read_text()))
    if asked["beats"] is None and asked["tempo"]:
        asked["beats"] = adherence.beat_grid(asked["tempo"], seconds, args.beat_offset).tolist()
    if asked["chords"] and asked["chord_times"] is None:
        if not asked["beats"]:
            raise SystemExit(f"{path}: chords asked without a tempo, beats or chord_times")
        starts = asked["beats"][:: args.beats_per_chord]
        reps = -(-len(starts) // len(asked["chords"]))  # a shorter progression repeats
        asked["chords"] = (asked["chords"] * reps)[: len(starts)]
        asked["chord_times"] = starts
    return asked


def print_adherence(args, real: dict, rate: int) -> None:
    """Per file: tempo detected against the tempo asked, beat F-measure against the grid asked,
    chord-chroma correlation; then medians beside real music's own figures (the ceiling)."""
    rows = []
    for path in wav_files(args.wav_dir):
        wav = audio.read(path, sample_rate=rate, channels=1)[0][0]
        asked = requests(args, path, len(wav) / rate)
        row = {"file": path.name}
        if asked["tempo"]:
            tempo = adherence.tempo_adherence(wav, rate, asked["tempo"])
            row.update(asked_bpm=asked["tempo"], **tempo)
        if asked["beats"]:
            row["beat_f"] = adherence.beat_f_measure(wav, rate, np.asarray(asked["beats"]))
        if asked["chords"]:
            row["chord_corr"] = adherence.chord_correlation(
                wav, rate, asked["chords"], np.asarray(asked["chord_times"])
            )
        rows.append(row)
    print()
    print("## Adherence: each file against what was asked")
    common.print_table(
        rows,
        [
            ("file", "file", ""),
            ("asked_bpm", "asked BPM", "{:.1f}"),
            ("detected_bpm", "detected BPM", "{:.1f}"),
            ("relative_error", "tempo error (raw)", "{:.3f}"),
            ("octave_error", "error after x1/2, x1, x2", "{:.3f}"),
            ("beat_f", "beat F vs grid asked", "{:.2f}"),
            ("chord_corr", "chord-chroma correlation", "{:.2f}"),
        ],
    )
    within = [r["relative_error"] <= 0.04 for r in rows if "relative_error" in r]
    beat_f = [r["beat_f"] for r in rows if "beat_f" in r]
    chords = [r["chord_corr"] for r in rows if "chord_corr" in r]
    if within:
        print(f"tempo within 4 % of the one asked (raw): {sum(within)} of {len(within)} files")
    if beat_f:
        print(
            f"beat F-measure: median {np.median(beat_f):.2f}; real music against its own "
            f"steady grid: median {real['own_beat_f_median']:.2f}"
        )
    if chords:
        print(
            f"chord-chroma correlation: median {np.median(chords):.2f}; real music against its "
            f"own triads: median {real['own_chord_corr_median']:.2f}"
        )
    common.save(f"{args.name}_adherence", {"command": common.command(), "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--priors",
        nargs="*",
        default=["shipped"],
        help="prior files; 'shipped': the package's; none (an empty list): no prior row",
    )
    parser.add_argument("--labels", nargs="+")
    parser.add_argument("--codec", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--num", type=int, default=8)
    # 8 prompts measured the shipped prior's margin at 0.289, 16 at 0.473 (real: 0.627, 0.647)
    parser.add_argument("--prompts", type=int, default=16, help="prompts for the margin")
    parser.add_argument("--seed", type=int, default=0)
    # the defaults of `vqaudio generate`
    parser.add_argument("--temperature", type=float, default=SHIPPED.temperature)
    parser.add_argument(
        "--top-k", type=common.top_k_levels, default=None, help="K, or K0,K1,.. per level; 0: off"
    )
    parser.add_argument(
        "--top-p",
        type=common.top_p_levels,
        default=SHIPPED.top_p,
        help="P, or P0,P1,.. per level (default: generate's)",
    )
    parser.add_argument(
        "--exact-hold",
        action=argparse.BooleanOptionalAction,
        default=SHIPPED.exact_hold,
        help="as generate's",
    )
    parser.add_argument(
        "--cache-scale",
        type=float,
        nargs="+",
        default=[1.0],
        help="as generate's; several: a row per prior and scale",
    )
    parser.add_argument(
        "--contrast",
        type=float,
        nargs="+",
        default=[SHIPPED.contrast],
        help="level 0's contrast to the context-free prior, as generate's; several: a row each",
    )
    parser.add_argument("--hold-cap", type=float, default=SHIPPED.hold_cap, help="as generate's")
    parser.add_argument(
        "--control-scale",
        type=float,
        nargs="+",
        default=[SHIPPED.control_scale],
        help="as generate's; several: a row each",
    )
    parser.add_argument(
        "--cache-by-chord",
        type=float,
        nargs="+",
        default=[SHIPPED.cache_by_chord],
        help="as generate's; several: a row each",
    )
    parser.add_argument(
        "--griffin-lim-iters", type=int, default=GENERATED_GRIFFIN_LIM_ITERS, help="as generate's"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", type=Path, help="write spectrogram + chromagram PNG here")
    parser.add_argument("--name", default="generation_music", help="results file name")
    parser.add_argument(
        "--codes-cache",
        type=Path,
        default=Path("runs/music-24k-prior/codes"),
        help="codes of the music, extracted once (the prior recipe's run folder shares them)",
    )
    parser.add_argument(
        "--ceiling-levels",
        type=int,
        nargs="+",
        help="levels of the real excerpts through the codec, a row each (default: the priors')",
    )
    parser.add_argument(
        "--recipe",
        type=Path,
        default=HERE.parent / "recipes" / "music-24k-prior.yaml",
        help="the prior recipe: memorisation is checked against every file it trains on",
    )
    add_yardstick_arguments(parser)
    args = parser.parse_args()
    args.priors = [None if p == "shipped" else p for p in args.priors]
    torch.set_num_threads(args.threads)
    info = common.machine()
    codec = load_codec(args.codec)
    rate = codec.config.sample_rate
    train_files, held = split_files(find_audio(common.MUSIC), common.HELD_OUT)
    try:
        recipe_train, recipe_held = recipe_files(load_recipe(args.recipe).data)
    except ConfigError as e:
        raise SystemExit(
            f"--recipe {args.recipe}: {e}; install the music it trains on (the recipe's "
            "comments name the packages) or pass another recipe"
        ) from None
    if recipe_held != held:
        raise SystemExit(f"--recipe {args.recipe} holds out other tracks than {common.MUSIC}")
    known = set(train_files)
    extra_files = [f for f in recipe_train if f not in known]
    tracks = [t for t in held if t.stem != "silence"]  # digital near-silence (see common.py)
    # the held-out and training codes at the most levels a prior models (each prior scores its own)
    modelled = {load_prior(p).config.num_levels for p in args.priors} or {NO_PRIOR_LEVELS}
    num_levels = args.num_levels = max(modelled)
    args.ceiling_levels = args.ceiling_levels or sorted(modelled)
    with torch.inference_mode():
        held_tokens = [cached_tokens(codec, t, num_levels, args.codes_cache) for t in tracks]
        if not args.memorisation:  # the training codes are needed only for KL and memorisation
            train_files, extra_files = train_files[:1], []
        train_tokens = [cached_tokens(codec, t, num_levels, args.codes_cache) for t in train_files]
        extra_tokens = [cached_tokens(codec, t, num_levels, args.codes_cache) for t in extra_files]
    per_block = int(len(token_levels(codec.config.level_strides[:num_levels])))
    size = codec.config.codebook_size
    # the KL's reference stays the codec's training music; memorisation covers all the prior's
    args.train_level0_tracks = [
        np.asarray(t[::per_block], np.int64) for t in train_tokens + extra_tokens
    ]
    train_level0 = np.concatenate(args.train_level0_tracks[: len(train_tokens)])
    excerpts, pairs = real_material(codec, tracks, args.seconds, args.num, args.prompts)
    with torch.inference_mode():  # encoded once: every ceiling row keeps a prefix of levels
        excerpt_codes = [codec.encode(torch.from_numpy(w)[None]) for w in excerpts]
        continuation_codes = [codec.encode(torch.from_numpy(c)[None]) for _, c in pairs]
    real_codes = [c.levels[0][0].numpy() for c in excerpt_codes]
    real = {"label": "real music", "kind": "held-out excerpts"}
    real.update(
        summarise([piece_metrics(w, c, rate, args.seconds) for w, c in zip(excerpts, real_codes)])
    )
    real["kl_level0"] = kl_divergence(np.concatenate(real_codes), train_level0, size)
    args.real_hold_s = real["l0_hold_s_range"][1]
    real["drones"] = 0  # by definition: the longest real hold is the bar
    frame_rate = rate / codec.config.block_samples
    real["memorised_s"] = (
        max(structure.longest_shared_run(c, args.train_level0_tracks) for c in real_codes)
        / frame_rate
    )
    real["continuation_margin"] = structure.continuation_margin(
        [structure.mean_chroma(p, rate) for p, _ in pairs],
        [structure.mean_chroma(c, rate) for _, c in pairs],
    )
    # the same excerpts and continuations through the codec (the priors' levels): what a perfect
    # prior of these codes would score, since every generated piece is decoded by this codec
    ceilings, decoded_at = [], {}
    for levels in args.ceiling_levels:
        row, decoded = through_codec(
            codec, excerpt_codes, continuation_codes, pairs, real_codes, levels, args.seconds
        )
        row.update(kl_level0=real["kl_level0"], memorised_s=real["memorised_s"])
        if len(args.ceiling_levels) > 1 or levels != num_levels:
            row["label"] += f", {levels} levels"
        ceilings.append(row)
        decoded_at[levels] = decoded
    rows, pictures = [real, *ceilings], []
    labels = args.labels or [str(p or "shipped") for p in args.priors]
    for label, path in zip(labels, args.priors, strict=True):
        for scale in args.cache_scale:
            settings = [
                (c, k, b)
                for c in args.contrast
                for k in args.control_scale
                for b in args.cache_by_chord
            ]
            follows = getattr(load_prior(path).config, "controls", 0)
            for contrast, control, by_chord in settings:
                if not follows and by_chord != args.cache_by_chord[0]:
                    continue  # no chords to count by: the same row again
                named = label if len(args.cache_scale) == 1 else f"{label}, cache {scale:g}"
                if len(args.contrast) > 1:
                    named += f", contrast {contrast:g}"
                if len(args.control_scale) > 1:
                    named += f", control scale {control:g}"
                if len(args.cache_by_chord) > 1 and follows:
                    named += f", cache by chord {by_chord:g}"
                row, wav = evaluate_prior(
                    args,
                    named,
                    path,
                    codec,
                    held_tokens,
                    train_level0,
                    excerpts,
                    pairs,
                    scale,
                    contrast,
                    control,
                    by_chord,
                )
                rows.append(row)
                pictures.append((named, wav))
    sets = {
        real["label"]: [w[0] for w in excerpts],
        **{
            row["label"]: [w[0].numpy() for w in decoded_at[lv]]
            for row, lv in zip(ceilings, args.ceiling_levels, strict=True)
        },
        **{label: list(wav) for label, wav in pictures},
    }
    if args.wav_dir:
        row, wavs = score_wav_dir(args, codec, real["l0_hold_s_range"][1])
        rows.append(row)
        sets[row["label"]] = wavs
    set_distances(rows, sets, rate)
    if not args.memorisation:
        for row in rows:
            row.update(kl_level0=None, memorised_s=None)
    spread = [
        ("label", "", ""),
        *[(f"{k}_range", f"{h} [min, max]", "") for k, h, _ in COLUMNS[3:6] + COLUMNS[8:14]],
    ]
    for row in rows:
        for key in list(row):
            if key.endswith("_range"):
                row[key] = [round(v, 3) for v in row[key]]
    notes = (
        f"{args.num} pieces of {args.seconds:g} s per row (seeds {args.seed}..), real excerpts "
        f"from {', '.join(t.name for t in tracks)}; sampling temperature {args.temperature:g}, "
        f"top-k {args.top_k}, top-p {args.top_p}, cache scale "
        f"{' / '.join(f'{c:g}' for c in args.cache_scale)}, "
        f"exact hold {args.exact_hold}, contrast {' / '.join(f'{c:g}' for c in args.contrast)}, "
        f"hold cap {args.hold_cap:g}; "
        f"{args.griffin_lim_iters} Griffin-Lim iterations; "
        f"{args.threads} threads; continuation margin over {len(pairs)} prompts of 10 s",
    )
    common.report(
        args.name,
        "Generated music beside real music",
        info,
        rows,
        COLUMNS,
        notes=notes,
        sampling={
            "temperature": args.temperature,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "cache_scale": args.cache_scale,
            "cache_by_chord": args.cache_by_chord,
            "exact_hold": args.exact_hold,
            "contrast": args.contrast,
            "hold_cap": args.hold_cap,
        },
    )
    common.print_table(rows, spread)
    for row in rows:
        se = ", ".join(f"{k} ±{row[k + '_se']:.3f}" for k in SE_FIGURES if k + "_se" in row)
        print(f"{row['label']}: standard error of the mean: {se}")
    print_yardstick(rows)
    if args.wav_dir and (args.adherence or args.tempo or args.chords):
        print_adherence(args, real, rate)
    for row in rows[1 + len(ceilings) :]:
        if "bits_per_level" not in row:
            continue
        per = ", ".join(f"L{k} {b:.2f}" for k, b in enumerate(row["bits_per_level"]))
        print(f"{row['label']}: bits/token per level {per}; sampling {row['sampling_s']:.1f} s")
    if args.plot:
        shown = num_levels if num_levels in decoded_at else args.ceiling_levels[0]
        through_label = "real, through the codec"
        through_label += "" if shown == num_levels else f" ({shown} levels)"
        first = [
            (f"{label}, seed {args.seed + i}", w[i]) for label, w in pictures[:1] for i in (0, 1)
        ]
        plot(
            args.plot,
            excerpts[0][0],
            [
                (f"real, through the codec ({shown} levels)", decoded_at[shown][0][0].numpy()),
                *first,
            ],
            rate,
        )
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
