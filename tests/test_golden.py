"""Files written by earlier versions keep decoding bit-exactly (tests/golden, made with fixed codes,
so they depend on neither the shipped model nor a codec's random init)."""

import json
from pathlib import Path

import numpy as np
import pytest

from vqaudio.errors import FormatError
from vqaudio.vqa import entropy
from vqaudio.vqa.container import VqaReader

from . import fuzz

DATA = Path(__file__).parent / "golden"


@pytest.mark.parametrize("version", [1, 2, 3, 4])
@pytest.mark.parametrize("coding", ["entropy", "packed"])
def test_golden_vqa_decodes_to_its_codes(version, coding):
    expected = json.loads((DATA / "golden-v1-codes.json").read_text())[f"golden-v1-{coding}.vqa"]
    with VqaReader(DATA / f"golden-v{version}-{coding}.vqa") as reader:
        assert reader.version == version
        assert reader.header.num_samples == 1000
        assert reader.header.channel_coding == "mid_side"
        assert reader.num_chunks == len(expected) == 4
        for k, streams in enumerate(expected):
            got = reader.read_chunk(k)
            assert [s.tolist() for s in got] == streams


def test_golden_context_range_file_decodes_to_its_codes():
    """Format 4's context-range coder (the first three chunks context-coded, the short last
    one packed: the smaller coding wins)."""
    expected = json.loads((DATA / "golden-v1-codes.json").read_text())["golden-v1-entropy.vqa"]
    with VqaReader(DATA / "golden-v4-context.vqa") as reader:
        assert reader.version == 4 and reader.header.entropy_coder == "context-range"
        codings = []
        for k, streams in enumerate(expected):
            assert [s.tolist() for s in reader.read_chunk(k)] == streams
            reader._file.seek(int(reader._offsets[k]))
            codings.append(reader._file.read(1))
        assert codings[:3] == [b"\x01"] * 3  # entropy-coded


def test_golden_v5_file_decodes_to_its_codes_and_band_levels():
    """Format 5: each chunk starts with its band levels (3 bands, spans of 5 blocks; the last,
    3-block chunk has one short span), then the codes as in format 4."""
    codes = json.loads((DATA / "golden-v1-codes.json").read_text())["golden-v1-entropy.vqa"]
    levels = json.loads((DATA / "golden-v5-levels.json").read_text())["golden-v5-context.vqa"]
    with VqaReader(DATA / "golden-v5-context.vqa") as reader:
        assert reader.version == 5
        assert reader.header.band_edges == (0, 1000, 2500)
        assert reader.header.band_span_blocks == 5
        for k, streams in enumerate(codes):
            got, values = reader.read_chunk_levels(k)
            assert [s.tolist() for s in got] == streams
            assert values.tolist() == levels[k]
        assert [len(v[0][0]) for v in levels] == [4, 4, 4, 1]


def test_golden_entropy_payload_decodes_bit_exactly():
    expected = json.loads((DATA / "golden-entropy.json").read_text())
    data = (DATA / "golden-entropy.bin").read_bytes()
    streams = [np.array(s, dtype=np.int64) for s in expected["streams"]]
    sizes = expected["alphabet_sizes"]
    decoded = entropy.decode(data, [len(s) for s in streams], sizes)
    assert [d.tolist() for d in decoded] == expected["streams"]
    assert entropy.encode(streams, sizes) == data  # the encoder still writes the same bytes


def test_swapped_chunks_of_equal_size_are_caught_from_version_2_on(tmp_path):
    """Chunks 0 and 1 of the golden files have the same size; swap them, CRCs included."""
    for version in (1, 2, 3, 4):
        data = (DATA / f"golden-v{version}-entropy.vqa").read_bytes()
        with VqaReader(DATA / f"golden-v{version}-entropy.vqa") as reader:
            start, sizes = int(reader._offsets[0]), reader.header.chunk_bytes
        assert sizes[0] == sizes[1]
        a, b = data[start : start + sizes[0]], data[start + sizes[0] : start + 2 * sizes[0]]
        swapped = data[:start] + b + a + data[start + 2 * sizes[0] :]
        path = tmp_path / f"swapped-v{version}.vqa"
        path.write_bytes(swapped)
        with VqaReader(path) as reader:
            if version == 1:  # undetectable in version 1: the chunks just trade places
                assert reader.read_chunk(0) is not None
            else:
                with pytest.raises(FormatError, match="checksum mismatch in chunk 0"):
                    reader.read_chunk(0)


@pytest.mark.parametrize(
    "version, old, new", [(2, "levels", "levels_per_channel"), (3, "levels_per_channel", "levels")]
)
def test_level_counts_are_levels_before_version_3_and_levels_per_channel_from_it(
    tmp_path, version, old, new
):
    """Versions 1-2 store Header.levels_per_channel as ``levels``; neither version reads the
    other's key."""
    split = fuzz.Split.of((DATA / f"golden-v{version}-packed.vqa").read_bytes())
    header = {new if k == old else k: v for k, v in split.header.items()}
    path = tmp_path / "renamed.vqa"
    path.write_bytes(fuzz.Split(version, header, split.chunks).to_bytes())
    with pytest.raises(FormatError, match="levels_per_channel"):
        VqaReader(path)
