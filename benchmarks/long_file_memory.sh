#!/usr/bin/env bash
# Peak memory of `vqaudio compress` / `decompress` on a 1-minute vs a 30-minute file (the same
# 60 s of held-out music, looped), default codec, 6 kbps, 1 thread. Needs Debian's
# wesnoth-1.16-music and GNU time (/usr/bin/time). Writes into ${TMPDIR:-/tmp}/vqaudio-mem.
#   bash benchmarks/long_file_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${TMPDIR:-/tmp}/vqaudio-mem"
mkdir -p "$out"
python - "$out" <<'PY'
import sys
import soundfile as sf
out = sys.argv[1]
src = "/usr/share/games/wesnoth/1.16/data/core/music/traveling_minstrels.ogg"
clip, rate = sf.read(src, start=44100 * 30, frames=44100 * 60, dtype="float32")
sf.write(f"{out}/1min.wav", clip, rate)
with sf.SoundFile(f"{out}/30min.wav", "w", rate, clip.shape[1], "PCM_16") as f:
    for _ in range(30):
        f.write(clip)
PY
export OMP_NUM_THREADS=1
for name in 1min 30min; do
  /usr/bin/time -f "$name compress: peak %M kB, %e s" vqaudio compress "$out/$name.wav" -o "$out/$name.vqa" -f -q
  /usr/bin/time -f "$name decompress: peak %M kB, %e s" vqaudio decompress "$out/$name.vqa" -o "$out/$name.out.wav" -f -q
done
