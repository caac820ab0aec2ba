"""Hostile .vqa files: mutated bytes and crafted headers/chunks with valid CRCs.

Every case decodes or raises FormatError; nothing else, no output left, bounded time and memory.
A longer run: ``python scripts/fuzz.py --cases 20000``.
"""

import pytest
import torch

from . import fuzz
from .conftest import diverse_codec

CASES = 320  # 40 of each mutation kind; ~5 s on one core


@pytest.fixture(scope="module")
def codec():
    return diverse_codec()


@pytest.fixture(scope="module")
def seeds(codec, tmp_path_factory):
    return fuzz.make_seeds(codec, tmp_path_factory.mktemp("seeds"))


def test_mutated_and_crafted_files_decode_or_raise_format_error(codec, seeds, tmp_path):
    torch.manual_seed(0)
    report = fuzz.run(seeds, CASES, tmp_path, codec, seed=12, time_limit=5.0)
    print(report.summary())
    assert report.crashes == []
    assert report.cases == CASES
    assert report.refused >= 0.8 * CASES  # the mutations do reach the checks
    assert report.peak_bytes < 64 * 2**20


def test_each_crafted_header_field_is_refused_by_name(seeds, tmp_path):
    split = fuzz.Split.of(seeds[0])
    for key, value in [
        ("channels", 10**5),
        ("channels", 1),
        ("source_num_samples", 10**10),
        ("source_sample_rate", 10**9),
        ("level_strides", [0, 1]),
        ("chunk_blocks", 10**6),
        ("levels_per_channel", [2, 5]),
        ("codebook_size", 2**31),
        ("bitrate", float("nan")),
    ]:
        crafted = fuzz.Split(split.version, {**split.header, key: value}, split.chunks)
        path = tmp_path / "x.vqa"
        path.write_bytes(crafted.to_bytes())
        with pytest.raises(fuzz.FormatError, match=f"header field {key} "):
            fuzz.VqaReader(path)


def test_mutated_and_crafted_model_files_load_or_raise_checkpoint_error(tmp_path):
    import json
    import struct

    import numpy as np

    from vqaudio.checkpoint import inspect_model
    from vqaudio.codec.io import CODEC_FILE, load_codec, save_codec
    from vqaudio.errors import CheckpointError

    good = tmp_path / "codec.safetensors"
    save_codec(diverse_codec(), good)
    data = good.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    config = json.loads(header["__metadata__"]["vqaudio.config"])
    rng = np.random.default_rng(5)
    crashes, refused = [], 0
    for i in range(120):
        kind = ("flip", "truncate", "config")[i % 3]
        if kind == "flip":
            bad = bytearray(data)
            bad[int(rng.integers(min(len(bad), 8 + n + 64)))] ^= int(rng.integers(1, 256))
            bad = bytes(bad)
        elif kind == "truncate":
            bad = data[: int(rng.integers(len(data)))]
        else:
            key = str(rng.choice(sorted(config)))
            value = fuzz.HOSTILE[int(rng.integers(len(fuzz.HOSTILE)))]
            meta = {**header["__metadata__"], "vqaudio.config": json.dumps({**config, key: value})}
            body = json.dumps({**header, "__metadata__": meta}).encode()
            body += b" " * (-len(body) % 8)
            bad = struct.pack("<Q", len(body)) + body + data[8 + n :]
        path = tmp_path / "case.safetensors"
        path.write_bytes(bad)
        for load in (lambda p: inspect_model(p, {"codec": CODEC_FILE}), load_codec):
            try:
                load(path)
            except CheckpointError:
                refused += 1
            except Exception as e:  # anything else is a finding
                crashes.append(f"{kind}: {type(e).__name__}: {e}"[:200])
    assert crashes == []
    assert refused >= 120
