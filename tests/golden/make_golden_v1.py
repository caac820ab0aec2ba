"""Made once with vqaudio at commit 7ba3c96 (format version 1 writer; Header then took
``levels``, now ``levels_per_channel``)."""

import json

import numpy as np

from vqaudio.vqa import entropy
from vqaudio.vqa.chunk import pack_chunk
from vqaudio.vqa.container import VqaWriter
from vqaudio.vqa.header import Header


def header(entropy_coder):
    return Header(
        codec_id="0123456789abcdef",
        sample_rate=8000,
        channels=2,
        num_samples=1,
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
for name, coded in (("golden-v1-entropy.vqa", True), ("golden-v1-packed.vqa", False)):
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
json.dump(expected, open("tests/golden/golden-v1-codes.json", "w"), separators=(",", ":"))
streams = [
    np.minimum(rng.zipf(1.4, 300) - 1, 1023),
    rng.integers(0, 2, 50),
    np.zeros(0, int),
    np.full(40, 15),
]
sizes = [1024, 2, 16, 16]
open("tests/golden/golden-entropy.bin", "wb").write(entropy.encode(streams, sizes))
json.dump(
    {"alphabet_sizes": sizes, "streams": [s.tolist() for s in streams]},
    open("tests/golden/golden-entropy.json", "w"),
    separators=(",", ":"),
)
