"""Entropy coder: lossless, deterministic, and it actually saves bits on skewed codes."""

import numpy as np
import pytest

from vqaudio.errors import FormatError
from vqaudio.vqa import entropy


def _streams(seed: int) -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(seed)
    streams = [
        rng.integers(0, 1024, 700),  # uniform
        rng.zipf(1.3, 5000) % 1024,  # skewed
        np.zeros(0, dtype=np.int64),  # empty
        np.full(300, 15),  # constant, last symbol
        rng.integers(0, 2, 99),  # binary alphabet
    ]
    return streams, [1024, 1024, 1024, 16, 2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_is_lossless(seed):
    streams, sizes = _streams(seed)
    data = entropy.encode(streams, sizes)
    decoded = entropy.decode(data, [len(s) for s in streams], sizes)
    for original, back in zip(streams, decoded, strict=False):
        np.testing.assert_array_equal(original, back)


def test_same_input_gives_identical_bytes():
    streams, sizes = _streams(3)
    assert entropy.encode(streams, sizes) == entropy.encode([s.copy() for s in streams], sizes)


def test_batches_cover_every_symbol_once():
    for length in (0, 1, 15, 16, 17, 1000, 20000):
        batches = entropy._batches(length)
        covered = [i for start, stop in batches for i in range(start, stop)]
        assert covered == list(range(length))


def test_skewed_codes_cost_less_than_fixed_width():
    rng = np.random.default_rng(4)
    skewed = rng.zipf(1.5, 4000) % 1024
    assert 8 * len(entropy.encode([skewed], [1024])) < 0.6 * 10 * skewed.size
    constant = np.full(4000, 3)
    assert 8 * len(entropy.encode([constant], [1024])) < 0.05 * 10 * constant.size


def test_data_that_ends_early_or_runs_on_is_refused():
    """constriction decodes zeros past the end of its data instead of failing: decode must
    refuse a cut or an extended payload, not return whatever the zeros decode to."""
    from vqaudio.errors import FormatError

    streams, sizes = _streams(5)
    data = entropy.encode(streams, sizes)
    lengths = [len(s) for s in streams]
    for bad in (data[:-4], data[:4], b"", data + b"\0\0\0\0", data + data[-4:]):
        with pytest.raises(FormatError):
            entropy.decode(bad, lengths, sizes)
    with pytest.raises(FormatError):  # more symbols than were coded
        entropy.decode(data, [n + 1000 for n in lengths], sizes)


def test_context_range_round_trips_and_refuses_extra_bytes():
    from vqaudio.vqa.entropy import decode_context, encode_context

    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 8, 40)
    fine = np.repeat(coarse, 2) * 2 + rng.integers(0, 2, 80)  # depends on its parent
    other = rng.integers(0, 300, 50)  # a second channel's first level
    streams, sizes = [coarse, fine, other], [16, 16, 300]
    data = encode_context(streams, sizes, [None, coarse, None])
    decoded = decode_context(data, [40, 80, 50], sizes, [None, 0, None])
    assert [d.tolist() for d in decoded] == [s.tolist() for s in streams]
    with pytest.raises(FormatError):
        decode_context(data + b"\0\0\0\0", [40, 80, 50], sizes, [None, 0, None])
    with pytest.raises(FormatError):
        decode_context(data[:-4], [40, 80, 50], sizes, [None, 0, None])


def test_context_range_beats_batched_counts_on_repetitive_codes():
    from vqaudio.vqa.entropy import encode, encode_context

    rng = np.random.default_rng(4)
    coarse = rng.choice([3, 700, 12], 125)
    fine = np.repeat(coarse, 4) + rng.integers(0, 3, 500)
    batched = len(encode([coarse, fine], [1024, 1024]))
    context = len(encode_context([coarse, fine], [1024, 1024], [None, coarse]))
    assert context < 0.8 * batched
