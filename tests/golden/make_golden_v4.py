"""Made once with the format version 4 writer (binary header with code_space_id), from the
codes of golden-v1-codes.json, so every version's golden files hold the same codes;
golden-v4-context.vqa holds golden-v1-entropy.vqa's codes, coded with context-range."""

import json

import numpy as np

from vqaudio.vqa.chunk import pack_chunk
from vqaudio.vqa.container import VqaWriter
from vqaudio.vqa.header import Header

codes = json.load(open("tests/golden/golden-v1-codes.json"))
for coding, coder in (
    ("entropy", "adaptive-range"),
    ("packed", "none"),
    ("context", "context-range"),
):
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
        entropy_coder=coder,
        bitrate=6000.0,
    )
    writer = VqaWriter(f"tests/golden/golden-v4-{coding}.vqa", header)
    source = "entropy" if coding == "context" else coding  # context: the entropy file's codes
    for streams in codes[f"golden-v1-{source}.vqa"]:
        writer.write_chunk(pack_chunk([np.array(s) for s in streams], header, coder != "none"))
    writer.close(num_samples=1000)
