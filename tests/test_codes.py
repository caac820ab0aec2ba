"""Codes: the flatten order round trip, and malformed codes refused with a message."""

import pytest
import torch

from vqaudio.codes import Codes


def random_codes(strides=(4, 2, 1), num_blocks=3, batch=2, codebook_size=16) -> Codes:
    gen = torch.Generator().manual_seed(0)
    levels = [
        torch.randint(0, codebook_size, (batch, num_blocks * strides[0] // s), generator=gen)
        for s in strides
    ]
    return Codes(levels, strides)


def test_tokens_round_trip_in_the_documented_order():
    codes = random_codes()
    tokens = codes.to_tokens(16)
    assert tokens.shape == (2, 3 * 7)
    block = tokens[0, :7].tolist()  # L0[0] L1[0] L2[0] L2[1] L1[1] L2[2] L2[3]
    l0, l1, l2 = (lv[0].tolist() for lv in codes.levels)
    assert block == [l0[0], 16 + l1[0], 32 + l2[0], 32 + l2[1], 16 + l1[1], 32 + l2[2], 32 + l2[3]]
    back = Codes.from_tokens(tokens, (4, 2, 1), 16)
    assert all(torch.equal(a, b) for a, b in zip(back.levels, codes.levels))


def test_a_level_of_the_wrong_length_is_refused():
    codes = random_codes()
    with pytest.raises(ValueError, match="level 2 .* has 11 frames; expected 12"):
        Codes([codes.levels[0], codes.levels[1], codes.levels[2][:, :-1]], codes.strides)


def test_one_tensor_per_stride_and_2d_tensors():
    codes = random_codes()
    with pytest.raises(ValueError, match="one tensor per level stride"):
        Codes(codes.levels[:2], codes.strides)
    with pytest.raises(ValueError, match=r"expected \(B, T\)"):
        Codes([codes.levels[0][0]], codes.strides[:1])


def test_tokens_that_do_not_fill_whole_blocks_are_refused():
    tokens = random_codes().to_tokens(16)
    with pytest.raises(ValueError, match="do not fill whole coarse frames of 7 tokens"):
        Codes.from_tokens(tokens[:, :-1], (4, 2, 1), 16)
