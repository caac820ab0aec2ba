"""Made once with the format version 5 writer (band levels in each chunk), from the
codes of golden-v1-entropy.vqa, coded with context-range, plus fixed band levels (3 bands, spans
of 5 blocks) kept in golden-v5-levels.json."""

import json

import numpy as np

from vqaudio.vqa.chunk import pack_chunk
from vqaudio.vqa.container import VqaWriter
from vqaudio.vqa.header import Header

codes = json.load(open("tests/golden/golden-v1-codes.json"))["golden-v1-entropy.vqa"]
header = Header(
    codec_id="0123456789abcdef",
    code_space_id="fedcba9876543210",
    sample_rate=8000,
    channels=2,
    num_samples=1000,  # 63 blocks of 16 samples -> 4 chunks (20, 20, 20, 3 blocks)
    source_sample_rate=8000,
    source_num_samples=1000,
    hop_length=8,
    codebook_size=16,
    level_strides=(2, 1),
    levels_per_channel=(2, 1),
    channel_coding="mid_side",
    chunk_blocks=20,
    entropy_coder="context-range",
    bitrate=6000.0,
    band_edges=(0, 1000, 2500),
    band_span_blocks=5,
)
rng = np.random.default_rng(5)
levels = []
writer = VqaWriter("tests/golden/golden-v5-context.vqa", header)
for k, streams in enumerate(codes):
    shape = header.band_level_shape(len(streams[0]))
    values = (-30 + np.cumsum(rng.integers(-6, 7, size=shape), axis=-1)).clip(-120, 20)
    values[0, 0, 0] = -120 if k == 0 else values[0, 0, 0]  # the extremes of the range
    values[1, 2, -1] = 20 if k == 1 else values[1, 2, -1]
    levels.append(values.tolist())
    writer.write_chunk(pack_chunk([np.array(s) for s in streams], header, True, values))
writer.close(num_samples=1000)
json.dump({"golden-v5-context.vqa": levels}, open("tests/golden/golden-v5-levels.json", "w"))
