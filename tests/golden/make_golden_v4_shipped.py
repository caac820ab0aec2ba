"""Made once, with the format version 4 writer and the codec shipped at that time (da5a9e70…,
vqaudio/models/codec.safetensors of 2026-12-01; the file records its code space): 3 s of two
harmonic tones, compressed at the default 6 kbps. tests/test_code_space.py checks that a codec
with a retrained decoder (the same code space) still decodes it, and that one with another
encoder or codebook refuses it.

    OMP_NUM_THREADS=1 python tests/golden/make_golden_v4_shipped.py
"""

import numpy as np
import torch

from vqaudio import audio, compress, load_codec

torch.set_num_threads(1)
rate = 24000
t = np.arange(3 * rate) / rate
wav = sum((0.3 / k) * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6))
wav[rate:] += 0.2 * np.sin(2 * np.pi * 330 * t[rate:])
audio.write("/tmp/golden-shipped.wav", wav[None].astype(np.float32), rate)
compress(load_codec(), "/tmp/golden-shipped.wav", "tests/golden/golden-v4-shipped.vqa")
