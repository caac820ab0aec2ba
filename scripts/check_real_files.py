"""Compress and decompress every audio file under the given folders, and check the lengths.

    OMP_NUM_THREADS=1 python scripts/check_real_files.py /usr/share/games/wesnoth [--bitrate 6]
        [--codec model.safetensors] [--no-decode] [--jsonl results.jsonl]

For each file, one JSON line: the length it announces (``audio.info``), the samples decoded
from it (counted by ``audio.Stream``), the header's ``source_num_samples``, and the length of
the decompressed file at the source's rate. Exits 1 if any file fails to compress or decompress,
or comes back with another length than it decoded to. The summary counts the files whose
announced length is wrong, and by how much.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import soundfile as sf
import torch

from vqaudio import audio
from vqaudio.codec.io import load_codec
from vqaudio.errors import VqaudioError
from vqaudio.vqa.compress import compress, decompress


def check(codec, path: Path, folder: Path, bitrate: float, decode: bool) -> dict:
    row: dict = {"file": str(path)}
    began = time.perf_counter()
    try:
        info = audio.info(path)
        stream = audio.stream(path, 1 << 16)
        row.update(rate=info.sample_rate, announced=info.num_samples)
        row["decoded"] = sum(block.shape[1] for block in stream)
        header = compress(codec, path, folder / "x.vqa", bitrate=bitrate * 1000)
        row["header"] = header.source_num_samples
        if decode:
            decompress(folder / "x.vqa", folder / "x.wav", codec)
            row["back"] = sf.info(str(folder / "x.wav")).frames
        row["ok"] = (
            row["header"] == row["decoded"] and row.get("back", row["decoded"]) == row["decoded"]
        )
    except VqaudioError as e:
        row.update(ok=False, error=str(e))
    except Exception as e:  # a bug: keep going, report it
        row.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    row["seconds"] = round(time.perf_counter() - began, 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--bitrate", type=float, default=6.0, help="kbps")
    parser.add_argument("--codec", type=Path, default=None)
    parser.add_argument("--no-decode", action="store_true", help="compress only")
    parser.add_argument("--jsonl", type=Path, default=None, help="also append the rows here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = load_codec(args.codec)
    suffixes = audio.audio_suffixes()
    files = sorted(
        p for f in args.folders for p in [f, *f.rglob("*")]
        if p.is_file() and p.suffix.lower() in suffixes
    )  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for path in files:
            rows.append(check(codec, path, Path(folder), args.bitrate, not args.no_decode))
            line = json.dumps(rows[-1])
            print(line, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(line + "\n")
    wrong = [r for r in rows if "decoded" in r and r["announced"] != r["decoded"]]
    off = sorted(r["announced"] - r["decoded"] for r in wrong)
    failed = [r for r in rows if not r["ok"]]
    print(
        f"{len(rows)} files, {len(rows) - len(failed)} round trips with the decoded length back; "
        f"{len(wrong)} announce a wrong length"
        + (f" (announced - decoded: {off[0]} … {off[-1]} samples)" if off else ""),
        file=sys.stderr,
    )
    for r in failed:
        print(f"FAILED {r['file']}: {r.get('error', r)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
