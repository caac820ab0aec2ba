"""Decoding time of codec files side by side: alternating runs in one process, medians.

For one held-out clip of 10 s at 6 kbps, at one thread, each codec's ``Codec.decode`` of the
clip's codes, ``decompress`` of its ``.vqa`` file (chunked, band levels) and the Griffin-Lim
rendering alone, each repeated ``--runs`` times with the codecs taking turns, so a noisy machine
slows them alike. Compare codec files of one code space that render differently, e.g. a file
re-saved with ``phase_init: zero`` and 32 iterations against the shipped one.

    python benchmarks/decode_time.py OLD.safetensors vqaudio/models/codec.safetensors

Prints the medians in seconds; writes benchmarks/results/decode_time.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from vqaudio import audio, load_codec  # noqa: E402
from vqaudio.vqa.compress import compress, decompress  # noqa: E402


def timed_steps(codec, clip, vqa: Path) -> dict[str, float]:
    """Seconds of each decoding step for ``clip`` (C, T) and its ``.vqa`` file."""
    codes = codec.encode(torch.from_numpy(clip)[None])
    out = {}
    with torch.inference_mode():
        start = time.perf_counter()
        codec.decode(codes)
        out["decode"] = time.perf_counter() - start
        start = time.perf_counter()
        decompress(vqa, vqa.with_suffix(".wav"), codec)
        out["decompress"] = time.perf_counter() - start
        log_mag = codec.decoder.log_magnitude(codec.quantizer.decode(codes))
        start = time.perf_counter()
        codec.decoder.render(log_mag, codes.num_levels)
        out["griffin_lim"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("codecs", nargs="+", help="codec files")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--name", default="decode_time")
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = common.machine()
    codecs = {path: load_codec(path) for path in args.codecs}
    rate = next(iter(codecs.values())).sample_rate
    name, clip = common.music_clips(common.held_out_tracks(), 10.0, 1, rate)[-1]
    times: dict[str, dict[str, list[float]]] = {p: {} for p in codecs}
    with tempfile.TemporaryDirectory(prefix="vqaudio-decode-time-") as tmp_name:
        tmp = Path(tmp_name)
        audio.write(tmp / "clip.wav", clip, rate)
        for k, codec in enumerate(codecs.values()):
            compress(codec, tmp / "clip.wav", tmp / f"{k}.vqa", bitrate=6000)
        for _ in range(args.runs):
            for k, (path, codec) in enumerate(codecs.items()):
                for step, seconds in timed_steps(codec, clip, tmp / f"{k}.vqa").items():
                    times[path].setdefault(step, []).append(seconds)
    rows = []
    for path, codec in codecs.items():
        row = {"codec": f"{path} ({codec.checkpoint_id[:8]})"}
        row["render"] = f"{codec.decoder.phase_init}, {codec.config.griffin_lim_iters}"
        row.update({step: statistics.median(values) for step, values in times[path].items()})
        rows.append(row)
    common.report(
        args.name,
        "Decoding time, 10 s at 6 kbps, 1 thread (medians of alternating runs)",
        info,
        rows,
        [
            ("codec", "codec", ""),
            ("render", "start, iterations", ""),
            ("decode", "Codec.decode s", "{:.3f}"),
            ("decompress", "decompress s", "{:.3f}"),
            ("griffin_lim", "Griffin-Lim s", "{:.3f}"),
        ],
        notes=(f"clip: {name}, {args.runs} runs each",),
    )


if __name__ == "__main__":
    main()
