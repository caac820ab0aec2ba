"""Made once with the format version 2 writer (Header then took ``levels``, now
``levels_per_channel``)."""

import numpy as np

from vqaudio.vqa.chunk import pack_chunk
from vqaudio.vqa.container import VqaWriter
from vqaudio.vqa.header import Header


def header(entropy_coder):
    return Header(
        codec_id="0123456789abcdef",
        sample_rate=8000,
        channels=2,
        num_samples=1000,
        source_sample_rate=8000,
        source_num_samples=1000,
        hop_length=8,
        codebook_size=16,
        level_strides=(2, 1),
        levels=(2, 1),
        channel_coding="mid_side",
        chunk_blocks=20,
        entropy_coder=entropy_coder,
        bitrate=6000.0,
    )


rng = np.random.default_rng(20240612)
num_samples = 1000  # 63 blocks of 16 samples -> 4 chunks (20, 20, 20, 3 blocks)
expected = {}
for name, coded in (("golden-v2-entropy.vqa", True), ("golden-v2-packed.vqa", False)):
    h = header("adaptive-range" if coded else "none")
    final = Header(**{**h.__dict__, "num_samples": num_samples})
    w = VqaWriter(f"tests/golden/{name}", h)
    chunks = []
    for k in range(final.num_chunks):
        a, b = final.chunk_range(k)
        streams = [np.minimum(rng.zipf(2.5, n) - 1, 15) for n in final.stream_lengths(b - a)]
        w.write_chunk(pack_chunk(streams, final, coded))
        chunks.append([s.tolist() for s in streams])
    w.close(num_samples=num_samples)
    expected[name] = chunks
# The codes are those of golden-v1-codes.json (the same generator and draws).
