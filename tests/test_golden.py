"""Files written by earlier versions keep decoding bit-exactly (tests/golden, made with fixed codes,
so they depend on neither the shipped model nor a codec's random init)."""

import json
from pathlib import Path

import numpy as np
import pytest

from vqaudio import entropy
from vqaudio.bitstream import VqaReader

DATA = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["golden-v1-entropy.vqa", "golden-v1-packed.vqa"])
def test_golden_vqa_decodes_to_its_codes(name):
    expected = json.loads((DATA / "golden-v1-codes.json").read_text())[name]
    with VqaReader(DATA / name) as reader:
        assert reader.header.num_samples == 1000
        assert reader.header.channel_coding == "mid_side"
        assert reader.num_chunks == len(expected) == 4
        for k, streams in enumerate(expected):
            got = reader.read_chunk(k)
            assert [s.tolist() for s in got] == streams


def test_golden_entropy_payload_decodes_bit_exactly():
    expected = json.loads((DATA / "golden-entropy.json").read_text())
    data = (DATA / "golden-entropy.bin").read_bytes()
    streams = [np.array(s, dtype=np.int64) for s in expected["streams"]]
    sizes = expected["alphabet_sizes"]
    decoded = entropy.decode(data, [len(s) for s in streams], sizes)
    assert [d.tolist() for d in decoded] == expected["streams"]
    assert entropy.encode(streams, sizes) == data  # the encoder still writes the same bytes
