"""Where do generated pieces lose their notes? Chroma peak by level, real against generated.

Generated pieces are mostly pitchless textures (chroma peak ~2.0 against real music's 3.85, the
same through the codec ~3.35). This probe splits the loss between the levels a frame prior draws:

- real held-out excerpts, raw and through the codec keeping the first k levels (k = 1 .. 5);
- the prior's own pieces, decoded keeping their first k levels;
- hybrids: the real excerpt's first m levels given (teacher-forced, m = 1, 2), the prior drawing
  the finer levels under them (the same sampling settings as ``vqaudio generate``).

If the hybrids keep the real excerpt's peak, the finer draws are fine and the coarse sequence
is where the notes are lost; if they fall to the generated pieces' peak, the finer draws smear
the notes the coarse codes carry.

With ``--code-peaks``, which level-0 codes are drawn: each of the codebook's codes is held alone
for 2 s and decoded with level 0 only; its chroma peak, weighted by how often a source uses the
code, gives the source's mean code peak (training music, held-out music, the prior's pieces
without and with generate's contrast and hold cap), and the peak of the 20 codes the prior
finds likeliest with no context (``generation.contrast_offsets``).

    python experiments/tonal_probe.py --num 6
    python experiments/tonal_probe.py --num 6 --code-peaks --codes-cache runs/prior-more/codes
    python experiments/tonal_probe.py --prior runs/roll04/model.safetensors --name tonal_roll04

Writes benchmarks/results/tonal_probe.json (or --name).
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

from vqaudio import load_codec, load_prior  # noqa: E402
from vqaudio.codes import Codes, token_levels  # noqa: E402
from vqaudio.eval import structure  # noqa: E402
from vqaudio.generation import (  # noqa: E402
    GENERATED_GRIFFIN_LIM_ITERS,
    contrast_offsets,
    decode_codes,
    sample_tokens,
)
from vqaudio.prior.sampling import SHIPPED, Sampling, sample_next  # noqa: E402


def forced_sample(prior, given: torch.Tensor, forced_levels: int, seed: int, top_p) -> torch.Tensor:
    """Tokens (B, N): at the slots of the first ``forced_levels`` levels the tokens of ``given``
    (B, N); at the others a draw from the prior given everything before (KV-cached stream),
    with ``top_p`` per level and the exact hold at level 0 (generate's defaults)."""
    config = prior.config
    every = config.tokens_per_block
    levels = token_levels(config.level_strides).tolist()
    slot_p = [Sampling(top_p=top_p).per_level(config.num_levels)[1][level] for level in levels]
    batch, length = given.shape
    generator = [torch.Generator().manual_seed(seed + b) for b in range(batch)]
    tokens = torch.empty_like(given)
    with torch.inference_mode():
        stream = prior.stream(given[:, :0])
        for i in range(length):
            slot = i % every
            lo, hi = prior.slot_ranges[slot]
            if levels[slot] < forced_levels:
                token = given[:, i]
            else:
                logits = stream.slot_logits((lo, hi))
                held = tokens[:, i - every] - lo if levels[slot] == 0 and i >= every else None
                token = sample_next(logits, 1.0, None, slot_p[slot], generator, held) + lo
            tokens[:, i] = token
            if i + 1 < length:
                stream.push(token)
    return tokens


def peaks(codec, tokens: torch.Tensor, strides, size: int, samples: int, keep: int) -> list[float]:
    """Chroma peak of each row of ``tokens`` decoded with its first ``keep`` levels."""
    codes = Codes.from_tokens(tokens, strides, size, samples).keep(keep)
    with torch.inference_mode():
        wav = decode_codes(codec, codes, griffin_lim_iters=GENERATED_GRIFFIN_LIM_ITERS)
    rate = codec.config.sample_rate
    return [structure.chroma_peak(w, rate) for w in wav[:, 0].numpy()]


def code_peaks(codec, seconds: float = 2.0) -> np.ndarray:
    """(codebook,) chroma peak of each level-0 code held alone for ``seconds`` (level 0 only,
    the first and last 0.5 s cut off)."""
    config, rate = codec.config, codec.config.sample_rate
    blocks = round(seconds * rate / config.block_samples)
    out = np.zeros(config.codebook_size)
    for first in range(0, config.codebook_size, 64):
        ids = torch.arange(first, min(first + 64, config.codebook_size))
        codes = Codes([ids[:, None].repeat(1, blocks)], config.level_strides[:1])
        with torch.inference_mode():
            wav = codec.decode(codes)[:, 0].numpy()
        for j, w in enumerate(wav):
            out[first + j] = structure.chroma_peak(w[rate // 2 : -rate // 2], rate)
    return out


def level0(tokens, per_block: int) -> np.ndarray:
    """The level-0 codes of flattened tokens (level 0 is each frame's first token)."""
    return np.asarray(tokens)[::per_block]


def code_rows(args, codec, prior, generated: torch.Tensor) -> list[dict]:
    """Mean level-0 code peak per source (--code-peaks)."""
    from vqaudio.train.data import find_audio, split_files
    from vqaudio.train.prior_task import cached_tokens

    peak = code_peaks(codec)
    per_block = prior.config.tokens_per_block
    train, held = split_files(find_audio(common.MUSIC), common.HELD_OUT)
    held = [t for t in held if t.stem != "silence"]
    with torch.inference_mode():

        def codes_of(files):
            return np.concatenate(
                [
                    level0(
                        cached_tokens(codec, f, prior.config.num_levels, args.codes_cache),
                        per_block,
                    )
                    for f in files
                ]
            )

        sources = {"training music": codes_of(train), "held-out music": codes_of(held)}
    sources["the prior's pieces, contrast 0, no cap"] = level0(generated.reshape(-1), per_block)
    tuned = sample_tokens(
        prior,
        generated.shape[1],
        torch.zeros(generated.shape[0], 0, dtype=torch.long),
        SHIPPED,
        args.seed,
    )
    sources[f"the same, contrast {SHIPPED.contrast:g}, cap {SHIPPED.hold_cap:g}"] = level0(
        tuned.reshape(-1), per_block
    )
    rows = [
        {
            "source": name,
            "frames": len(codes),
            "mean_code_peak": float(peak[codes].mean()),
            "share_peak_over_2_5": float(np.mean(peak[codes] > 2.5)),
        }
        for name, codes in sources.items()
    ]
    likeliest = np.argsort(contrast_offsets(prior, 1.0)[0].numpy())[:20]  # -log p, ascending
    rows.append(
        {
            "source": "the 20 codes likeliest with no context",
            "frames": 20,
            "mean_code_peak": float(peak[likeliest].mean()),
            "share_peak_over_2_5": float(np.mean(peak[likeliest] > 2.5)),
        }
    )
    rows.append(
        {
            "source": "every code once",
            "frames": len(peak),
            "mean_code_peak": float(peak.mean()),
            "share_peak_over_2_5": float(np.mean(peak > 2.5)),
        }
    )
    for row in rows:
        print(f"{row['source']:48s} {row['mean_code_peak']:.2f}  {row['share_peak_over_2_5']:.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prior", default="vqaudio/models/prior.safetensors")
    parser.add_argument("--codec", default="vqaudio/models/codec.safetensors")
    parser.add_argument("--num", type=int, default=6, help="excerpts and pieces")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="tonal_probe")
    parser.add_argument("--code-peaks", action="store_true", help="which level-0 codes are drawn")
    parser.add_argument(
        "--codes-cache",
        type=Path,
        default=Path("runs/music-24k-prior/codes"),
        help="codes of the music, extracted once (the prior recipe's run folder shares them)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    codec, prior = load_codec(args.codec), load_prior(args.prior)
    config, rate = prior.config, codec.config.sample_rate
    strides, size = config.level_strides, config.codebook_size
    tracks = common.held_out_tracks()
    per_track = -(-args.num // len(tracks)) + 1
    excerpts = [w for _, w in common.music_clips(tracks, args.seconds, per_track, rate)]
    excerpts = excerpts[: args.num]
    block = codec.config.block_samples
    samples = len(excerpts[0][0]) // block * block
    wav = torch.from_numpy(np.stack([e[:, :samples] for e in excerpts]))
    with torch.inference_mode():
        real = codec.encode(wav).keep(config.num_levels).to_tokens(size)

    rows = []

    def add(label: str, values: list[float]) -> None:
        rows.append(
            {
                "source": label,
                "chroma_peak": float(np.mean(values)),
                "range": [float(min(values)), float(max(values))],
            }
        )
        print(
            f"{label:48s} {np.mean(values):.2f}  [{min(values):.2f}, {max(values):.2f}]", flush=True
        )

    add("real, raw audio", [structure.chroma_peak(w[:, :samples], rate) for w in excerpts])
    for keep in range(1, config.num_levels + 1):
        add(
            f"real through the codec, {keep} levels",
            peaks(codec, real, strides, size, samples, keep),
        )
    sampling = {"top_p": SHIPPED.top_p, "exact_hold": SHIPPED.exact_hold}
    generated = sample_tokens(
        prior,
        real.shape[1],
        torch.zeros(args.num, 0, dtype=torch.long),
        Sampling(**sampling),
        args.seed,
    )
    for keep in range(1, config.num_levels + 1):
        add(f"generated, {keep} levels", peaks(codec, generated, strides, size, samples, keep))
    for forced in (1, 2):
        hybrid = forced_sample(prior, real, forced, args.seed, SHIPPED.top_p)
        add(
            f"real levels 0-{forced - 1}, prior draws the rest",
            peaks(codec, hybrid, strides, size, samples, config.num_levels),
        )
    codes = code_rows(args, codec, prior, generated) if args.code_peaks else []
    common.report(
        args.name,
        "Chroma peak by level: real against generated",
        common.machine(),
        rows,
        [("source", "source", ""), ("chroma_peak", "chroma peak", "{:.2f}")],
        prior=args.prior,
        codec=args.codec,
        num=args.num,
        seconds=args.seconds,
        seed=args.seed,
        sampling=f"top-p {SHIPPED.top_p}, exact hold {SHIPPED.exact_hold}, no contrast, no cap",
        code_peaks=codes,
    )


if __name__ == "__main__":
    main()
