"""Fuzzing harness for .vqa files: mutated and crafted variants of a valid file, each decoded.

Shared by tests/test_fuzz.py (a few hundred cases) and scripts/fuzz.py (as many as you like).
Every case must decode or raise FormatError: no other exception, no output file left behind,
and bounded time and memory. Crafted cases keep every CRC valid, so the checks behind the CRCs
are what they exercise.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vqaudio.errors import FormatError
from vqaudio.vqa import record as fields_v4
from vqaudio.vqa.compress import decompress
from vqaudio.vqa.container import PREAMBLE, VqaReader, _chunk_crc
from vqaudio.vqa.header import CRC

# Values an attacker or a buggy writer puts into a field.
HOSTILE = [
    0,
    -1,
    1,
    2,
    3,
    7,
    255,
    2**15,
    2**16 + 1,
    2**31,
    2**31 - 1,
    2**32,
    2**63,
    10**5,
    10**9,
    10**10,
    10**30,
    -(2**31),
    0.5,
    1e300,
    float("nan"),
    float("inf"),
    True,
    None,
    "",
    "x",
    "mono",
    "separate",
    [],
    [0],
    [1],
    [0, 1],
    [2, 0],
    [3, 2],
    [2**31, 1],
    [1, 2],
    [-1],
    {},
    list(range(70)),
]
LIST_FIELDS = ("level_strides", "levels_per_channel", "chunk_bytes")


@dataclass
class Split:
    """A .vqa file cut into its parts."""

    version: int
    header: dict
    chunks: list[bytes]  # payloads, without their CRCs

    @classmethod
    def of(cls, data: bytes) -> Split:
        _, version, length = PREAMBLE.unpack(data[: PREAMBLE.size])
        body = data[PREAMBLE.size : PREAMBLE.size + length]
        header = fields_v4.decode_fields(body, version) if version >= 4 else json.loads(body)
        pos, chunks = PREAMBLE.size + length + CRC.size, []
        for size in header["chunk_bytes"]:
            chunks.append(data[pos : pos + size - CRC.size])
            pos += size
        return cls(version, header, chunks)

    def to_bytes(self, fix_index: bool = True) -> bytes:
        """Reassemble with valid CRCs (and, with ``fix_index``, an index matching the chunks)."""
        header = dict(self.header)
        if fix_index:
            header["chunk_bytes"] = [len(c) + CRC.size for c in self.chunks]
        if self.version >= 4:
            body = encode_any(header, self.version)
        else:
            body = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
        preamble = PREAMBLE.pack(b"VQAU", self.version, len(body))
        out = [preamble, body, CRC.pack(zlib.crc32(preamble + body))]
        for k, payload in enumerate(self.chunks):
            out += [payload, CRC.pack(_chunk_crc(self.version, k, payload))]
        return b"".join(out)


def _as_int(value) -> int:
    """A hostile value of any type as the integer a format 4 record can carry (a negative or
    non-finite one becomes one too long for a varint, a non-number 0)."""
    if isinstance(value, bool) or isinstance(value, int):
        return int(value) if value >= 0 else 2**64
    if isinstance(value, float):
        return int(value) if np.isfinite(value) and value >= 0 else 2**64
    return 0


def encode_any(header: dict, version: int = 5) -> bytes:
    """``record.encode_fields`` for crafted fields: any value of any type is written as the
    nearest thing the record holds (an unknown enum as 255), a missing field not at all."""
    out = bytearray()
    for name in fields_v4.ID_FIELDS:
        if name in header:
            value = header[name]
            ok = isinstance(value, str) and fields_v4.CODEC_ID.fullmatch(value)
            out += bytes.fromhex(value) if ok else b"\xff" * 8
    for name in fields_v4.INTEGER_FIELDS:
        if name in header:
            out += fields_v4.varint(_as_int(header[name]))
    for name, names in fields_v4.ENUM_FIELDS.items():
        if name in header:
            value = header[name]
            out.append(names.index(value) if isinstance(value, str) and value in names else 255)
    if "bitrate" in header:
        value = header["bitrate"]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        out += fields_v4.BITRATE.pack(float(value) if ok else float("nan"))
    for name in fields_v4.LIST_FIELDS:
        if name in header:
            value = header[name]
            values = value if isinstance(value, list) else [value] if isinstance(value, int) else []
            out += fields_v4.varint(len(values))
            out += b"".join(fields_v4.varint(_as_int(v)) for v in values)
    if version >= 5:  # then the band levels' span blocks and edges
        if "band_span_blocks" in header:
            out += fields_v4.varint(_as_int(header["band_span_blocks"]))
        if "band_edges" in header:
            value = header["band_edges"]
            values = value if isinstance(value, list) else [value] if isinstance(value, int) else []
            out += fields_v4.varint(len(values))
            out += b"".join(fields_v4.varint(_as_int(v)) for v in values)
    return bytes(out)


def _flip(rng, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(out)))
        out[i] ^= int(rng.integers(1, 256))
    return bytes(out)


def _truncate(rng, data: bytes) -> bytes:
    return data[: int(rng.integers(len(data)))]


def _insert(rng, data: bytes) -> bytes:
    i = int(rng.integers(len(data) + 1))
    return data[:i] + rng.bytes(int(rng.integers(1, 9))) + data[i:]


def _crafted_field(rng, data: bytes) -> bytes:
    split = Split.of(data)
    key = str(rng.choice(sorted(split.header)))
    value = HOSTILE[int(rng.integers(len(HOSTILE)))]
    if key in LIST_FIELDS and isinstance(value, int) and not isinstance(value, bool):
        value = [value] + list(split.header[key])[1:]  # keep the list, poison one entry
    split.header[key] = value
    return split.to_bytes(fix_index=key != "chunk_bytes")


def _crafted_two_fields(rng, data: bytes) -> bytes:
    """Change a pair that must agree, together, so single-field checks alone do not catch it."""
    split = Split.of(data)
    h = split.header
    choice = int(rng.integers(6))
    if choice == 0:
        h["num_samples"] = h["source_num_samples"] = int(rng.choice([10**10, 10**7, 2**40]))
    elif choice == 1:
        h["channels"], h["channel_coding"] = int(rng.choice([1, 2, 3, 8, 9, 10**5])), "separate"
    elif choice == 2:
        h["source_sample_rate"] = int(rng.choice([1000, 10**9, 7]))
    elif choice == 3:
        h["chunk_blocks"] = int(rng.choice([1, 10**6, 2**31]))
    elif choice == 4:
        levels = [1] * len(h["levels_per_channel"])
        h["levels_per_channel"], h["level_strides"] = levels, h["level_strides"][:1]
    else:
        del h[str(rng.choice(sorted(h)))]
    return split.to_bytes(fix_index=False)


def _crafted_chunk(rng, data: bytes) -> bytes:
    """A payload changed behind a valid CRC: flipped, cut, extended, recoded or swapped."""
    split = Split.of(data)
    k = int(rng.integers(len(split.chunks)))
    payload = bytearray(split.chunks[k])
    choice = int(rng.integers(5))
    if choice == 0 and len(payload) > 1:
        payload[int(rng.integers(1, len(payload)))] ^= int(rng.integers(1, 256))
    elif choice == 1:
        payload = payload[: int(rng.integers(len(payload) + 1))]
    elif choice == 2:
        payload += rng.bytes(int(rng.choice([1, 4, 8, 400])))
    elif choice == 3 and payload:
        payload[0] = int(rng.choice([0, 1, 2, 255]))
    else:
        j = int(rng.integers(len(split.chunks)))
        split.chunks[j], payload = bytes(payload), bytearray(split.chunks[j])
    split.chunks[k] = bytes(payload)
    return split.to_bytes()


def _swap_chunks_keep_crcs(rng, data: bytes) -> bytes:
    """Two chunks exchanged with their CRCs (a v2 chunk CRC covers its index)."""
    split = Split.of(data)
    start = len(data) - sum(split.header["chunk_bytes"])
    pieces, pos = [], start
    for size in split.header["chunk_bytes"]:
        pieces.append(data[pos : pos + size])
        pos += size
    i, j = rng.choice(len(pieces), 2, replace=False) if len(pieces) > 1 else (0, 0)
    pieces[i], pieces[j] = pieces[j], pieces[i]
    return data[:start] + b"".join(pieces)


def _crafted_preamble(rng, data: bytes) -> bytes:
    magic, version, length = PREAMBLE.unpack(data[: PREAMBLE.size])
    if rng.integers(2):
        version = int(rng.choice([0, 1, 2, 3, 4, 5, 255]))
    else:
        length = int(rng.choice([0, 1, length - 1, length + 1, 2**20, 2**32 - 1]))
    return PREAMBLE.pack(magic, version, length) + data[PREAMBLE.size :]


MUTATIONS: dict[str, Callable] = {
    "flip": _flip,
    "truncate": _truncate,
    "insert": _insert,
    "crafted-field": _crafted_field,
    "crafted-pair": _crafted_two_fields,
    "crafted-chunk": _crafted_chunk,
    "swap-chunks": _swap_chunks_keep_crcs,
    "preamble": _crafted_preamble,
}


@dataclass
class Report:
    cases: int = 0
    decoded: int = 0
    refused: int = 0
    crashes: list[str] = field(default_factory=list)  # "kind: exception" of each failure
    peak_bytes: int = 0  # largest Python/numpy allocation peak of one case (tracemalloc)
    slowest: tuple[float, str] = (0.0, "")
    by_kind: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.cases} cases: {self.decoded} decoded, {self.refused} refused with FormatError, "
            f"{len(self.crashes)} crashes; peak {self.peak_bytes / 2**20:.1f} MiB (tracemalloc), "
            f"slowest {self.slowest[0] * 1000:.0f} ms ({self.slowest[1]})"
        )


def cases(seeds: list[bytes], count: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``count`` (kind, bytes) variants of the given valid files, kinds in turn."""
    rng = np.random.default_rng(seed)
    kinds = list(MUTATIONS)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        yield kind, MUTATIONS[kind](rng, seeds[int(rng.integers(len(seeds)))])


def check_one(data: bytes, folder: Path, codec, decode: bool = True) -> str:
    """'decoded' or 'refused'; raises whatever else the reader raised (a crash)."""
    path, out = folder / "case.vqa", folder / "case.wav"
    path.write_bytes(data)
    try:
        if decode:
            header = decompress(path, out, codec)
            limit = round(header.source_num_samples * 1.0) + 1
            import soundfile as sf

            frames = sf.info(str(out)).frames
            assert frames <= limit, f"wrote {frames} samples, the header implies {limit}"
            out.unlink()
        else:
            with VqaReader(path) as reader:
                for k in range(reader.num_chunks):
                    reader.read_chunk(k)
        return "decoded"
    except FormatError:
        return "refused"
    finally:
        left = sorted(p.name for p in folder.iterdir() if p.name != "case.vqa")
        if left:
            for p in folder.iterdir():
                p.unlink()
            raise AssertionError(f"files left behind: {left}")


def run(
    seeds: list[bytes], count: int, folder: Path, codec, seed: int = 0, time_limit: float = 10.0
) -> Report:
    """Fuzz ``count`` cases; a case slower than ``time_limit`` seconds counts as a crash."""
    report = Report()
    tracemalloc.start()
    try:
        for kind, data in cases(seeds, count, seed):
            tracemalloc.reset_peak()
            began = time.perf_counter()
            try:
                outcome = check_one(data, folder, codec)
            except Exception as e:  # anything but FormatError is a finding
                report.crashes.append(f"{kind}: {type(e).__name__}: {str(e)[:200]}")
                outcome = "crash"
            elapsed = time.perf_counter() - began
            if elapsed > time_limit:
                report.crashes.append(f"{kind}: took {elapsed:.1f} s")
            report.cases += 1
            report.decoded += outcome == "decoded"
            report.refused += outcome == "refused"
            report.by_kind[f"{kind}/{outcome}"] = report.by_kind.get(f"{kind}/{outcome}", 0) + 1
            report.peak_bytes = max(report.peak_bytes, tracemalloc.get_traced_memory()[1])
            report.slowest = max(report.slowest, (elapsed, kind))
    finally:
        tracemalloc.stop()
    return report


def make_seeds(codec, folder: Path) -> list[bytes]:
    """Valid files to mutate: 3 s of stereo (entropy-coded and packed) and 1 s of mono."""
    from vqaudio import audio
    from vqaudio.vqa.compress import compress

    from .conftest import harmonic

    rate, out = codec.config.sample_rate, []
    stereo = np.concatenate(
        [harmonic(3 * rate, rate, 220)[0].numpy(), harmonic(3 * rate, rate, 330, seed=1)[0].numpy()]
    )
    audio.write(folder / "stereo.wav", stereo, rate)
    audio.write(folder / "mono.wav", stereo[:1, :rate], rate)
    for name, entropy_coded, blocks in (
        ("stereo", True, 40),
        ("stereo", False, 40),
        ("mono", True, 25),
    ):
        target = folder / f"{name}-{entropy_coded}.vqa"
        compress(
            codec,
            folder / f"{name}.wav",
            target,
            bitrate=1e5,
            entropy_coded=entropy_coded,
            chunk_blocks=blocks,
        )
        out.append(target.read_bytes())
    return out
