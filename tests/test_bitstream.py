""".vqa container: bit packing, header/index round trip, and every corruption is detected."""

import struct
import zlib

import numpy as np
import pytest

from vqaudio.errors import FormatError
from vqaudio.vqa.chunk import BitPacker, BitUnpacker, pack_chunk
from vqaudio.vqa.container import VqaReader, VqaWriter
from vqaudio.vqa.header import Header


def test_bitpacker_round_trip_over_random_widths():
    rng = np.random.default_rng(0)
    widths = rng.integers(1, 17, 60)
    values = [rng.integers(0, 1 << int(w), rng.integers(0, 40)) for w in widths]
    packer = BitPacker()
    for v, w in zip(values, widths, strict=False):
        packer.write(v, int(w))
    data = packer.getvalue()
    assert len(data) == -(-sum(len(v) * int(w) for v, w in zip(values, widths, strict=False)) // 8)
    unpacker = BitUnpacker(data)
    for v, w in zip(values, widths, strict=False):
        np.testing.assert_array_equal(unpacker.read(len(v), int(w)), v)
    with pytest.raises(FormatError):
        unpacker.read(8, 16)


def _header(**overrides) -> Header:
    base = dict(
        codec_id="0123456789abcdef",
        code_space_id="fedcba9876543210",
        sample_rate=8000,
        channels=1,
        num_samples=1,
        hop_length=8,
        source_sample_rate=8000,
        source_num_samples=1,
        codebook_size=16,
        level_strides=(2, 1),
        levels_per_channel=(2,),
        channel_coding="mono",
        chunk_blocks=4,
        entropy_coder="adaptive-range",
        bitrate=6000.0,
    )
    return Header(**{**base, **overrides})


def _write(path, num_samples=16 * 10, entropy_coded=True, seed=0):
    header = _header()
    rng = np.random.default_rng(seed)
    final = Header(
        **{**header.__dict__, "num_samples": num_samples, "source_num_samples": num_samples}
    )
    writer = VqaWriter(path, header)
    chunks = []
    for k in range(final.num_chunks):
        start, stop = final.chunk_range(k)
        streams = [rng.integers(0, 4, n) for n in final.stream_lengths(stop - start)]
        writer.write_chunk(pack_chunk(streams, final, entropy_coded))
        chunks.append(streams)
    return writer.close(num_samples=num_samples, source_num_samples=num_samples), chunks


@pytest.mark.parametrize("entropy_coded", [True, False])
def test_write_read_round_trip_and_seek(tmp_path, entropy_coded):
    path = tmp_path / "a.vqa"
    header, chunks = _write(path, entropy_coded=entropy_coded)
    assert header.num_chunks == 3  # 10 blocks of 16 samples, 4 blocks per chunk
    with VqaReader(path) as reader:
        assert reader.header == header
        for k in reversed(range(reader.num_chunks)):  # any order: each chunk stands alone
            for a, b in zip(reader.read_chunk(k), chunks[k], strict=False):
                np.testing.assert_array_equal(a, b)


def test_every_single_byte_flip_is_detected(tmp_path):
    path = tmp_path / "a.vqa"
    _write(path, num_samples=16 * 5)
    data = path.read_bytes()
    bad = tmp_path / "bad.vqa"
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            corrupt = bytearray(data)
            corrupt[i] ^= flip
            bad.write_bytes(bytes(corrupt))
            with pytest.raises(FormatError):
                with VqaReader(bad) as reader:
                    for k in range(reader.num_chunks):
                        reader.read_chunk(k)


def test_every_truncation_and_extension_is_detected(tmp_path):
    path = tmp_path / "a.vqa"
    _write(path, num_samples=16 * 5)
    data = path.read_bytes()
    bad = tmp_path / "bad.vqa"
    for cut in range(len(data)):
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError):
            VqaReader(bad)
    bad.write_bytes(data + b"\0")
    with pytest.raises(FormatError, match="unexpected bytes"):
        VqaReader(bad)


def test_wrong_magic_and_unknown_version(tmp_path):
    path = tmp_path / "a.vqa"
    _write(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.vqa"
    bad.write_bytes(b"RIFF" + data[4:])
    with pytest.raises(FormatError, match="not a .vqa file"):
        VqaReader(bad)
    # a well-formed file of a future version (CRC recomputed) must still be refused by version
    _, _, length = struct.unpack("!4sBI", data[:9])
    head = bytearray(data[: 9 + length])
    head[4] = 6
    bad.write_bytes(bytes(head) + struct.pack("!I", zlib.crc32(bytes(head))) + data[13 + length :])
    with pytest.raises(
        FormatError, match="unsupported .vqa format version 6; this vqaudio reads 1–5"
    ):
        VqaReader(bad)


def test_same_chunks_give_identical_bytes(tmp_path):
    _write(tmp_path / "a.vqa")
    _write(tmp_path / "b.vqa")
    assert (tmp_path / "a.vqa").read_bytes() == (tmp_path / "b.vqa").read_bytes()


def test_packed_chunks_must_have_exact_length_and_zero_padding():
    from vqaudio.vqa.chunk import unpack_chunk

    header = _header(num_samples=16 * 3, source_num_samples=16 * 3, entropy_coder="none")
    streams = [np.full(n, 5) for n in header.stream_lengths(3)]
    payload = pack_chunk(streams, header, False)
    assert [s.tolist() for s in unpack_chunk(payload, header, 3)] == [s.tolist() for s in streams]
    with pytest.raises(FormatError, match="bytes, expected"):
        unpack_chunk(payload + b"\0", header, 3)
    with pytest.raises(FormatError, match="bytes, expected"):
        unpack_chunk(payload[:-1], header, 3)
    total_bits = sum(header.stream_lengths(3)) * header.bits_per_code
    if total_bits % 8:
        padded = payload[:-1] + bytes([payload[-1] | 0x80])
        with pytest.raises(FormatError, match="padding"):
            unpack_chunk(padded, header, 3)
    coded = bytes([1]) + payload[1:]  # an entropy-coded chunk in a file without entropy coding
    with pytest.raises(FormatError, match="entropy_coder"):
        unpack_chunk(coded, header, 3)
