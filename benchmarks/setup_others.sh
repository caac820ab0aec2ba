#!/usr/bin/env bash
# Creates benchmarks/.venv-others with EnCodec, SNAC and DAC for benchmarks/codec_speed.py.
# The venv reuses the system's CPU torch (--system-site-packages) and installs each package with
# --no-deps, plus the small pure-Python modules they import at import time, so no second torch and
# nothing heavy comes in. None of this is a dependency of vqaudio. No model weights are downloaded:
# the benchmark builds every model with random weights in its published configuration.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv-others
python -m venv --system-site-packages "$VENV"
PIP="$VENV/bin/pip install --quiet --no-deps"
$PIP encodec==0.1.1 snac==1.2.1
# descript-audio-codec imports descript-audiotools at import time, which imports argbind, julius,
# flatten-dict, ffmpy, randomname (+ fire), pyloudnorm, importlib-resources, markdown2 and
# tensorboard (torch.utils.tensorboard in audiotools.ml) and tqdm.
$PIP descript-audio-codec==1.0.0 descript-audiotools==0.7.2 argbind docstring-parser julius \
    flatten-dict ffmpy randomname fire termcolor pyloudnorm importlib-resources markdown2 \
    tensorboard tensorboard-data-server absl-py markdown werkzeug grpcio protobuf tqdm
# torchaudio: encodec and audiotools import it at module level (for file I/O and resampling, which
# the benchmark never calls). PyPI has no torchaudio for every torch; try the newest, and let the
# worker fall back to an empty stand-in module if it cannot be imported (see codec_speed.py).
# torchaudio: encodec and audiotools import it at module level (file I/O, resampling), which the
# benchmark never calls; PyPI has no torchaudio built for every torch (2.13 has none), so the worker
# puts an empty stand-in module in its place when the real one cannot be imported.
"$VENV/bin/python" - <<'PY'
for name in ("encodec", "snac", "dac"):
    try:
        __import__(name)
        print(f"{name}: ok")
    except Exception as e:  # report, the benchmark marks the row unavailable
        print(f"{name}: cannot import ({type(e).__name__}: {e})")
PY
