"""The README's Python example runs as written (on a short synthetic song)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the README lost its Python example"
    t = np.arange(3 * 24000) / 24000
    song = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    sf.write(tmp_path / "song.wav", song.astype(np.float32), 24000)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), str(README), "exec"), scope)  # noqa: S102
    assert (tmp_path / "song.vqa").read_bytes()[:4] == b"VQAU"
    assert sf.info(tmp_path / "out.wav").duration > 2.9
    wav, wav_hat = scope["wav"], scope["wav_hat"]
    assert wav.shape == wav_hat.shape and wav.shape[-1] >= 5 * 24000
