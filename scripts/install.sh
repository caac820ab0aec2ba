#!/usr/bin/env bash
# Install vqaudio and its test tools into the current Python environment.
# Where no torch is installed, install the CPU build first: a bare `torch` requirement would
# otherwise pull several GB of CUDA wheels. GPU users: install the torch build for your CUDA
# version first (https://pytorch.org/get-started/locally/), then run this script; it keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --retries 0 --timeout 15 "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
        || "$PY" -m pip install "torch==2.13.0"
fi
"$PY" -m pip install -e ".[test]"
